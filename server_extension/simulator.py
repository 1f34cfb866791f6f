"""HTTP face of the simulated OpenAI-compatible upstream (logic in ``deepspace_lab.simulator``).

A standalone tornado application, not a Jupyter handler: the Gateway talks to it over real
HTTP exactly as it talks to a real upstream, and tests start it on a free port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import tornado.http1connection
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from deepspace_lab.errors import DeepSpaceError, InvalidRequest, NotFound
from deepspace_lab.simulator.engine import (
    CATALOG_CREATED,
    OWNED_BY,
    SAMPLING_PARAMS,
    SIMULATED_MODELS,
    Directives,
    completion_body,
    error_body,
    find_model,
    new_completion_id,
    parse_directives,
    plan_reply,
    simulated_error_body,
    stream_chunks,
)

log = logging.getLogger("deepspace_lab.simulator")


class SimulatorHandler(tornado.web.RequestHandler):
    """Base: the simulated-marker header and the OpenAI error shape on every response."""

    def set_default_headers(self) -> None:
        self.set_header("X-DeepSpace-Simulated", "true")
        self.set_header("Content-Type", "application/json")

    def write_json(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, DeepSpaceError):
            self.set_status(exc.http_status)
            self.finish(orjson.dumps(exc.to_dict()))
            return
        message = self._reason if status_code < 500 else "Internal simulator error"
        self.finish(orjson.dumps(error_body(status_code, message)))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, DeepSpaceError):
            status_code = exc.http_status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if isinstance(value, DeepSpaceError):
            log.info("simulator %s: %s", value.code, value.message)
            return
        super().log_exception(typ, value, tb)


class ModelsHandler(SimulatorHandler):
    def get(self) -> None:
        data = [
            {"object": "model", "created": CATALOG_CREATED, "owned_by": OWNED_BY, **model}
            for model in SIMULATED_MODELS
        ]
        self.write_json({"object": "list", "data": data})


class ChatCompletionsHandler(SimulatorHandler):
    def initialize(self, token_latency_ms: float) -> None:
        self.default_token_latency_ms = token_latency_ms
        self.client_gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self.client_gone.set()

    async def pause(self, milliseconds: float) -> bool:
        """Wait, but wake as soon as the client disconnects; returns whether it is still there."""
        try:
            await asyncio.wait_for(self.client_gone.wait(), milliseconds / 1000)
        except TimeoutError:
            return True
        return False

    async def post(self) -> None:
        body = self._parse_body()
        model, messages, max_tokens = body["model"], body["messages"], _max_tokens(body)
        stream_options = body.get("stream_options") or {}
        if not isinstance(stream_options, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        directives = parse_directives(messages, self.request.headers)
        if directives.delay_ms and not await self.pause(directives.delay_ms):
            return  # the caller gave up (e.g. its timeout fired); nobody to answer
        if directives.error is not None:
            self.write_json(simulated_error_body(directives.error), status=directives.error)
            return
        sampling = {name: body[name] for name in SAMPLING_PARAMS if body.get(name) is not None}
        reply = plan_reply(model, messages, max_tokens=max_tokens, directives=directives, sampling=sampling)
        completion_id, created = new_completion_id(model, messages), int(time.time())
        if not body.get("stream"):
            if directives.fail_after is not None:
                self.iostream().close()
                return
            self.write_json(
                completion_body(
                    completion_id=completion_id,
                    created=created,
                    model=model,
                    reply=reply,
                    include_usage=not directives.no_usage,
                )
            )
            return
        chunks = stream_chunks(
            completion_id=completion_id,
            created=created,
            model=model,
            reply=reply,
            include_usage=bool(stream_options.get("include_usage")) and not directives.no_usage,
        )
        try:
            await self._stream(chunks, directives, len(reply.tokens))
        except tornado.iostream.StreamClosedError:
            log.debug("simulator client went away mid-stream")

    def iostream(self) -> tornado.iostream.IOStream:
        connection = self.request.connection
        assert isinstance(connection, tornado.http1connection.HTTP1Connection)
        return connection.stream

    async def _stream(
        self, chunks: Iterator[dict[str, Any]], directives: Directives, token_count: int
    ) -> None:
        stream = self.iostream()
        stream.set_nodelay(True)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        latency_ms = directives.token_latency_ms
        if latency_ms is None:
            latency_ms = self.default_token_latency_ms
        # Chunk 0 is the role chunk, 1..token_count the tokens, then finish (and usage).
        cut_at = None if directives.fail_after is None else min(directives.fail_after, token_count) + 1
        for index, chunk in enumerate(chunks):
            if index == cut_at:
                stream.close()  # abrupt: no finish chunk, no [DONE], no terminating HTTP chunk
                return
            if 1 <= index <= token_count and latency_ms and not await self.pause(latency_ms):
                return
            self.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await self.flush()
        self.write(b"data: [DONE]\n\n")
        await self.flush()

    def _parse_body(self) -> dict[str, Any]:
        try:
            body = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("Request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("Missing required parameter: 'model'", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise InvalidRequest("'messages' must be a non-empty array of message objects", param="messages")
        if find_model(model) is None:
            raise NotFound(
                f"The model `{model}` does not exist on the DeepSpace simulator",
                code="model_not_found",
                param="model",
            )
        return body


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
        return value
    return None


class NotFoundHandler(SimulatorHandler):
    def prepare(self) -> None:
        raise NotFound(f"Unknown simulator route: {self.request.path}", code="unknown_url")


def make_simulator_app(*, token_latency_ms: float = 0.0) -> tornado.web.Application:
    """The simulator's tornado application; ``token_latency_ms`` is the default per-token delay."""
    return tornado.web.Application(
        [
            (r"/v1/models", ModelsHandler),
            (r"/v1/chat/completions", ChatCompletionsHandler, {"token_latency_ms": token_latency_ms}),
        ],
        default_handler_class=NotFoundHandler,
    )


def start_simulator(
    *, host: str = "127.0.0.1", port: int = 0, token_latency_ms: float = 0.0
) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Listen on the running event loop; returns the server and the bound port.

    ``port=0`` picks a free port. Must be called with an asyncio loop running in this
    thread; stop it with ``server.stop()`` (and ``await server.close_all_connections()``).
    """
    asyncio.get_running_loop()  # raises RuntimeError early instead of binding to a stray loop
    sockets = tornado.netutil.bind_sockets(port, address=host)
    server = tornado.httpserver.HTTPServer(make_simulator_app(token_latency_ms=token_latency_ms))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


async def serve_simulator(*, host: str, port: int, token_latency_ms: float) -> None:
    """Run the simulator until cancelled (the CLI's ``simulator`` command)."""
    server, bound_port = start_simulator(host=host, port=port, token_latency_ms=token_latency_ms)
    log.info("Simulated OpenAI-compatible upstream listening on http://%s:%d/v1", host, bound_port)
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()
        await server.close_all_connections()
