"""JSON product-API handlers: one helper runs audit + auth + authorisation, opens one
database session (one unit of work, committed at the edge) and writes the JSON answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import tornado.web
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth import Principal
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext

from .base import DeepSpaceHandler

Work = Callable[[RequestContext, AsyncSession], Awaitable[tuple[int, Any]]]


class ApiHandler(DeepSpaceHandler):
    async def api(self, *, action: str, kind: str, work: Work, public: bool = False) -> None:
        """Run ``work(ctx, session)`` → (status, payload) behind the door steps."""

        async def endpoint(ctx: RequestContext) -> None:
            async with self.runtime.sessions() as session:
                status, payload = await work(ctx, session)
                await session.commit()
            assert ctx.sink is not None
            ctx.status_code = status  # the audit row records what the caller got (201, 204...)
            ctx.sink.set_json(b"" if payload is None else orjson.dumps(payload), status=status)

        ctx = self.context(kind=kind, action=action)
        pipeline = self.runtime.pipeline
        await (pipeline.run_public(ctx, endpoint) if public else pipeline.run(ctx, endpoint))
        self.finish_sink()


def principal_of(ctx: RequestContext) -> Principal:
    assert ctx.principal is not None
    return ctx.principal


def json_body(ctx: RequestContext, *, required: tuple[str, ...] = (),
              allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The request body as a JSON object, with ``required`` fields present and, when
    ``allowed`` is given, no other fields (a typo is an error, not silently ignored)."""
    if not ctx.body:  # no body at all; whitespace alone is not JSON
        body: Any = {}
    else:
        try:
            body = orjson.loads(ctx.body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    if allowed is not None:
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise InvalidRequest(f"unknown fields {unknown}; allowed: {list(allowed)}", code="unknown_field",
                                 param=unknown[0])
    for name, value in body.items():
        if isinstance(value, str) and "\x00" in value:  # no database text column can hold NUL
            raise InvalidRequest(f"`{name}` cannot contain NUL characters", code="invalid_value", param=name)
    for name in required:
        if name not in body:
            raise InvalidRequest(f"`{name}` is required", code="missing_field", param=name)
    return body


def field(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """A typed optional field of ``body``: ``default`` when absent; ``null`` or a wrong type is a 400."""
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(f"`{name}` must be {'a string' if kind is str else 'an ' + kind.__name__}",
                             code="invalid_type", param=name)
    return value


def query_params(handler: tornado.web.RequestHandler, *, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters of a route that takes ``allowed``, each given at most once: an
    unknown name is a 400 ``unknown_parameter`` (a typo is an error, not silently ignored), a
    repeated one a 400 ``repeated_parameter`` (never silently the first or the last)."""
    params: dict[str, str] = {}
    for name in handler.request.query_arguments:
        if name not in allowed:
            shown = name.encode("latin-1").decode("utf-8", "replace")[:100]  # tornado decodes names as latin-1
            raise InvalidRequest(f"unknown query parameter {shown!r}; allowed: {list(allowed)}",
                                 code="unknown_parameter", param=shown)
        try:  # unstripped: tornado turns control characters into spaces, so "l\x1b" would read as "l"
            values = handler.get_query_arguments(name, strip=False)
        except tornado.web.HTTPError:  # not UTF-8
            raise InvalidRequest(f"`{name}` is not valid UTF-8", code="invalid_value", param=name) from None
        if len(values) > 1:
            raise InvalidRequest(f"`{name}` may be given once", code="repeated_parameter", param=name)
        params[name] = values[0]
    return params


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
