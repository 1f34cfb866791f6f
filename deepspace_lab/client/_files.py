"""The product API's files, jobs and exports — shared by the sync and the async client.

:class:`FileCalls` is a mixin over the client's ``_send``: on :class:`DeepSpaceClient` each method
returns the answer, on :class:`AsyncDeepSpaceClient` an awaitable of it. Everything is the
caller's org's (another org's ids are ``file_not_found`` / ``job_not_found``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ._base import API, Call

R = TypeVar("R")


def content_call(file_id: str) -> Call:
    """A file's bytes, exactly as stored (the Gateway streams them from storage)."""
    return Call("GET", f"{API}/files/{file_id}/content", raw=True)


class FileCalls(Generic[R]):
    def _send(self, call: Call) -> R:  # provided by the client
        raise NotImplementedError

    def upload_file(self, name: str, data: bytes, *, content_type: str = "application/octet-stream") -> R:
        """Store ``data`` as a file of your project (a key's project, or your default one): the file's
        record (``id``, ``name``, ``size_bytes``, ``sha256``…). Too large is ``file_too_large``; a type
        the deployment does not accept is ``unsupported_content_type``."""
        return self._send(Call("POST", API + "/files", params={"name": name}, content=data,
                               headers={"Content-Type": content_type}))

    def files(self, *, project_id: str | None = None, kind: str | None = None, limit: int | None = None,
              cursor: str | None = None) -> R:
        """A page of your org's files and artifacts, newest first (``data``, ``next_cursor``)."""
        return self._send(Call("GET", API + "/files", params={"project_id": project_id, "kind": kind,
                                                             "limit": limit, "cursor": cursor}))

    def file(self, file_id: str) -> R:
        return self._send(Call("GET", f"{API}/files/{file_id}"))

    def file_content(self, file_id: str) -> R:
        """A file's bytes, exactly as stored, at once (``file_chunks`` yields them as they arrive)."""
        return self._send(content_call(file_id))

    def delete_file(self, file_id: str) -> R:
        return self._send(Call("DELETE", f"{API}/files/{file_id}"))

    def jobs(self, *, state: str | None = None, kind: str | None = None, project_id: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> R:
        """A page of your org's Worker jobs (exports, statements, workflow steps…), newest first."""
        return self._send(Call("GET", API + "/jobs", params={"state": state, "kind": kind, "project_id": project_id,
                                                            "limit": limit, "cursor": cursor}))

    def export(self, dataset: str, format: str = "csv", *, since: str | None = None, until: str | None = None,
               project_id: str | None = None) -> R:
        """Queue an export of ``conversations``, ``usage`` or ``transactions`` as ``csv``, ``json`` or
        ``md``: the Worker job; poll ``job(id)``; when done its ``result`` names the file and its
        ``download_path``."""
        body = {k: v for k, v in (("dataset", dataset), ("format", format), ("since", since), ("until", until),
                                  ("project_id", project_id)) if v is not None}
        return self._send(Call("POST", API + "/exports", json=body))
