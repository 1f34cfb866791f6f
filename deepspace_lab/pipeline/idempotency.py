"""The ``idempotency`` core step: ``Idempotency-Key`` on chat completions.

It runs right after ``validate`` (so the caller is known and the body is valid) and before
billing: a replay never reaches a hold. Without the header it just calls on. With it:

- the key is claimed for the caller's org (:func:`~deepspace_lab.idempotency.claim_key`),
  or the stored response of the completed request is replayed with
  ``Idempotent-Replayed: true`` (nothing after this step runs), or the claim is refused
  (409 in progress, 422 reused);
- while the request runs, the sink is wrapped in a :class:`RecordingSink` that keeps a copy
  of what the caller is sent (JSON body or the whole SSE stream, and the headers set
  through the sink), and the claim's lease is renewed;
- a complete success (a 2xx JSON body, or a stream that ended with ``[DONE]`` while the
  caller was still there) is stored; anything else (an error, a stream broken off by the
  upstream or left by the caller) releases the key so a retry runs again. A stream the
  caller left is not kept because what the gateway drains after a disconnect is not relayed
  through the sink, so the copy would have a gap (a non-stream body is whole and is kept).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..idempotency import (
    DEFAULT_LEASE_S,
    DEFAULT_TTL_S,
    MAX_RESPONSE_BYTES,
    Claim,
    Replay,
    StoredResponse,
    abandon_key,
    claim_key,
    complete_key,
    parse_key,
    purge_expired_keys,
    renew_key,
    request_sha256,
)
from ..upstream import SSE_DONE
from .chat import CONVERSATION_HEADER
from .context import Next, PipelineServices, RequestContext, ResponseSink
from .steps import BaseStep

log = logging.getLogger("deepspace_lab.pipeline")

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Keys of workflow steps' model calls (``deepspace_lab.workflows.steps.StepContext.idempotency_key``)
#: must stay valid as long as their run may live: they are kept ``workflow_max_run_s`` longer.
WORKFLOW_KEY_PREFIX = "wf:"
REPLAYED_HEADER = "Idempotent-Replayed"
JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
#: Headers a replay does not repeat: they describe the transport or this very request.
_NOT_REPLAYED = frozenset({
    "content-type", "content-length", "transfer-encoding", "connection", "date", "cache-control",
    "x-accel-buffering", "x-trace-id", "x-request-id", "retry-after", "set-cookie", REPLAYED_HEADER.lower(),
})


class RecordingSink:
    """A :class:`ResponseSink` that passes everything on and keeps a copy of the response.

    At most ``max_bytes`` of body are kept; past that only the fact (and the stream's last
    bytes, to tell whether it ended with ``[DONE]``) is. A ``[DONE]`` relayed as it arrives is
    held back until the stream's end, which goes out once the pipeline returned and the
    response is stored: a client that saw ``[DONE]`` and retries at once gets the replay, not
    a 409.
    """

    def __init__(self, inner: ResponseSink, *, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.headers: dict[str, str] = {}
        self.streamed = False
        self.ended = False
        self.json_body: bytes | None = None
        self.json_status = 200
        self._chunks: list[bytes] = []
        self._size = 0
        self._tail = b""
        self._held_done = b""

    @property
    def client_gone(self) -> bool:
        return self.inner.client_gone

    def start_stream(self) -> None:
        self.streamed = True
        self.inner.start_stream()

    def send(self, data: bytes) -> None:
        self._keep(data)
        if self._held_done:  # more after [DONE]: it was not the end after all
            data, self._held_done = self._held_done + data, b""
        if data.endswith(SSE_DONE):
            data, self._held_done = data[:-len(SSE_DONE)], SSE_DONE
        if data:
            self.inner.send(data)

    def end_stream(self, data: bytes) -> None:
        self._keep(data)
        self.ended = True
        self.inner.end_stream(self._held_done + data)
        self._held_done = b""

    def set_json(self, body: bytes, *, status: int = 200) -> None:
        self.json_body, self.json_status = body, status
        self.inner.set_json(body, status=status)

    def set_header(self, name: str, value: str) -> None:
        if name.lower() not in _NOT_REPLAYED:
            self.headers[name] = value
        self.inner.set_header(name, value)

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        self._tail = (self._tail + data)[-len(SSE_DONE):]
        if self._size <= self.max_bytes:
            self._chunks.append(data)
        else:
            self._chunks.clear()

    def response(self) -> StoredResponse | None:
        """The response to keep (``body`` None: too big), or None if it is no complete success."""
        if self.streamed:
            if not (self.ended and self._tail == SSE_DONE) or self.inner.client_gone:
                return None
            body = b"".join(self._chunks) if self._size <= self.max_bytes else None
            return StoredResponse(200, SSE_CONTENT_TYPE, body, dict(self.headers))
        if self.json_body is None or not 200 <= self.json_status < 300:
            return None
        kept = self.json_body if len(self.json_body) <= self.max_bytes else None
        return StoredResponse(self.json_status, JSON_CONTENT_TYPE, kept, dict(self.headers))


class IdempotencyStep(BaseStep):
    """``Idempotency-Key``: run a request once per key and org, replay it after (see module)."""

    name = "idempotency"
    lease_s = DEFAULT_LEASE_S
    max_response_bytes = MAX_RESPONSE_BYTES
    #: Expired keys are deleted (in batches) at most this often per process.
    purge_interval_s = 600.0

    def __init__(self, services: PipelineServices) -> None:
        super().__init__(services)
        self._next_purge = 0.0

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        header = ctx.headers.get(IDEMPOTENCY_HEADER)
        if header is None:
            await call_next(ctx)
            return
        assert ctx.principal is not None and ctx.sink is not None
        key = parse_key(header)
        ctx.detail["idempotency_key"] = key
        await self._purge_now_and_then()
        fingerprint = request_sha256(ctx.body, ctx.principal.project_id, ctx.headers.get(CONVERSATION_HEADER) or "")
        ttl_s = DEFAULT_TTL_S + (self.services.settings.workflow_max_run_s if key.startswith(WORKFLOW_KEY_PREFIX)
                                 else 0.0)
        outcome = await claim_key(self.services.engine, org_id=ctx.principal.org_id, key=key,
                                  request_sha256=fingerprint, request_id=ctx.request_id, trace_id=ctx.trace_id,
                                  lease_s=self.lease_s, ttl_s=ttl_s)
        if isinstance(outcome, Replay):
            self._replay(ctx, outcome)
        else:
            await self._run(ctx, call_next, outcome)

    def _replay(self, ctx: RequestContext, replay: Replay) -> None:
        sink, response = ctx.sink, replay.response
        assert sink is not None and response.body is not None
        for name, value in response.headers.items():
            sink.set_header(name, value)
        sink.set_header(REPLAYED_HEADER, "true")
        if response.content_type.startswith("text/event-stream"):
            sink.start_stream()
            sink.end_stream(response.body)
        else:
            sink.set_json(response.body, status=response.status_code)
        ctx.status_code = response.status_code
        ctx.detail["idempotent_replay"] = True
        ctx.detail["replay_of_request_id"] = replay.request_id

    async def _run(self, ctx: RequestContext, call_next: Next, claim: Claim) -> None:
        assert ctx.sink is not None
        engine = self.services.engine
        recording = RecordingSink(ctx.sink, max_bytes=self.max_response_bytes)
        ctx.sink = recording
        renewer = asyncio.create_task(self._renew(claim))
        completed = False
        try:
            await call_next(ctx)
            response = recording.response() if ctx.error_code is None else None
            if response is not None:
                completed = await self._complete(claim, response)
                if response.body is None:
                    ctx.detail["idempotent_response_stored"] = False
        finally:
            renewer.cancel()
            ctx.sink = recording.inner
            if not completed:
                try:
                    await abandon_key(engine, claim)
                except Exception:
                    log.exception("could not release Idempotency-Key %r; it frees itself when its lease lapses",
                                  claim.key)

    async def _complete(self, claim: Claim, response: StoredResponse) -> bool:
        try:
            if await complete_key(self.services.engine, claim, response=response):
                return True
            log.warning("Idempotency-Key %r was taken over before its request completed; not stored", claim.key)
        except Exception:  # the caller still gets its answer; a retry runs again
            log.exception("could not store the response of Idempotency-Key %r", claim.key)
        return False

    async def _renew(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await renew_key(self.services.engine, claim, lease_s=self.lease_s):
                    return
            except Exception:
                log.warning("could not renew the lease of Idempotency-Key %r", claim.key, exc_info=True)

    async def _purge_now_and_then(self) -> None:
        moment = time.monotonic()
        if moment < self._next_purge:
            return
        self._next_purge = moment + self.purge_interval_s
        try:
            await purge_expired_keys(self.services.engine)
        except Exception:
            log.warning("could not purge expired idempotency keys", exc_info=True)
