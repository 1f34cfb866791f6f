"""Progress of a long action: the Admin API answers it with a Worker job; this polls
``GET /deepspace/api/jobs/{id}`` (through the client) and shows its state and progress until
it is done or failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import DeepSpaceClientError

from .i18n import Text
from .table import error_text

FetchJob = Callable[[str], Awaitable[dict[str, Any]]]
FINAL_STATES = ("done", "failed")


class JobProgress(Viewer):
    """``await JobProgress(client.job, text=t).follow(job_id)`` → the job as it ended."""

    def __init__(self, fetch_job: FetchJob, *, text: Text, poll_interval_s: float = 0.5,
                 timeout_s: float = 3600.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.fetch_job, self.text = fetch_job, text
        self.poll_interval_s, self.timeout_s = poll_interval_s, timeout_s
        self.bar = pn.indicators.Progress(value=-1, max=100, active=False, sizing_mode="stretch_width", visible=False)
        self.label = pn.pane.Str("")
        self.job: dict[str, Any] | None = None
        #: the distinct (state, percent) pairs shown, in order
        self.seen: list[tuple[str, float | None]] = []

    def display(self, job: dict[str, Any]) -> None:
        """Show ``job`` (its state, and progress when it has a total)."""
        self.job = job
        state = str(job.get("state"))
        progress = job.get("progress") or {}
        percent = progress.get("percent")
        self.bar.visible = True
        if state == "done":
            self.bar.value, self.bar.active = 100, False
            self.label.object = self.text("job_done")
        elif state == "failed":
            self.bar.active = False
            self.label.object = self.text("job_failed", error=job.get("last_error") or "")
        elif state == "running" and percent is not None:
            self.bar.value, self.bar.active = int(percent), False
            self.label.object = self.text("job_running", done=progress.get("done"), total=progress.get("total"))
        else:  # queued, or running without a total yet: indeterminate
            self.bar.value, self.bar.active = -1, True
            self.label.object = self.text("job_queued" if state == "queued" else "job_running_unknown")
        if not self.seen or self.seen[-1] != (state, percent):
            self.seen.append((state, percent))

    async def follow(self, job_id: str) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                job = await self.fetch_job(job_id)
            except DeepSpaceClientError as exc:
                self.label.object = error_text(exc)
                return None
            self.display(job)
            if job.get("state") in FINAL_STATES or loop.time() > deadline:
                return job
            await asyncio.sleep(self.poll_interval_s)  # polling the Gateway, not waiting on a test

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.bar, self.label, sizing_mode="stretch_width")
