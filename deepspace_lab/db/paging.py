"""Keyset paging over (created_at, id), newest first, with an opaque cursor."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_

from ..errors import InvalidRequest

T = TypeVar("T", bound=tuple[Any, ...])
MAX_LIMIT = 200
_ROW_ID = re.compile(r"[A-Za-z0-9_]{1,40}")
_DECIMAL = re.compile(r"-?[0-9]+")


def encode_cursor(created_at: datetime, row_id: str | int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor names, created_at aware UTC. Raises :class:`InvalidRequest`
    (``invalid_cursor``) for anything :func:`encode_cursor` cannot have made: among others a
    time with no zone (the column refuses naive times when the query runs) or one that leaves
    the calendar once in UTC, and an id that is not one (no NUL reaches the database)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is not None and _ROW_ID.fullmatch(row_id):
            return moment.astimezone(UTC), row_id
    except (ValueError, UnicodeDecodeError, OverflowError):
        pass
    raise InvalidRequest("malformed cursor; pass back `next_cursor` as it was given", code="invalid_cursor",
                         param="cursor")


def check_limit(limit: int | str | None, default: int = 50) -> int:
    """``limit`` (absent: ``default``) as 1-``MAX_LIMIT``; an empty or non-decimal string (``""``,
    ``" 5"``, ``"5_0"``, non-ASCII digits — all of which ``int`` would take or default) is
    ``invalid_type``, a number out of range ``invalid_value``."""
    if limit is None:
        return default
    if isinstance(limit, str) and not _DECIMAL.fullmatch(limit):
        raise InvalidRequest("`limit` must be an integer", code="invalid_type", param="limit")
    value = int(limit) if len(str(limit)) < 10 else MAX_LIMIT + 1  # past int()'s digit limit too
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidRequest(f"`limit` must be 1-{MAX_LIMIT}", code="invalid_value", param="limit")
    return value


def newest_first(query: Select[Any], created_col: Any, id_col: Any, *, cursor: str | None, limit: int) -> Select[Any]:
    """``query`` ordered newest first, after ``cursor``, one row more than ``limit`` (to know
    whether a next page exists)."""
    if cursor:
        stamp, row_id = decode_cursor(cursor)
        query = query.where(or_(created_col < stamp, and_(created_col == stamp, id_col < row_id)))
    return query.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)
