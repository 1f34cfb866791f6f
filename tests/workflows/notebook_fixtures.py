"""What the notebook step's tests share: notebooks written on the fly and a StepContext wired to a
real in-process Gateway (the notebook's model calls) and the real files service (artifacts)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from sqlalchemy import text

from deepspace_lab.db import make_async_engine
from deepspace_lab.files import store_file
from deepspace_lab.storage import open_storage
from deepspace_lab.tracing import new_trace_id
from deepspace_lab.workflows.steps import StepContext

from ..helpers import Gateway, wait_for

ROOT = Path(__file__).resolve().parents[2]


def write_notebook(path: Path, parameters: str | None, *cells: str) -> Path:
    """A Python notebook: a cell tagged ``parameters`` (when given), then ``cells``."""
    nb = nbformat.v4.new_notebook()
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(path))
    return path


@dataclass
class Harness:
    """One attempt's StepContext plus what the test reads back: progress and stored artifacts."""

    gateway: Gateway
    ctx: StepContext
    progress: list[tuple[str, float | None]] = field(default_factory=list)
    cancel: bool = False

    def artifact(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        """The ``files`` row of a stored artifact and its bytes in storage."""
        with self.gateway.db.connect() as conn:
            row = dict(conn.execute(text("SELECT * FROM files WHERE id = :id"), {"id": file_id}).one()._mapping)
        return row, open_storage(self.gateway.settings.storage_url).get(row["storage_key"])


def make_harness(gateway: Gateway, spec: dict[str, Any], *, api_key: str | None = None,
                 deadline: float | None = None) -> Harness:
    tenant = gateway.tenant
    harness: Harness

    async def progress(message: str, fraction: float | None) -> None:
        harness.progress.append((message, fraction))

    async def save_artifact(name: str, data: bytes, content_type: str) -> str:
        engine = make_async_engine(gateway.settings.database_url)
        try:
            view = await store_file(engine, open_storage(gateway.settings.storage_url), org_id=tenant.org_id,
                                    project_id=tenant.project_id, name=name, content_type=content_type, data=data,
                                    kind="artifact", trace_id=harness.ctx.trace_id)
        finally:
            await engine.dispose()
        return view.id

    ctx = StepContext(run_id="wfr_test", step_id="execute", attempt=1, org_id=tenant.org_id,
                      project_id=tenant.project_id, trace_id=new_trace_id(), spec=spec, inputs={},
                      gateway_url=gateway.url, api_key=api_key or tenant.api_key, deadline=deadline,
                      cancelled=lambda: harness.cancel, progress=progress, save_artifact=save_artifact)
    harness = Harness(gateway=gateway, ctx=ctx)
    return harness


def run_step(harness: Harness) -> Any:
    from deepspace_lab.workflows.notebook import run

    return asyncio.run(run(harness.ctx))


def pid_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def read_pid(path: Path) -> int:
    """The pid a notebook wrote to ``path`` (waiting until it has)."""
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"), timeout_s=60)
    return int(path.read_text())
