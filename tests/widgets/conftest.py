"""The widget tests' fixtures: the workflow engine's (an in-process gateway and workers sharing
the test's queue), for the workflow widget."""

from ..workflows.conftest import flow_gateway, flow_settings, flows, start_worker, worker  # noqa: F401
