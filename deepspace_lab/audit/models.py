"""audit_logs: one row per gateway request on every path, plus admin/CLI actions.

No foreign keys: an audit row outlives whatever it mentions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt


class AuditLog(CreatedAt, Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        # retention deletes by age, oldest first; the Admin API's request-log search pages newest
        # first, at any depth, behind each filter (migration 0010)
        Index("ix_audit_logs_created_at_id", "created_at", "id"),
        *(Index(f"ix_audit_logs_{c}_created_at_id", c, "created_at", "id")
          for c in ("org_id", "user_id", "api_key_id", "model", "client_ip")),
        # the overview's error counts read the error rows alone
        Index("ix_audit_logs_errors_created_at_id", "created_at", "id",
              postgresql_where=text("status_code >= 400"), sqlite_where=text("status_code >= 400")),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    request_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(40))  # gateway.request | cli.init | ...
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    path: Mapped[str | None] = mapped_column(String(300), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
