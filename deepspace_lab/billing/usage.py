"""Usage rows: one per request that reached the budget hold (DESIGN §12.6).

The row is written ``pending`` by the hold and completed by the capture or release, each in
the same statement or transaction as its ledger entry (:mod:`._pg`'s ``*_WITH_USAGE``
statements, and the functions here for the step-by-step path), so there is never a usage row
without its hold or a settled hold whose row still says pending. Reconciliation marks the row
of a hold it expires (``measured = unknown``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .models import UsageRecord

_U = cast(Table, UsageRecord.__table__)


@dataclass(frozen=True, slots=True)
class UsageStart:
    """Who made the request and what it asked for: the pending row's columns."""

    request_id: str
    trace_id: str
    model: str
    project_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    stream: bool = False

    def params(self) -> dict[str, Any]:
        return {"u_request_id": self.request_id, "u_trace_id": self.trace_id, "u_model": self.model,
                "u_project_id": self.project_id, "u_user_id": self.user_id, "u_api_key_id": self.api_key_id,
                "u_stream": self.stream}


@dataclass(frozen=True, slots=True)
class UsageOutcome:
    """What the request used, and how that was learned (``measured``: see ``models.MEASURED``)."""

    measured: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    delivered_tokens: int = 0
    finish_reason: str | None = None
    upstream_response_id: str | None = None
    error_code: str | None = None

    def params(self) -> dict[str, Any]:
        return {"u_measured": self.measured, "u_prompt_tokens": self.prompt_tokens,
                "u_completion_tokens": self.completion_tokens, "u_delivered_tokens": self.delivered_tokens,
                "u_finish_reason": (self.finish_reason or None) and self.finish_reason[:32],
                "u_upstream_response_id": (self.upstream_response_id or None) and self.upstream_response_id[:200],
                "u_error_code": self.error_code}


async def insert_pending(conn: AsyncConnection, p: Mapping[str, Any]) -> None:
    await conn.execute(insert(_U).values(
        request_id=p["u_request_id"], trace_id=p["u_trace_id"], org_id=p["org_id"], project_id=p["u_project_id"],
        user_id=p["u_user_id"], api_key_id=p["u_api_key_id"], model=p["u_model"], prompt_tokens=0,
        completion_tokens=0, delivered_tokens=0, cost_micros=0, measured="pending", status="pending",
        held_micros=p["amount"], stream=p["u_stream"], price_id=p["price_id"], created_at=p["now"]))


async def complete(conn: AsyncConnection, p: Mapping[str, Any], *, request_id: str | None, status: str,
                   cost_micros: int) -> None:
    if request_id is None:
        return
    await conn.execute(update(_U).where(_U.c.request_id == request_id, _U.c.status == "pending").values(
        status=status, measured=p["u_measured"], prompt_tokens=p["u_prompt_tokens"],
        completion_tokens=p["u_completion_tokens"], delivered_tokens=p["u_delivered_tokens"], cost_micros=cost_micros,
        finish_reason=p["u_finish_reason"], upstream_response_id=p["u_upstream_response_id"],
        error_code=p["u_error_code"], settled_at=p["now"]))


async def grow(conn: AsyncConnection, *, request_id: str | None, amount: int) -> None:
    """A top-up of the request's hold."""
    if request_id is not None:
        await conn.execute(update(_U).where(_U.c.request_id == request_id, _U.c.status == "pending")
                           .values(held_micros=_U.c.held_micros + amount))


async def mark_expired(conn: AsyncConnection, p: Mapping[str, Any], *, request_id: str | None) -> None:
    """Reconciliation released the hold of a request nobody finished."""
    if request_id is None:
        return
    await conn.execute(update(_U).where(_U.c.request_id == request_id, _U.c.status == "pending").values(
        status="expired", measured="unknown", error_code="lease_expired", settled_at=p["now"]))
