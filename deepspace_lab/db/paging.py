"""Keyset paging over (created_at, id), newest first, with an opaque cursor."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_

from ..errors import InvalidRequest

T = TypeVar("T", bound=tuple[Any, ...])
MAX_LIMIT = 200


def encode_cursor(created_at: datetime, row_id: str | int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), row_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("malformed cursor; pass back `next_cursor` as it was given", code="invalid_cursor",
                             param="cursor") from None


def check_limit(limit: int | str | None, default: int = 50) -> int:
    try:
        value = default if limit in (None, "") else int(limit)
    except ValueError:
        raise InvalidRequest("`limit` must be an integer", code="invalid_type", param="limit") from None
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
