"""Files and artifacts per org and project: the table row and the bytes in storage.

Every read and delete takes the caller's org (and the row's project when the caller names
one): another org's file id is a 404, like an unknown one. The bytes are written before the
row commits (a crash leaves at most an orphan object, never a row without bytes) and
deleted after the row is.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..db.base import new_id, utcnow
from ..db.paging import check_limit, encode_cursor, newest_first
from ..storage import Storage
from .errors import FileNotFoundInOrgError, FileTooLargeError, InvalidFileNameError, UnsupportedContentTypeError
from .models import FILE_KINDS, File

F = cast(Table, File.__table__)
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class FileView:
    id: str
    org_id: str
    project_id: str | None
    name: str
    content_type: str
    size_bytes: int
    sha256: str
    kind: str
    storage_key: str
    created_by: str | None
    job_id: str | None
    trace_id: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """What a caller sees (not where the bytes are)."""
        return {"id": self.id, "object": "file", "project_id": self.project_id, "name": self.name,
                "content_type": self.content_type, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "kind": self.kind, "job_id": self.job_id, "created_at": self.created_at.isoformat()}


_COLUMNS = [F.c[name] for name in FileView.__dataclass_fields__]


def check_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or not clean.isprintable() or "/" in clean or "\\" in clean \
            or clean in (".", ".."):
        raise InvalidFileNameError(f"a file name is 1-{MAX_NAME} printable characters without / or \\",
                                   param="name")
    return clean


def check_content_type(content_type: str, allowed: tuple[str, ...]) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    family = kind.split("/", 1)[0] + "/*"
    if not kind or (kind not in allowed and family not in allowed):
        raise UnsupportedContentTypeError(f"content type {kind or '(none)'!r} is not accepted; allowed: "
                                          f"{list(allowed)}", param="content_type")
    return kind


def storage_key(org_id: str, project_id: str | None, file_id: str) -> str:
    return f"files/{org_id}/{project_id or '_org'}/{file_id}"


async def store_file(engine: AsyncEngine, storage: Storage, *, org_id: str, project_id: str | None, name: str,
                     content_type: str, data: bytes, kind: str = "upload", created_by: str | None = None,
                     job_id: str | None = None, trace_id: str | None = None, max_bytes: int | None = None,
                     allowed_types: tuple[str, ...] | None = None) -> FileView:
    """Write ``data`` to storage and record it. Limits apply when given (callers' uploads);
    files the Worker makes (exports) pass none."""
    name = check_name(name)
    if allowed_types is not None:
        content_type = check_content_type(content_type, allowed_types)
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLargeError(f"the file is {len(data)} bytes; the limit is {max_bytes}", param="file")
    assert kind in FILE_KINDS
    file_id = new_id("file")
    key = storage_key(org_id, project_id, file_id)
    await asyncio.to_thread(storage.put, key, data)
    values: dict[str, Any] = {"id": file_id, "org_id": org_id, "project_id": project_id, "name": name,
              "content_type": content_type, "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "kind": kind, "storage_key": key, "created_by": created_by, "job_id": job_id, "trace_id": trace_id,
              "created_at": utcnow()}
    async with engine.begin() as conn:
        await conn.execute(insert(F).values(**values))
    return FileView(**values)


async def store_local_file(engine: AsyncEngine, storage: Storage, *, org_id: str, project_id: str | None,
                           name: str, content_type: str, local_path: str, size_bytes: int, sha256: str,
                           kind: str, created_by: str | None = None, job_id: str | None = None,
                           trace_id: str | None = None) -> FileView:
    """Record a file the Worker wrote to a local temporary file (an export), copying it to
    storage first; no upload limits apply."""
    assert kind in FILE_KINDS
    file_id = new_id("file")
    key = storage_key(org_id, project_id, file_id)
    await asyncio.to_thread(storage.put_file, key, local_path)
    values: dict[str, Any] = {"id": file_id, "org_id": org_id, "project_id": project_id, "name": check_name(name),
              "content_type": content_type, "size_bytes": size_bytes, "sha256": sha256, "kind": kind,
              "storage_key": key, "created_by": created_by, "job_id": job_id, "trace_id": trace_id,
              "created_at": utcnow()}
    async with engine.begin() as conn:
        await conn.execute(insert(F).values(**values))
    return FileView(**values)


async def get_file(session: AsyncSession, *, org_id: str, file_id: str) -> FileView:
    row = (await session.execute(select(*_COLUMNS).where(F.c.id == file_id, F.c.org_id == org_id))).first()
    if row is None:
        raise FileNotFoundInOrgError(f"no file {file_id!r}", param="file_id")
    return FileView(**dict(row._mapping))


async def read_file(session: AsyncSession, storage: Storage, *, org_id: str, file_id: str) -> tuple[FileView, bytes]:
    view = await get_file(session, org_id=org_id, file_id=file_id)
    try:
        data = await asyncio.to_thread(storage.get, view.storage_key)
    except FileNotFoundError:
        raise FileNotFoundInOrgError(f"file {file_id!r} has no content in storage", param="file_id") from None
    return view, data


@dataclass(frozen=True, slots=True)
class FilePage:
    files: list[FileView]
    next_cursor: str | None


async def list_files(session: AsyncSession, *, org_id: str, project_id: str | None = None, kind: str | None = None,
                     limit: int | str | None = None, cursor: str | None = None) -> FilePage:
    size = check_limit(limit)
    query = select(*_COLUMNS).where(F.c.org_id == org_id)
    if project_id is not None:
        query = query.where(F.c.project_id == project_id)
    if kind is not None:
        query = query.where(F.c.kind == kind)
    rows = (await session.execute(newest_first(query, F.c.created_at, F.c.id, cursor=cursor, limit=size))).all()
    files = [FileView(**dict(r._mapping)) for r in rows[:size]]
    return FilePage(files, encode_cursor(files[-1].created_at, files[-1].id) if len(rows) > size else None)


async def delete_file(session: AsyncSession, storage: Storage, *, org_id: str, file_id: str) -> FileView:
    view = await get_file(session, org_id=org_id, file_id=file_id)
    await session.execute(delete(F).where(F.c.id == file_id, F.c.org_id == org_id))
    await session.commit()
    await asyncio.to_thread(storage.delete, view.storage_key)
    return view
