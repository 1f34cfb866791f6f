"""A long action run through the Worker: a small form starts a job (an export or a statement),
:class:`~.progress.JobProgress` follows it until it ends, and its files are offered as links to
the console's own ``files/{id}`` route (:mod:`.downloads`), which streams them from the Gateway
with the admin's own credentials when clicked; the browser never talks to the Gateway, and the
console never holds a file whole."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import panel as pn
from panel.viewable import Viewer

from .downloads import download_href
from .forms import ApiForm
from .i18n import Text
from .progress import FetchJob, JobProgress

Start = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]


def job_files(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The files a finished job wrote: a statement lists ``files``, an export is one file."""
    if not result:
        return []
    if result.get("files"):
        return [dict(f) for f in result["files"]]
    return [dict(result)] if result.get("file_id") else []


class JobRunner(Viewer):
    """``JobRunner({"format": Select(...)}, start=lambda v: client.admin_export("usage", **v),
    fetch_job=client.admin_export_job, text=t, label="Export")``."""

    def __init__(self, fields: Mapping[str, pn.widgets.Widget], *, start: Start, fetch_job: FetchJob,
                 text: Text, label: str, poll_interval_s: float = 0.5) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.start, self.text = start, text
        self.progress = JobProgress(fetch_job, text=text, poll_interval_s=poll_interval_s)
        self.files = pn.Row(css_classes=["ds-files"])
        self.form = ApiForm(fields, self.run, text=text, submit_label=label, done_key=None)  # progress: how it ended
        #: the job as it ended (None until one did), and its files (name → file id)
        self.job: dict[str, Any] | None = None
        self.downloads: dict[str, str] = {}

    async def run(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """Start the job and follow it to its end; then offer its files. The job as it ended."""
        self.files.objects, self.downloads = [], {}
        job = await self.start(values)
        self.job = await self.progress.follow(str(job["id"]))
        if self.job is not None and self.job.get("state") == "done":
            self._offer(job_files(self.job.get("result")))
        return self.job

    def _offer(self, files: list[dict[str, Any]]) -> None:
        links = []
        for item in files:
            name, file_id = str(item.get("name") or "download"), str(item["file_id"])
            self.downloads[name] = file_id
            size = f" ({item['size_bytes']:,} bytes)" if isinstance(item.get("size_bytes"), int) else ""
            links.append(f"<a class='ds-download' href='{html.escape(download_href(file_id))}' download>"
                         f"{html.escape(name)}</a>{size}")
        self.files.objects = [pn.pane.HTML(" · ".join(links))] if links else []

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.form, self.progress, self.files, sizing_mode="stretch_width")
