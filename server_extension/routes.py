"""Every route of the Gateway: each area's ``handlers`` module ends in ``default_handlers``;
the Jupyter extension and the standalone gateway mount the same list."""

from __future__ import annotations

from typing import Any

from deepspace_lab.errors import NotFound
from deepspace_lab.runtime import Runtime

from . import (
    admin_accounts,
    admin_api,
    admin_deliveries,
    admin_limits,
    admin_money,
    admin_observe,
    admin_risk,
    admin_system,
    billing_handlers,
    chat_handlers,
    conversation_handlers,
    file_handlers,
    handlers,
    identity_handlers,
    jupyter_handlers,
    openapi,
    policy_handlers,
    worker_handlers,
    workflow_handlers,
)
from .base import DeepSpaceHandler

#: Modules with ``default_handlers(runtime)``, mounted in this order.
ROUTE_MODULES = (handlers, chat_handlers, conversation_handlers, identity_handlers, billing_handlers,
                 policy_handlers, worker_handlers, file_handlers, jupyter_handlers, admin_api,
                 admin_money, admin_observe, workflow_handlers, admin_accounts, admin_system, admin_risk,
                 admin_deliveries, admin_limits, openapi)


class UnknownRouteHandler(DeepSpaceHandler):
    """Anything under /deepspace/ that no route matched: a JSON 404, not tornado's HTML page."""

    def prepare(self) -> None:
        raise NotFound(f"no route {self.request.path}", code="unknown_url")


def all_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    routes = [route for module in ROUTE_MODULES for route in module.default_handlers(runtime)]
    return [*routes, ("/deepspace/.*", UnknownRouteHandler, {"runtime": runtime})]
