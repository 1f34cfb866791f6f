"""Our tornado base handler: trace ids, the one place errors become wire responses, and the
response sink steps write to.

It subclasses plain ``tornado.web.RequestHandler``, not Jupyter's handlers: gateway routes
take only Bearer credentials (API keys), never Jupyter's token or cookie, so a gateway key
grants no Jupyter access and Jupyter's identity never reaches the gateway. Because no cookie
is ever read as a credential, XSRF (a cookie attack) does not apply: requests carrying a
Bearer credential skip the check, and requests without one are refused 401 (and audited) by
the pipeline's auth step.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

import orjson
import tornado.web
from tornado.iostream import StreamClosedError

from deepspace_lab.errors import DeepSpaceError, InvalidRequest, MethodNotAllowed, NotFound
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.policy.rules import IPAddress, client_address
from deepspace_lab.runtime import Runtime
from deepspace_lab.tracing import (
    current_request_id,
    current_trace_id,
    new_request_id,
    new_trace_id,
    trace_id_from_traceparent,
)

log = logging.getLogger("deepspace_lab.http")


class DeepSpaceHandler(tornado.web.RequestHandler):
    runtime: Runtime

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.trace_id = trace_id_from_traceparent(self.request.headers.get("traceparent")) or new_trace_id()
        self.request_id = new_request_id()
        current_trace_id.set(self.trace_id)
        current_request_id.set(self.request_id)
        self._started = time.perf_counter()
        self.sink = HandlerSink(self)
        self.set_default_headers()

    def set_default_headers(self) -> None:
        # Called by tornado before initialize() too (and again by send_error's clear()).
        if hasattr(self, "trace_id"):
            self.set_header("X-Trace-Id", self.trace_id)
            self.set_header("X-Request-Id", self.request_id)

    def check_xsrf_cookie(self) -> None:
        """No cookie is a credential on these routes (see the module docstring)."""

    def context(self, *, kind: str = "gateway.request", action: str = "") -> RequestContext:
        address = self.client_address()
        return RequestContext(
            trace_id=self.trace_id, request_id=self.request_id, method=self.request.method or "",
            path=self.request.path, client_ip=str(address) if address is not None else None,
            client_address=address, headers=self.request.headers, body=self.request.body, started=self._started,
            sink=self.sink, kind=kind, action=action,
        )

    def client_address(self) -> IPAddress | None:
        """The connection's peer — or, when the peer is one of ``DEEPSPACE_TRUSTED_PROXIES``, the
        client it names in ``X-Forwarded-For``. Tornado's (or Jupyter's) own ``xheaders`` option
        is not used: it would believe the header from anyone."""
        context = getattr(self.request.connection, "context", None)
        peer = getattr(context, "_orig_remote_ip", None) or self.request.remote_ip
        return client_address(peer, self.request.headers.get("X-Forwarded-For"), self.runtime.trusted_proxies)

    def write_json(self, payload: Any, *, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(payload))

    def finish_sink(self) -> None:
        """End the response once the pipeline (audit included) has returned."""
        if self._finished:
            return
        sink = self.sink
        if sink.json_body is not None:
            self.set_status(sink.json_status)
            if sink.json_body:
                self.set_header("Content-Type", "application/json")
                self.finish(sink.json_body)
            else:
                self.finish()  # 204: no body, no content type
        elif not sink.client_gone:
            try:
                self.finish(sink.final_bytes)
            except StreamClosedError:
                pass

    def on_connection_close(self) -> None:
        self.sink.gone = True

    # -- errors: the one place they reach the wire ------------------------------------------
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = self._as_deepspace_error(exc, status_code)
        self.set_status(error.http_status)
        self.set_header("Content-Type", "application/json")
        if error.http_status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if error.retry_after_s is not None:
            self.set_header("Retry-After", str(max(1, round(error.retry_after_s))))
        if not error.retryable:
            self.set_header("x-should-retry", "false")
        self.finish(orjson.dumps(error.to_dict()))

    def allowed_methods(self) -> list[str]:
        base = tornado.web.RequestHandler
        return [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
                if getattr(type(self), m.lower()) is not getattr(base, m.lower())]

    def _as_deepspace_error(self, exc: BaseException | None, status_code: int) -> DeepSpaceError:
        if isinstance(exc, DeepSpaceError):
            return exc
        if isinstance(exc, tornado.web.HTTPError) or exc is None:
            if status_code == 404:
                return NotFound("no such route", code="unknown_url")
            if status_code == 405:
                return MethodNotAllowed(f"method {self.request.method} is not allowed here")
            if 400 <= status_code < 500:
                return InvalidRequest(self._reason or "bad request", code="bad_request")
        return DeepSpaceError(f"internal error; quote trace id {self.trace_id} when reporting it")

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        if isinstance(value, DeepSpaceError) and value.http_status < 500:
            return
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        if isinstance(value, DeepSpaceError):
            log.warning("%s %s -> %s %s", self.request.method, self.request.path, value.http_status, value.code,
                        extra={"trace_id": self.trace_id, "request_id": self.request_id})
            return
        log.error("unhandled error on %s %s", self.request.method, self.request.path,
                  exc_info=value, extra={"trace_id": self.trace_id, "request_id": self.request_id})


class HandlerSink:
    """:class:`deepspace_lab.pipeline.ResponseSink` over a tornado handler."""

    def __init__(self, handler: DeepSpaceHandler) -> None:
        self.handler = handler
        self.gone = False
        self.json_body: bytes | None = None
        self.json_status = 200
        self.final_bytes = b""

    @property
    def client_gone(self) -> bool:
        return self.gone or self.handler.request.connection.stream.closed()  # type: ignore[union-attr]

    def start_stream(self) -> None:
        handler = self.handler
        handler.set_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.set_header("Cache-Control", "no-cache")
        handler.set_header("X-Accel-Buffering", "no")
        # Tornado leaves Nagle on while a response streams: without this the second SSE frame
        # waits for the client's delayed ACK (~40 ms to first token, measured).
        handler.request.connection.stream.set_nodelay(True)  # type: ignore[union-attr]

    def send(self, data: bytes) -> None:
        if self.client_gone:
            return
        self.handler.write(data)
        self.handler.flush().add_done_callback(self._flushed)

    def _flushed(self, future: Any) -> None:
        if future.exception() is not None:
            self.gone = True

    def end_stream(self, data: bytes) -> None:
        self.final_bytes = data

    def set_json(self, body: bytes, *, status: int = 200) -> None:
        self.json_body = body
        self.json_status = status

    def set_header(self, name: str, value: str) -> None:
        self.handler.set_header(name, value)
