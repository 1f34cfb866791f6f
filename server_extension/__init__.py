"""The Jupyter server extension and the standalone gateway: the thin HTTP layer."""
