"""What a delivery sends and what it leaves: the event body, the signed headers, one row per
attempt in ``webhook_deliveries``, and the delivery log an admin reads (scoped by org).

A receiver checks a delivery like this (:func:`verify_signature` does it)::

    timestamp = request.headers["X-DeepSpace-Timestamp"]          # unix seconds
    expected = "sha256=" + hmac_sha256(secret, f"{timestamp}.".encode() + raw_body).hexdigest()
    hmac.compare_digest(expected, request.headers["X-DeepSpace-Signature"])   # and the time is recent

``X-DeepSpace-Event`` names the event, ``X-DeepSpace-Event-Id`` is the same on every retry and
redelivery of one event (dedupe on it) and ``X-DeepSpace-Delivery`` names the attempt.
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import new_id, utcnow
from ..db.paging import check_limit, encode_cursor, newest_first
from .errors import WebhookNotFoundError
from .models import PING, WebhookDelivery
from .service import webhook_row
from .signing import signature

USER_AGENT = "DeepSpace-Lab-Webhooks/1"
#: a receiver should refuse a timestamp further than this from its clock (replays)
TOLERANCE_S = 300
MAX_ERROR = 500


def event_body(event: str, *, event_id: str, org_id: str | None, data: dict[str, Any]) -> str:
    """The JSON text every attempt of this event sends (compact, keys sorted)."""
    return json.dumps({"id": event_id, "type": event, "created_at": utcnow().isoformat(),
                       "org_id": org_id, "data": data}, sort_keys=True, separators=(",", ":"))


def ping_event(*, webhook_id: str, org_id: str | None, sent_by: str) -> tuple[str, str]:
    """A test event for one hook: (event id, body)."""
    event_id = new_id("evt")
    return event_id, event_body(PING, event_id=event_id, org_id=org_id, data={
        "webhook_id": webhook_id, "message": "a test event from DeepSpace Lab", "sent_by": sent_by})


def signed_headers(secret: str, *, body: bytes, event: str, event_id: str, delivery_id: str,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers of one attempt: content type, event, ids, timestamp and signature."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-DeepSpace-Event": event,
            "X-DeepSpace-Event-Id": event_id, "X-DeepSpace-Delivery": delivery_id,
            "X-DeepSpace-Timestamp": str(stamp),
            "X-DeepSpace-Signature": signature(secret, timestamp=stamp, body=body)}


def verify_signature(secret: str, *, body: bytes, timestamp: str, signature_header: str,
                     tolerance_s: int = TOLERANCE_S, now: float | None = None) -> bool:
    """What a receiver runs: the signature matches ``<timestamp>.<body>`` under ``secret`` and
    the timestamp is within ``tolerance_s`` of ``now``."""
    if not timestamp.isdigit() or abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp=int(timestamp), body=body), signature_header)


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    webhook_id: str
    org_id: str | None
    event_id: str
    event: str
    trigger: str
    job_id: str | None
    attempt: int
    status: str
    response_code: int | None
    latency_ms: int | None
    error: str | None
    body: str
    trace_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryView:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return {"object": "webhook_delivery", **{name: getattr(self, name) for name in self.__dataclass_fields__
                                                 if name != "created_at"},
                "created_at": self.created_at.isoformat()}


def record_attempt(session: AsyncSession, *, webhook_id: str, org_id: str | None, event_id: str, event: str,
                   trigger: str, job_id: str | None, attempt: int, status: str, body: str,
                   response_code: int | None = None, latency_ms: int | None = None, error: str | None = None,
                   trace_id: str | None = None, delivery_id: str) -> None:
    """Add one attempt's row, ``delivery_id`` as its signed headers named it (the caller commits)."""
    session.add(WebhookDelivery(id=delivery_id, webhook_id=webhook_id, org_id=org_id, event_id=event_id,
                                event=event, trigger=trigger, job_id=job_id, attempt=attempt, status=status,
                                response_code=response_code, latency_ms=latency_ms,
                                error=error[:MAX_ERROR] if error else None, body=body, trace_id=trace_id))


async def list_deliveries(session: AsyncSession, *, webhook_id: str, org_scope: str | None,
                          cursor: str | None = None,
                          limit: int | str | None = None) -> tuple[list[DeliveryView], str | None]:
    """A hook's attempts, newest first, a page at a time; another org's hook is not found."""
    size = check_limit(limit)
    await webhook_row(session, webhook_id, org_scope)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    rows = list((await session.execute(newest_first(query, WebhookDelivery.created_at, WebhookDelivery.id,
                                                    cursor=cursor, limit=size))).scalars())
    page = [DeliveryView.of(r) for r in rows[:size]]
    return page, encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > size else None


async def get_delivery(session: AsyncSession, *, webhook_id: str, delivery_id: str,
                       org_scope: str | None) -> DeliveryView:
    await webhook_row(session, webhook_id, org_scope)
    row = (await session.execute(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id))).scalar_one_or_none()
    if row is None:
        raise WebhookNotFoundError(f"no delivery {delivery_id!r} of this webhook", code="delivery_not_found",
                                   param="delivery_id")
    return DeliveryView.of(row)


