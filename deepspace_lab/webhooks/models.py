"""The ``webhooks`` table: one subscription, for one org or (``org_id`` null) global."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, CreatedAt, UTCDateTime

#: What a hook may ask for: a budget crossing a threshold, a wallet running low, an anomaly.
WEBHOOK_EVENTS = ("budget.threshold", "wallet.low_balance", "usage.anomaly")


class Webhook(CreatedAt, Base):
    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: None: a global hook (platform admins' own)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), nullable=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the signing secret, Fernet-encrypted (see :mod:`.signing`); never returned after create/rotate
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


#: The test event ``POST /webhooks/{id}/test`` sends (to any hook, whatever its events).
PING = "ping"
DELIVERY_STATUSES = ("succeeded", "retrying", "failed")
DELIVERY_TRIGGERS = ("event", "test", "redeliver")


class WebhookDelivery(CreatedAt, Base):
    """One delivery attempt: a POST of one event's body to one hook, and how it went.

    ``event_id`` is the same for every attempt and redelivery of one event to one hook (a
    receiver dedupes on it); ``attempt`` counts from 1 within one delivery job; ``status`` is
    ``succeeded`` (a 2xx), ``retrying`` (failed, another attempt follows) or ``failed`` (the
    last attempt failed). The body is kept as sent (events carry no secret), so a redelivery
    sends the same bytes; the signing secret is never stored here."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16), default="event")
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))
    response_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


#: the alert key of broken ledger invariants: present while the last scheduled reconciliation
#: found problems (the Dashboard's "reconciliation drift"); its findings are the newest
#: ``worker.reconcile`` audit row
RECONCILE_ALERT_KEY = "anomaly:reconcile"


class WebhookAlert(CreatedAt, Base):
    """A condition that has fired and not yet cleared (a budget past 80 % this period, a wallet
    below the low-balance mark, an anomaly): its key is unique, so a condition fires once per
    crossing — the row goes when the condition clears, and the next crossing fires again."""

    __tablename__ = "webhook_alerts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event: Mapped[str] = mapped_column(String(64))
