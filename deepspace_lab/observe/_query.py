"""What the observability queries share: checked filter values, a time window, and keyset
paging over ``(created_at, id)``, newest first, compared as a row value so that an index on
``(…, created_at, id)`` serves any page at any depth (no OFFSET, no scan of the rows before)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, literal, tuple_

from ..billing.usage_query import parse_time
from ..db.base import UTCDateTime
from ..db.paging import check_limit, decode_cursor, encode_cursor
from ..errors import InvalidRequest

_ID = re.compile(r"[A-Za-z0-9_]{1,40}")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows (plain mappings, times as ISO strings) and the next page's cursor
    (``None`` on the last page)."""

    data: list[dict[str, Any]]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"object": "list", "data": self.data, "next_cursor": self.next_cursor}


def check_id(value: str | None, param: str) -> str | None:
    """``value`` if it is an id (letters, digits and ``_``, 1-40); raises ``invalid_id``."""
    if value is not None and not _ID.fullmatch(value):
        raise InvalidRequest(f"`{param}` is not an id (letters, digits and _, at most 40)", code="invalid_id",
                             param=param)
    return value


def check_text(value: str | None, param: str, *, max_len: int) -> str | None:
    """A free-text filter value: printable, 1-``max_len`` characters; raises ``invalid_value``."""
    if value is not None and not (0 < len(value) <= max_len and value.isprintable()):
        raise InvalidRequest(f"`{param}` must be 1-{max_len} printable characters", code="invalid_value",
                             param=param)
    return value


def check_choice(value: str | None, param: str, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise InvalidRequest(f"`{param}` must be one of {list(choices)}", code="invalid_value", param=param)
    return value


def time_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``since`` (inclusive) and ``until`` (exclusive) parsed; raises ``invalid_time`` or
    ``invalid_time_range``."""
    lo = parse_time(since, param="since") if since is not None else None
    hi = parse_time(until, param="until") if until is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise InvalidRequest("`since` is after `until`", code="invalid_time_range", param="until")
    return lo, hi


def at(moment: datetime) -> Any:
    return literal(moment, UTCDateTime())


def keyset_page(query: Select[Any], created: Any, ident: Any, *, cursor: str | None,
                limit: int | str | None) -> tuple[Select[Any], int]:
    """``query`` newest first after ``cursor``, one row more than the limit; and the limit."""
    size = check_limit(limit)
    if cursor:
        stamp, row_id = decode_cursor(cursor)
        if not row_id.isdigit():
            raise InvalidRequest("malformed cursor; pass back `next_cursor` as it was given", code="invalid_cursor",
                                 param="cursor")
        query = query.where(tuple_(created, ident) < tuple_(at(stamp), literal(int(row_id))))
    return query.order_by(created.desc(), ident.desc()).limit(size + 1), size


def plain(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row._mapping.items()}


def to_page(rows: Sequence[Any], size: int) -> Page:
    page = rows[:size]
    more = len(rows) > size
    return Page([plain(r) for r in page], encode_cursor(page[-1].created_at, page[-1].id) if more else None)
