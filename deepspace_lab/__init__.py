"""DeepSpace Lab: a Jupyter-first research workbench with one metered, audited Gateway.

The core (this package) is plain Python: domain services, the pipeline, the upstream
client, config and the database. The HTTP layer lives in ``deepspace_lab.server_extension``,
the notebook side in ``deepspace_lab.widgets``, the admin app in ``deepspace_lab.dashboards``.
"""

__version__ = "0.1.0"
