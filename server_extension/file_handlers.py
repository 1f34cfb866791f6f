"""Files and artifacts of the caller's org: upload (the raw body, its Content-Type, a
``name`` query parameter) into the caller's project, list, read, download, delete."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from tornado.iostream import StreamClosedError

from deepspace_lab.errors import InvalidRequest
from deepspace_lab.files import FileNotFoundInOrgError, FileView, delete_file, get_file, list_files, store_file
from deepspace_lab.files.models import FILE_KINDS
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, principal_of, query_params
from .base import DeepSpaceHandler
from .worker_handlers import check_id

API = "/deepspace/api"
ID = r"([A-Za-z0-9_]{1,40})"


def _created_by(ctx: RequestContext) -> str:
    p = principal_of(ctx)
    return f"key:{p.api_key_id}" if p.api_key_id else f"user:{p.user_id}"


class FilesHandler(ApiHandler):
    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            name = query_params(self, allowed=("name",)).get("name")
            if not name:
                raise InvalidRequest("`name` (the file's name) is required", code="missing_field", param="name")
            p = principal_of(ctx)
            settings = self.runtime.settings
            stored = await store_file(
                self.runtime.engine, self.runtime.storage, org_id=p.org_id, project_id=p.project_id, name=name,
                content_type=self.request.headers.get("Content-Type", ""), data=ctx.body or b"",
                created_by=_created_by(ctx), trace_id=ctx.trace_id, max_bytes=settings.storage_max_file_bytes,
                allowed_types=settings.allowed_content_types)
            ctx.detail.update(file_id=stored.id, size_bytes=stored.size_bytes)
            return 201, stored.to_dict()

        await self.api(action="files.write", kind="api.file.upload", work=work)

    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            arg = query_params(self, allowed=("project_id", "kind", "cursor", "limit")).get
            if arg("kind") is not None and arg("kind") not in FILE_KINDS:
                raise InvalidRequest(f"`kind` must be one of {list(FILE_KINDS)}", code="invalid_value", param="kind")
            page = await list_files(session, org_id=principal_of(ctx).org_id,
                                    project_id=check_id(arg("project_id"), "project_id"),
                                    kind=arg("kind"), limit=arg("limit"), cursor=arg("cursor") or None)
            return 200, {"object": "list", "data": [f.to_dict() for f in page.files], "next_cursor": page.next_cursor}

        await self.api(action="files.read", kind="api.file.list", work=work)


class FileHandler(ApiHandler):
    async def get(self, file_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, (await get_file(session, org_id=principal_of(ctx).org_id, file_id=file_id)).to_dict()

        await self.api(action="files.read", kind="api.file.read", work=work)

    async def delete(self, file_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            await delete_file(session, self.runtime.storage, org_id=principal_of(ctx).org_id, file_id=file_id)
            ctx.detail["file_id"] = file_id
            return 204, None

        await self.api(action="files.write", kind="api.file.delete", work=work)


class FileContentHandler(DeepSpaceHandler):
    """The bytes, as an attachment (never rendered inline by a browser), streamed from storage
    in pieces after the request passed the door steps (an export can be far larger than memory
    should hold)."""

    CHUNK_BYTES = 1 << 20

    async def get(self, file_id: str) -> None:
        found: list[FileView] = []

        async def endpoint(ctx: RequestContext) -> None:
            async with self.runtime.sessions() as session:
                found.append(await get_file(session, org_id=principal_of(ctx).org_id, file_id=file_id))
            ctx.detail["file_id"] = file_id

        await self.runtime.pipeline.run(self.context(kind="api.file.download", action="files.read"), endpoint)
        view = found[0]
        storage = self.runtime.storage
        try:
            handle = await asyncio.to_thread(storage.open_read, view.storage_key)
        except FileNotFoundError:
            raise FileNotFoundInOrgError(f"file {file_id!r} has no content in storage", param="file_id") from None
        try:
            self.set_header("Content-Type", view.content_type)
            self.set_header("Content-Length", str(view.size_bytes))
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(view.name)}")
            self.set_header("X-Content-Type-Options", "nosniff")
            while chunk := await asyncio.to_thread(handle.read, self.CHUNK_BYTES):
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the client left
        finally:
            await asyncio.to_thread(handle.close)
        self.finish()


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API + "/files", FilesHandler, kwargs),
        (API + f"/files/{ID}", FileHandler, kwargs),
        (API + f"/files/{ID}/content", FileContentHandler, kwargs),
    ]
