"""Prices per model, versioned by ``effective_at``, and the one rounding rule.

A price version is never edited: a new price is a new row, and the one in force at a moment
is the newest whose ``effective_at`` is not after it (so future prices can be set ahead).
A hold records the version it was priced at, and its capture uses that same version
(:func:`deepspace_lab.billing.ledger.capture_usage`), even if a new price started in between.
A model with no version in force is refused (``NoPriceError``) unless a version marks it
``free``.

**Rounding rule** — applied once, on the request's total, upwards::

    cost_micros = ceil((tokens_in * input_micros_per_mtok + tokens_out * output_micros_per_mtok) / 1_000_000)

Rates are integer micro-credits per million tokens, the sum is exact integer arithmetic, and
the single ceiling means a request is never charged less than its exact cost and at most
0.999… micro-credit more. The hold estimate uses the same function with the worst-case token
counts, so (the function being monotonic) a capture within the estimate never exceeds its hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db.base import utcnow
from ..errors import InvalidRequest
from .errors import InvalidAmountError, NoPriceError, PriceVersionExistsError
from .models import Price

TOKENS_PER_MTOK = 1_000_000
MAX_RATE_MICROS_PER_MTOK = 2**40
_P = cast(Table, Price.__table__)


@dataclass(frozen=True, slots=True)
class PriceVersion:
    id: int
    model_name: str
    input_micros_per_mtok: int
    output_micros_per_mtok: int
    effective_at: datetime
    free: bool
    actor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model_name, "input_micros_per_mtok": self.input_micros_per_mtok,
                "output_micros_per_mtok": self.output_micros_per_mtok, "effective_at": self.effective_at.isoformat(),
                "free": self.free}


_COLUMNS = [_P.c[name] for name in PriceVersion.__dataclass_fields__]


def cost_micros(price: PriceVersion, *, tokens_in: int, tokens_out: int) -> int:
    """What ``tokens_in`` prompt and ``tokens_out`` completion tokens cost (the rounding rule)."""
    for name, tokens in (("tokens_in", tokens_in), ("tokens_out", tokens_out)):
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise InvalidRequest(f"`{name}` must be a whole number, 0 or more", code="invalid_tokens", param=name)
    if price.free:
        return 0
    total = tokens_in * price.input_micros_per_mtok + tokens_out * price.output_micros_per_mtok
    return -(-total // TOKENS_PER_MTOK)


def _rate(value: object, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RATE_MICROS_PER_MTOK:
        raise InvalidAmountError(f"`{param}` must be a whole number of micro-credits between 0 and "
                                 f"{MAX_RATE_MICROS_PER_MTOK}", param=param)
    return value


def _version(row: Any) -> PriceVersion:
    return PriceVersion(**row._mapping)


async def set_price(
    session: AsyncSession, *, model_name: str, input_micros_per_mtok: int = 0, output_micros_per_mtok: int = 0,
    effective_at: datetime | None = None, free: bool = False, actor: str | None = None,
) -> tuple[PriceVersion, bool]:
    """Add a price version (flushed; the caller commits). Returns (version, created).

    The same (model, ``effective_at``) again with the same rates is a no-op that returns the
    existing version (a retried command); with other rates it is ``PriceVersionExistsError``:
    history is not rewritten, set a new ``effective_at`` instead.
    """
    if not isinstance(model_name, str) or not model_name.strip() or len(model_name) > 200:
        raise InvalidRequest("the model name must be 1 to 200 characters", code="invalid_model", param="model")
    rate_in = 0 if free else _rate(input_micros_per_mtok, "input_micros_per_mtok")
    rate_out = 0 if free else _rate(output_micros_per_mtok, "output_micros_per_mtok")
    if effective_at is not None and effective_at.tzinfo is None:
        raise InvalidRequest("`effective_at` needs a time zone (e.g. 2026-01-01T00:00:00Z)", code="invalid_time",
                             param="effective_at")
    at = effective_at or utcnow()
    existing = (await session.execute(
        select(*_COLUMNS).where(_P.c.model_name == model_name, _P.c.effective_at == at))).first()
    if existing is not None:
        version = _version(existing)
        if (version.input_micros_per_mtok, version.output_micros_per_mtok, version.free) != (rate_in, rate_out, free):
            raise PriceVersionExistsError(f"{model_name} already has another price from {at.isoformat()}; "
                                          "prices are history: set one with a new effective time")
        return version, False
    row = Price(model_name=model_name, input_micros_per_mtok=rate_in, output_micros_per_mtok=rate_out,
                effective_at=at, free=free, actor=actor)
    session.add(row)
    await session.flush()
    return PriceVersion(id=row.id, model_name=model_name, input_micros_per_mtok=rate_in,
                        output_micros_per_mtok=rate_out, effective_at=at, free=free, actor=actor), True


async def price_for(db: AsyncSession | AsyncConnection, *, model_name: str, at: datetime | None = None,
                    ) -> PriceVersion:
    """The version in force for ``model_name`` at ``at`` (default now); ``NoPriceError`` if none."""
    row = (await db.execute(
        select(*_COLUMNS).where(_P.c.model_name == model_name, _P.c.effective_at <= (at or utcnow()))
        .order_by(_P.c.effective_at.desc()).limit(1))).first()
    if row is None:
        raise NoPriceError(f"the model {model_name!r} has no price; an operator sets one with "
                           "`deepspace-lab prices set` (or marks it free)", param="model")
    return _version(row)


async def price_history(db: AsyncSession | AsyncConnection, *, model_name: str) -> tuple[PriceVersion, ...]:
    """Every version of one model, newest ``effective_at`` first (what a gateway caches)."""
    rows = await db.execute(select(*_COLUMNS).where(_P.c.model_name == model_name)
                            .order_by(_P.c.effective_at.desc(), _P.c.id.desc()))
    return tuple(_version(r) for r in rows)


def in_force(history: tuple[PriceVersion, ...], *, model_name: str, at: datetime) -> PriceVersion:
    """The version of ``history`` (newest first) in force at ``at``; ``NoPriceError`` if none."""
    for version in history:
        if version.effective_at <= at:
            return version
    raise NoPriceError(f"the model {model_name!r} has no price; an operator sets one with "
                       "`deepspace-lab prices set` (or marks it free)", param="model")


async def get_price(db: AsyncSession | AsyncConnection, price_id: int) -> PriceVersion | None:
    row = (await db.execute(select(*_COLUMNS).where(_P.c.id == price_id))).first()
    return _version(row) if row is not None else None


async def list_prices(db: AsyncSession | AsyncConnection, *, model_name: str | None = None) -> list[PriceVersion]:
    """Every version (past, current and future), by model, newest ``effective_at`` first."""
    query = select(*_COLUMNS)
    if model_name is not None:
        query = query.where(_P.c.model_name == model_name)
    rows = await db.execute(query.order_by(_P.c.model_name, _P.c.effective_at.desc(), _P.c.id.desc()))
    return [_version(r) for r in rows]
