"""The Jupyter server extension and the standalone gateway: the thin HTTP layer.

``jupyter server extension enable deepspace_lab.server_extension`` turns it on (a normal
install does that through ``jupyter_server_config.d``).
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import DeepSpaceApp

    return [{"module": "deepspace_lab.server_extension", "app": DeepSpaceApp}]
