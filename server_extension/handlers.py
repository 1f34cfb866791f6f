"""Gateway routes: OpenAI-compatible chat and models, health.

Thin: build a request context, run the pipeline, end the response.
"""

from __future__ import annotations

from typing import Any

import orjson

from deepspace_lab import __version__
from deepspace_lab.catalog import list_models
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .base import DeepSpaceHandler

OPENAI_PREFIX = "/deepspace/v1"
API_PREFIX = "/deepspace/api"


class ChatCompletionsHandler(DeepSpaceHandler):
    async def post(self) -> None:
        await self.runtime.pipeline.run_chat(self.context(action="chat"))
        self.finish_sink()


class ModelsHandler(DeepSpaceHandler):
    async def get(self) -> None:
        await self.runtime.pipeline.run(self.context(action="models.read"), self._list)
        self.finish_sink()

    async def _list(self, ctx: RequestContext) -> None:
        async with self.runtime.sessions() as session:
            models = await list_models(session)
        if ctx.policies is not None and ctx.principal is not None:  # only what the model policy allows
            allowed = ctx.policies.allowed_models(org_id=ctx.principal.org_id, project_id=ctx.principal.project_id)
            if allowed is not None:
                models = [m for m in models if m.name in allowed]
        ctx.sink.set_json(orjson.dumps({"object": "list", "data": [m.to_openai() for m in models]}))  # type: ignore[union-attr]


class HealthHandler(DeepSpaceHandler):
    """Liveness: the process answers. No credentials needed, nothing sensitive shown."""

    async def get(self) -> None:
        self.write_json({"status": "ok", "version": __version__,
                         "upstream": "simulated" if self.runtime.upstream_is_simulated else "configured"})


class ReadyHandler(DeepSpaceHandler):
    """Readiness: database (and schema), Redis and upstream; 503 until all answer."""

    async def get(self) -> None:
        report = await self.runtime.readiness()
        self.write_json(report, status=200 if report["status"] == "ready" else 503)


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (OPENAI_PREFIX + "/chat/completions", ChatCompletionsHandler, kwargs),
        (OPENAI_PREFIX + "/models", ModelsHandler, kwargs),
        (API_PREFIX + "/health", HealthHandler, kwargs),
        (API_PREFIX + "/health/ready", ReadyHandler, kwargs),
    ]
