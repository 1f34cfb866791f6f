"""The ``webhooks`` table: one subscription, for one org or (``org_id`` null) global."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
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
