"""``GET /files/{file_id}``: a file of the signed-in admin's org — an export or a statement the
console made — streamed from the Gateway to the browser through the admin's own client, piece
by piece (the console never holds a file whole, however large the export). A request without a
live console session is 401; a file the admin's credentials cannot read answers the Gateway's
status and code (``file_not_found`` for another org's id)."""

from __future__ import annotations

import re
from urllib.parse import quote

import tornado.web
from tornado.iostream import StreamClosedError

from deepspace_lab.client import DeepSpaceClientError

from .auth import ConsoleHandler

DOWNLOAD_PREFIX = "files/"
FILE_ID = r"[A-Za-z0-9_\-]{1,64}"


def download_href(file_id: str) -> str:
    """The link the console shows for one file (relative, so a console served under a path works)."""
    if not re.fullmatch(FILE_ID, file_id):
        raise ValueError(f"not a file id: {file_id!r}")
    return DOWNLOAD_PREFIX + file_id


class FileDownloadHandler(ConsoleHandler):
    async def get(self, file_id: str) -> None:
        session = self.provider.store.get(self.provider.session_id(self))
        if session is None:
            raise tornado.web.HTTPError(401, reason="Sign in to the console first")
        client = session.client
        chunks = client.file_chunks(file_id)
        try:
            meta = await client.file(file_id)
            first = await anext(chunks, b"")  # a refusal comes here, before any header is sent
        except DeepSpaceClientError as exc:
            await chunks.aclose()
            self.set_status(exc.status or 502)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"{exc.message} ({exc.code})")
            return
        self.set_header("Content-Type", str(meta.get("content_type") or "application/octet-stream"))
        if meta.get("size_bytes") is not None:
            self.set_header("Content-Length", str(meta["size_bytes"]))
        name = quote(str(meta.get("name") or file_id))
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{name}")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        try:
            self.write(first)
            await self.flush()
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the browser left
        finally:
            await chunks.aclose()
        self.finish()


def download_patterns() -> list[tuple[str, type, dict[str, object]]]:
    return [(rf"/{DOWNLOAD_PREFIX}({FILE_ID})", FileDownloadHandler, {})]
