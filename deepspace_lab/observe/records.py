"""Usage records and the request log (``audit_logs``) across orgs: filtered, newest first,
keyset paged over ``(created_at, id)``.

Every function takes ``org_id``: ``None`` reads every org (a platform admin), an id limits
every row to that org (an org admin, or a platform admin's filter). Filters combine with
AND; ``since`` is inclusive, ``until`` exclusive. Migration 0010 gives each common filter an
index ending in ``(created_at, id)`` so a page costs the same at any depth.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..billing.models import MEASURED, USAGE_STATUSES, UsageRecord
from ..errors import InvalidRequest
from ._query import Page, at, check_choice, check_id, check_text, keyset_page, time_window, to_page

U = cast(Table, UsageRecord.__table__)
A = cast(Table, AuditLog.__table__)

USAGE_FILTERS = ("org_id", "project_id", "user_id", "api_key_id", "model", "status", "measured", "since", "until")
AUDIT_FILTERS = ("org_id", "user_id", "api_key_id", "model", "status_code", "error_code", "kind", "path",
                 "client_ip", "since", "until")


def _window(query: Any, table: Table, since: str | None, until: str | None) -> Any:
    lo, hi = time_window(since, until)
    if lo is not None:
        query = query.where(table.c.created_at >= at(lo))
    if hi is not None:
        query = query.where(table.c.created_at < at(hi))
    return query


async def search_usage(session: AsyncSession, *, org_id: str | None, filters: dict[str, str | None],
                       cursor: str | None = None, limit: int | str | None = None) -> Page:
    """Usage records of ``org_id`` (``None``: every org) matching ``filters`` (names in
    :data:`USAGE_FILTERS`, values as given on the wire). Raises :class:`InvalidRequest`
    (``invalid_id``, ``invalid_value``, ``invalid_time``, ``invalid_time_range``,
    ``invalid_cursor``, ``invalid_type`` for the limit)."""
    f = filters.get
    query = select(U)
    if org_id is not None:
        query = query.where(U.c.org_id == check_id(org_id, "org_id"))
    for name in ("project_id", "user_id", "api_key_id"):
        if f(name) is not None:
            query = query.where(U.c[name] == check_id(f(name), name))
    if f("model") is not None:
        query = query.where(U.c.model == check_text(f("model"), "model", max_len=200))
    if f("status") is not None:
        query = query.where(U.c.status == check_choice(f("status"), "status", USAGE_STATUSES))
    if f("measured") is not None:
        query = query.where(U.c.measured == check_choice(f("measured"), "measured", MEASURED))
    query, size = keyset_page(_window(query, U, f("since"), f("until")), U.c.created_at, U.c.id, cursor=cursor,
                              limit=limit)
    return to_page((await session.execute(query)).all(), size)


def _status_code(value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) == 3 and 100 <= int(value) <= 599):
        raise InvalidRequest("`status_code` must be an HTTP status (100-599)", code="invalid_value",
                             param="status_code")
    return int(value)


def _prefix(value: str) -> str:
    """``value`` as a LIKE prefix pattern, its own wildcards escaped."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_audit(session: AsyncSession, *, org_id: str | None, filters: dict[str, str | None],
                       cursor: str | None = None, limit: int | str | None = None) -> Page:
    """Audit rows of ``org_id`` (``None``: every org, and rows of no org) matching ``filters``
    (names in :data:`AUDIT_FILTERS`): ``path`` matches a prefix, the rest exactly. Raises
    :class:`InvalidRequest` as :func:`search_usage` does."""
    f = filters.get
    query = select(A)
    if org_id is not None:
        query = query.where(A.c.org_id == check_id(org_id, "org_id"))
    for name in ("user_id", "api_key_id"):
        if f(name) is not None:
            query = query.where(A.c[name] == check_id(f(name), name))
    for name, max_len in (("model", 200), ("error_code", 64), ("kind", 40), ("client_ip", 64)):
        if f(name) is not None:
            query = query.where(A.c[name] == check_text(f(name), name, max_len=max_len))
    if f("status_code") is not None:
        query = query.where(A.c.status_code == _status_code(str(f("status_code"))))
    if f("path") is not None:
        query = query.where(A.c.path.like(_prefix(str(check_text(f("path"), "path", max_len=300))), escape="\\"))
    query, size = keyset_page(_window(query, A, f("since"), f("until")), A.c.created_at, A.c.id, cursor=cursor,
                              limit=limit)
    return to_page((await session.execute(query)).all(), size)
