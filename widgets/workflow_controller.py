"""The workflow widget's controller (DESIGN §8): the only code of the widget that calls the
client. It writes :class:`~.stores.WorkflowStore`; the view observes it.

- browse: the project's workflows, a workflow's versions (each version's definition: its inputs
  and steps), the workflow's run history;
- act: start a run of the chosen version with inputs, cancel, resume, fork from a step with edited
  inputs — each answer opens that run;
- follow: the open run is read as an asyncio task on the kernel's loop, every ``poll_s`` while it
  is active: its new events and its steps, written to the store in one batch per poll (one widget
  update, not one per event); its artifacts are named through the files API and downloaded on
  request into ``download_dir/<run id>/`` beside the notebook, so JupyterLab opens them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from deepspace_lab.client import AsyncDeepSpaceClient

from .controllers import Connection, guarded
from .stores import WorkflowStore

ACTIVE = ("running", "cancelling")
#: events asked for per page; a shorter page is the last
EVENTS_PAGE = 200


class WorkflowController:
    def __init__(self, connection: Connection, store: WorkflowStore, *, poll_s: float = 0.5,
                 download_dir: str | Path = "workflow-artifacts") -> None:
        self.connection, self.store = connection, store
        self.poll_s = poll_s
        self.download_dir = Path(download_dir)
        self.task: asyncio.Task[None] | None = None
        self._after = 0
        #: one read of the open run at a time: the follower's and an action's would interleave
        #: (a stale state written last, events twice)
        self._reading = asyncio.Lock()

    @property
    def client(self) -> AsyncDeepSpaceClient:
        return self.connection.client

    # -- browse ---------------------------------------------------------------------------
    async def load(self) -> None:
        """The workflows; the first one (or the chosen one) with its versions and runs."""
        workflows = await guarded(self.store, self.client.workflows())
        if workflows is None:
            return
        self.store.workflows = workflows
        ids = [w["id"] for w in workflows]
        if ids:
            chosen = self.store.workflow_id
            await self.select_workflow(chosen if chosen is not None and chosen in ids else ids[0])

    async def select_workflow(self, workflow_id: str) -> None:
        self.store.workflow_id, self.store.error = workflow_id, {}
        workflow = await guarded(self.store, self.client.workflow(workflow_id))
        if workflow is None:
            return
        self.store.versions = list(workflow["versions"])
        await self.select_version(int(workflow["latest_version"]))
        await self.refresh_runs()

    async def select_version(self, version: int) -> None:
        if self.store.workflow_id is None:
            return
        found = await guarded(self.store, self.client.workflow_version(self.store.workflow_id, version))
        if found is not None:
            with self.store.hold_trait_notifications():
                self.store.version, self.store.definition = version, dict(found["definition"])

    async def refresh_runs(self) -> None:
        if self.store.workflow_id is None:
            return
        page = await guarded(self.store, self.client.workflow_runs(workflow_id=self.store.workflow_id, limit=50))
        if page is not None:
            self.store.runs = list(page["data"])

    # -- act ------------------------------------------------------------------------------
    async def start(self, inputs: dict[str, Any], *, budget_micros: int | None = None) -> str | None:
        """Start a run of the chosen version; it opens and is followed. Returns its id."""
        if self.store.workflow_id is None:
            return None
        self.store.error = {}
        run = await guarded(self.store, self.client.start_workflow(
            self.store.workflow_id, inputs, version=self.store.version, budget_micros=budget_micros))
        return await self._opened(run)

    async def cancel(self) -> None:
        await self._act(self.client.cancel_workflow_run)

    async def resume(self) -> None:
        await self._act(self.client.resume_workflow_run)

    async def fork(self, from_step: str, inputs: dict[str, Any] | None = None) -> str | None:
        """A new run from ``from_step`` with ``inputs`` over the open run's; it opens."""
        if self.store.run_id is None:
            return None
        self.store.error = {}
        return await self._opened(await guarded(self.store, self.client.fork_workflow_run(
            self.store.run_id, from_step, inputs or {})))

    async def _act(self, call: Any) -> None:
        if self.store.run_id is None:
            return
        self.store.error = {}
        if await guarded(self.store, call(self.store.run_id)) is not None:
            await self.open_run(self.store.run_id)

    async def _opened(self, run: dict[str, Any] | None) -> str | None:
        if run is None:
            return None
        await self.open_run(run["id"])
        await self.refresh_runs()
        return str(run["id"])

    # -- follow ---------------------------------------------------------------------------
    async def open_run(self, run_id: str) -> None:
        """Show ``run_id`` (its steps, events, files) and follow it while it is active."""
        if run_id != self.store.run_id:
            with self.store.hold_trait_notifications():
                self.store.run_id, self.store.run, self.store.events, self.store.artifacts = run_id, {}, [], []
            self._after = 0
        await self._poll(run_id)
        if self.store.run.get("state") in ACTIVE and (self.task is None or self.task.done()):
            self.task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            self.store.following = True
            try:
                while self.store.run.get("state") in ACTIVE and self.store.run_id is not None:
                    await asyncio.sleep(self.poll_s)
                    await self._poll(self.store.run_id)
            finally:
                self.store.following = False
            await self.refresh_runs()
            # a run resumed (or opened) meanwhile found this task still running: go on with it;
            # nothing awaits between this check and the task's end, so none is left unfollowed
            if self.store.run.get("state") not in ACTIVE:
                return

    async def _poll(self, run_id: str) -> None:
        async with self._reading:
            await self._read(run_id)

    async def _read(self, run_id: str) -> None:
        # the run before its events: a run's end and its last event commit together, so a run read
        # as ended has every event in the read that follows
        run = await guarded(self.store, self.client.workflow_run(run_id))
        new, after = [], self._after
        while run is not None:  # every page of new events
            page = await guarded(self.store, self.client.workflow_events(run_id, after=after, limit=EVENTS_PAGE))
            if not page:
                break
            new += page["data"]
            last, after = after, int(page["next_after"])
            if len(page["data"]) < EVENTS_PAGE or after == last:  # the last page: no request for an empty one
                break
        if run is None or run_id != self.store.run_id:  # failed, or another run was opened meanwhile
            return
        with self.store.hold_trait_notifications():
            if new:
                self.store.events = [*self.store.events, *new][-WorkflowStore.MAX_EVENTS:]
                self._after = after
            self.store.run = run
        await self._name_artifacts(run)

    async def _name_artifacts(self, run: dict[str, Any]) -> None:
        """Name the run's new artifacts through the files API; the store changes once per poll."""
        known = {a["id"] for a in self.store.artifacts}
        named = []
        for step in run.get("steps") or []:
            for file_id in step.get("artifacts") or []:
                if file_id in known:
                    continue
                info = await guarded(self.store, self.client.file(file_id))
                if info is not None:
                    known.add(file_id)
                    named.append({"id": file_id, "name": info["name"], "size_bytes": info.get("size_bytes"),
                                  "step_id": step["step_id"], "path": None})
        if named:
            self.store.artifacts = [*self.store.artifacts, *named]

    async def download(self, file_id: str) -> Path | None:
        """Fetch an artifact of the open run into ``download_dir/<run id>/<its name>``."""
        artifact = next((a for a in self.store.artifacts if a["id"] == file_id), None)
        if artifact is None or self.store.run_id is None:
            return None
        path = self.download_dir / self.store.run_id / Path(artifact["name"]).name
        if await guarded(self.store, _save(self.client.file_chunks(file_id), path)) is None:
            return None
        self.store.artifacts = [{**a, "path": str(path)} if a["id"] == file_id else a for a in self.store.artifacts]
        return path


async def _save(chunks: AsyncIterator[bytes], path: Path) -> Path:
    """Write the pieces into ``path`` as they arrive (a large artifact is never held whole); a
    failure part-way leaves no file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with part.open("wb") as out:
            async for chunk in chunks:
                await asyncio.to_thread(out.write, chunk)
        part.replace(path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path
