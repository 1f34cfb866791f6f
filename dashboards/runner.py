"""A long action run through the Worker: a small form starts a job (an export or a statement),
:class:`~.progress.JobProgress` follows it until it ends, and its files are offered for
download. The files are read through the client (the admin's own credentials) when the job is
done; the browser never talks to the Gateway."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import DeepSpaceClientError

from .forms import ApiForm
from .i18n import Text
from .progress import FetchJob, JobProgress
from .table import error_text

Start = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]
Download = Callable[[str], Awaitable[bytes]]


def job_files(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The files a finished job wrote: a statement lists ``files``, an export is one file."""
    if not result:
        return []
    if result.get("files"):
        return [dict(f) for f in result["files"]]
    return [dict(result)] if result.get("file_id") else []


class JobRunner(Viewer):
    """``JobRunner({"format": Select(...)}, start=lambda v: client.admin_export("usage", **v),
    fetch_job=client.admin_export_job, download=client.file_content, text=t, label="Export")``."""

    def __init__(self, fields: Mapping[str, pn.widgets.Widget], *, start: Start, fetch_job: FetchJob,
                 download: Download, text: Text, label: str, poll_interval_s: float = 0.5) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.start, self.download, self.text = start, download, text
        self.progress = JobProgress(fetch_job, text=text, poll_interval_s=poll_interval_s)
        self.files = pn.Row(css_classes=["ds-files"])
        self.form = ApiForm(fields, self.run, text=text, submit_label=label, on_success=self._ended)
        #: the job as it ended (None until one did), and its files' contents by name
        self.job: dict[str, Any] | None = None
        self.downloads: dict[str, bytes] = {}

    async def run(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """Start the job, follow it to its end, then fetch its files; the job as it ended."""
        self.files.objects, self.downloads = [], {}
        job = await self.start(values)
        self.job = await self.progress.follow(str(job["id"]))
        if self.job is not None and self.job.get("state") == "done":
            await self._fetch_files(job_files(self.job.get("result")))
        return self.job

    def _ended(self, _job: Any) -> None:
        self.form.done.visible = False  # the progress says how the job ended

    async def _fetch_files(self, files: list[dict[str, Any]]) -> None:
        shown: list[Any] = []
        for item in files:
            name = str(item.get("name") or "download")
            try:
                content = await self.download(str(item["file_id"]))  # the bytes as stored
            except DeepSpaceClientError as exc:
                shown.append(pn.pane.Str(f"{name}: {error_text(exc)}"))
                continue
            self.downloads[name] = content
            shown.append(pn.widgets.FileDownload(file=io.BytesIO(content), filename=name, label=name,
                                                 button_type="primary"))
        self.files.objects = shown

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.form, self.progress, self.files, sizing_mode="stretch_width")
