"""Reading usage records: one org's rows, newest first, filtered, paged by keyset.

The pipeline writes ``usage_records`` (one row per request that reached the budget hold);
this module only reads them. A record comes back as a plain mapping of every column the
table has, so a column added to :class:`~.models.UsageRecord` shows up here with no change.

Paging is a keyset over ``id``, newest first, like the ledger's statement: the cursor names
the last row of a page and the next page is every older row (ids come from the database, so
the order holds across gateway processes whose clocks differ). The time filters read
``created_at``. Every query is scoped by the ``org_id`` the caller passes (from its
credential), so a cursor or a filter value taken from another org opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import InvalidRequest
from .models import UsageRecord

MAX_PAGE = 200
_U = cast(Table, UsageRecord.__table__)
_ID = re.compile(r"[A-Za-z0-9_]{1,40}")
_MODEL_MAX = cast(String, _U.c.model.type).length or 200
# RFC 3339 / ISO-8601 extended form: a date, optionally a time, optionally an offset.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}:\d{2})?)?")
_PLUS_LOST = re.compile(r".*T\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}:\d{2}")


@dataclass(frozen=True, slots=True)
class UsagePage:
    """A page of usage records (each a mapping of column → value), and the cursor of the next
    page (None on the last one)."""

    records: list[dict[str, Any]]
    next_cursor: str | None


def parse_time(value: str, *, param: str) -> datetime:
    """An ISO-8601 time (``2026-11-01``, ``2026-11-01T08:00:00Z``, ``…+02:00``) as an aware
    UTC datetime; a time without an offset is UTC. Raises :class:`InvalidRequest`
    (``invalid_time``, ``param``) for anything else."""
    if _TIME.fullmatch(value):
        try:
            moment = datetime.fromisoformat(value.replace("z", "Z"))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    hint = "; a `+` in a URL query reads as a space: send it as %2B, or use Z" if _PLUS_LOST.fullmatch(value) else ""
    raise InvalidRequest(f"`{param}` must be an ISO-8601 time such as 2026-11-01T08:00:00Z{hint}",
                         code="invalid_time", param=param)


def _check_id(value: str | None, param: str) -> None:
    if value is not None and not _ID.fullmatch(value):
        raise InvalidRequest(f"`{param}` is not an id (letters, digits and _, at most 40)", code="invalid_id",
                             param=param)


def _check_model(model: str | None) -> None:
    if model is not None and not (0 < len(model) <= _MODEL_MAX and model.isprintable()):
        raise InvalidRequest(f"`model` must be a model name of 1-{_MODEL_MAX} printable characters",
                             code="invalid_model", param="model")


def _check_time(value: datetime | None, param: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"`{param}` must carry a time zone", code="invalid_time", param=param)


def encode_cursor(record_id: int) -> str:
    return base64.urlsafe_b64encode(f"u{record_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id of the row a cursor names; only cursors :func:`encode_cursor` made pass."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("u") and raw[1:].isascii() and raw[1:].isdigit() and int(raw[1:]) < 2**63:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidRequest("`cursor` is not a cursor this API returned", code="invalid_cursor", param="cursor")


async def list_usage(session: AsyncSession, *, org_id: str, project_id: str | None = None,
                     api_key_id: str | None = None, model: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, limit: int = 50, cursor: str | None = None) -> UsagePage:
    """The org's usage records, newest first, ``limit`` (1-200) a page; pass ``next_cursor``
    back as ``cursor`` for the next one.

    Filters combine with AND: ``project_id``, ``api_key_id`` and ``model`` match exactly;
    ``since`` is inclusive and ``until`` exclusive (aware datetimes). Raises
    :class:`InvalidRequest` with ``param`` set: ``invalid_limit``, ``invalid_cursor``,
    ``invalid_id``, ``invalid_model``, ``invalid_time``, ``invalid_time_range`` (since after until).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"`limit` must be between 1 and {MAX_PAGE}", code="invalid_limit", param="limit")
    _check_id(project_id, "project_id")
    _check_id(api_key_id, "api_key_id")
    _check_model(model)
    _check_time(since, "since")
    _check_time(until, "until")
    if since is not None and until is not None and since > until:
        raise InvalidRequest("`since` is after `until`", code="invalid_time_range", param="until")

    query = select(_U).where(_U.c.org_id == org_id)
    for column, value in ((_U.c.project_id, project_id), (_U.c.api_key_id, api_key_id), (_U.c.model, model)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(_U.c.created_at >= since)
    if until is not None:
        query = query.where(_U.c.created_at < until)
    if cursor is not None:
        query = query.where(_U.c.id < decode_cursor(cursor))
    rows = [dict(r._mapping) for r in (await session.execute(query.order_by(_U.c.id.desc()).limit(limit + 1))).all()]
    page = rows[:limit]
    return UsagePage(page, encode_cursor(page[-1]["id"]) if len(rows) > limit else None)
