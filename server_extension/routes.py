"""Every route of the Gateway: each area's ``handlers`` module ends in ``default_handlers``;
the Jupyter extension and the standalone gateway mount the same list."""

from __future__ import annotations

from typing import Any

from deepspace_lab.runtime import Runtime

from . import billing_handlers, handlers

#: Modules with ``default_handlers(runtime)``, mounted in this order.
ROUTE_MODULES = (handlers, billing_handlers)


def all_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    return [route for module in ROUTE_MODULES for route in module.default_handlers(runtime)]
