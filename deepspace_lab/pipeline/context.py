"""What a pipeline step sees: the request context, the response sink and the services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from ..audit import AuditWriter
from ..audit.metrics import RequestMetrics
from ..auth.lookup import PgKeyReader, SqliteKeyReader
from ..auth.principal import Principal
from ..cache import TTLCache
from ..catalog import ModelInfo
from ..config import Settings
from ..conversations.models import Conversation
from ..policy.cache import PolicyCache
from ..policy.limiter import Limiter
from ..policy.rules import IPAddress, PolicySnapshot
from ..upstream import UpstreamClient
from .chat import ChatRequest
from .metering import RequestBilling


class ResponseSink(Protocol):
    """How steps answer the caller; the HTTP layer implements it.

    Nothing is final until the pipeline returns: the HTTP layer ends the response after the
    last step (audit included) has run.
    """

    def start_stream(self) -> None:
        """Send SSE headers; from now on an error can only travel as an SSE event."""

    def send(self, data: bytes) -> None:
        """Write and flush stream bytes; a no-op once the client has gone."""

    def end_stream(self, data: bytes) -> None:
        """The stream's last bytes (``[DONE]`` or an error event), sent when the pipeline returns."""

    def set_json(self, body: bytes, *, status: int = 200) -> None:
        """The whole (non-streaming) response body, sent when the pipeline returns."""

    def set_header(self, name: str, value: str) -> None:
        """A response header; only before the stream starts (a stream's headers go out with it)."""

    @property
    def client_gone(self) -> bool: ...


@dataclass(slots=True, kw_only=True)
class PipelineServices:
    """Everything steps use, built once per process by the composition root."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[Any]
    audit: AuditWriter
    upstream: UpstreamClient
    models: TTLCache[ModelInfo]
    upstream_is_simulated: bool = False
    #: Authentication's hot read on raw driver connections (None: the ORM path).
    key_reader: PgKeyReader | SqliteKeyReader | None = None
    #: The policies in force (None: no policy steps, e.g. in unit tests of other steps).
    policies: PolicyCache | None = None
    #: Rate limits: Redis-backed when ``redis_url`` is set, else in-process.
    limiter: Limiter | None = None
    #: Running product streams (``streams.StreamRegistry``), for Stop across processes.
    streams: Any = None
    #: Prometheus counters the audit step feeds (``audit.metrics.RequestMetrics``; None: not counted).
    metrics: RequestMetrics | None = None
    #: The Worker's queue (``jobs.JobQueue``), made on first use, for steps that start jobs (the
    #: ``workflow`` step); None where no queue is wired.
    job_queue: Callable[[], Any] | None = None


@dataclass(slots=True, kw_only=True)
class RequestContext:
    trace_id: str
    request_id: str
    method: str
    path: str
    client_ip: str | None
    headers: Mapping[str, str]
    body: bytes
    started: float
    sink: ResponseSink | None = None
    #: ``client_ip`` parsed (None when unknown); behind trusted proxies, the client's own
    client_address: IPAddress | None = None
    kind: str = "gateway.request"
    #: What the route does, checked by the auth step (see ``auth.permissions``); "" = any caller.
    action: str = ""
    # filled in by steps
    policies: PolicySnapshot | None = None
    principal: Principal | None = None
    chat: ChatRequest | None = None
    model: ModelInfo | None = None
    conversation: Conversation | None = None
    billing: RequestBilling | None = None
    # the outcome, read by the audit step
    status_code: int = 200
    error_code: str | None = None
    usage: dict[str, Any] | None = None
    upstream_response_id: str | None = None
    finish_reason: str | None = None
    reply_text: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: the caller's Stop (the product stream's cancel route): set by the relay while it reads
    stop: Callable[[], None] | None = None
    cancel_requested: bool = False

    def request_stop(self) -> None:
        """Stop the stream now, or as soon as the relay starts reading it."""
        self.cancel_requested = True
        if self.stop is not None:
            self.stop()


Next = Callable[[RequestContext], Awaitable[None]]
