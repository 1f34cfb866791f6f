"""The ``idempotency_keys`` table: one row per (org, Idempotency-Key) while it is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt, UTCDateTime

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class IdempotencyKey(CreatedAt, Base):
    """A key's claim (``in_progress``, with a lease) and then its stored response (``completed``).

    ``claim_token`` names the request that holds the claim: completing, abandoning or
    renewing it is conditional on that token, so a request whose lease was taken over can
    no longer write. ``response_body`` is NULL on a completed row whose response was too big
    to keep (see :data:`~.keys.MAX_RESPONSE_BYTES`).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("org_id", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    key: Mapped[str] = mapped_column(String(255))
    #: SHA-256 (hex) of what the request asks for: its body as sent, its project and conversation.
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | completed
    claim_token: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The claim's lease; past it, an ``in_progress`` row may be taken over (its gateway is gone).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Past it the row counts as absent (and is purged).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
