"""Product API: the caller's own limits (``GET /deepspace/api/limits``).

Rate limits of the caller's org, project and key with what is used of them now, its budget
caps with this period's spend, and the models it may use. Policies are changed by operators
(``deepspace-lab policy``) and, with the admin issue, through the Admin API.
"""

from __future__ import annotations

from typing import Any

import orjson

from deepspace_lab.pipeline import RequestContext
from deepspace_lab.pipeline.policy import limits_view
from deepspace_lab.runtime import Runtime

from .api import query_params
from .base import DeepSpaceHandler

API_PREFIX = "/deepspace/api"


class LimitsHandler(DeepSpaceHandler):
    async def get(self) -> None:
        await self.runtime.pipeline.run(self.context(kind="api.limits.read", action="billing.read"), self._show)
        self.finish_sink()

    async def _show(self, ctx: RequestContext) -> None:
        query_params(self, allowed=())
        body = await limits_view(self.runtime.services, ctx)
        ctx.sink.set_json(orjson.dumps(body, default=str))  # type: ignore[union-attr]


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    return [(API_PREFIX + "/limits", LimitsHandler, {"runtime": runtime})]
