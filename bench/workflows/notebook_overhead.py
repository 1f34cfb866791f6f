"""The overhead of a workflow ``notebook`` step over running the same notebook with papermill.

    .venv/bin/python bench/workflows/notebook_overhead.py --reps 7

Three ways to run one small notebook (a parameters cell, two cells of work, one
``workflow_output``), interleaved in each repetition so machine load hits all three alike:

- ``papermill-api``: ``papermill.execute_notebook`` in this process (the floor: no new Python);
- ``papermill-cli``: ``python -m papermill IN OUT -p n …`` as a subprocess (what a user runs);
- ``step``: ``deepspace_lab.workflows.notebook.run(ctx)`` — check, the supervised child in its
  own session with the descendant watch, progress per cell, outputs read back, and the executed
  notebook stored through the real files service (a SQLite database and a local storage folder).

Prints one JSON line and a Markdown table: the median wall time of each, the median of the
per-repetition ratios step / papermill-api and step / papermill-cli, and the absolute overhead
(step − papermill-api, ms). No Gateway is involved: the model calls a notebook makes cost the
same either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
import papermill  # noqa: E402

from deepspace_lab.db import make_async_engine  # noqa: E402
from deepspace_lab.db.migrate import upgrade  # noqa: E402
from deepspace_lab.files import store_file  # noqa: E402
from deepspace_lab.storage import open_storage  # noqa: E402
from deepspace_lab.tracing import new_trace_id  # noqa: E402
from deepspace_lab.workflows.notebook import run  # noqa: E402
from deepspace_lab.workflows.steps import StepContext  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.helpers import make_tenant  # noqa: E402


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n: int = 1000")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("total = sum(i * i for i in range(n))\ntotal"),
                nbformat.v4.new_code_cell("from deepspace_lab.client import workflow_output\n"
                                          "workflow_output('total', total)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-notebook-") as tmp:
        work = Path(tmp)
        source = work / "bench.ipynb"
        write_notebook(source)
        db_url = f"sqlite:///{work / 'bench.sqlite'}"
        upgrade(db_url)
        settings = make_settings(db_url, work / "data")
        tenant = make_tenant(settings, email="bench@example.org", credit_micros=0)
        storage = open_storage(settings.storage_url)

        async def save_artifact(name: str, data: bytes, content_type: str) -> str:
            engine = make_async_engine(settings.database_url)
            try:
                view = await store_file(engine, storage, org_id=tenant.org_id, project_id=tenant.project_id,
                                        name=name, content_type=content_type, data=data, kind="artifact")
            finally:
                await engine.dispose()
            return view.id

        async def progress(message: str, fraction: float | None) -> None:
            return None

        def step() -> None:
            ctx = StepContext(run_id="wfr_bench", step_id="nb", attempt=1, org_id=tenant.org_id,
                              project_id=tenant.project_id, trace_id=new_trace_id(),
                              spec={"notebook": str(source), "parameters": {"n": 5000}, "outputs": ["total"]},
                              inputs={}, gateway_url="http://127.0.0.1:9", api_key="dsk_unused", deadline=None,
                              cancelled=lambda: False, progress=progress, save_artifact=save_artifact)
            outcome = asyncio.run(run(ctx))
            assert outcome.outputs["total"] == sum(i * i for i in range(5000)), outcome

        def api() -> None:
            papermill.execute_notebook(str(source), str(work / "api.ipynb"), parameters={"n": 5000},
                                       kernel_name="python3", progress_bar=False)

        def cli() -> None:
            subprocess.run([sys.executable, "-m", "papermill", "-k", "python3", "--no-progress-bar", str(source),
                            str(work / "cli.ipynb"), "-p", "n", "5000"], check=True, capture_output=True)

        runs: dict[str, list[float]] = {"papermill-api": [], "papermill-cli": [], "step": []}
        for fn in (api, cli, step):  # warm-up: imports, kernelspec lookup, first kernel start
            fn()
        for _ in range(args.reps):
            runs["papermill-api"].append(timed(api))
            runs["papermill-cli"].append(timed(cli))
            runs["step"].append(timed(step))
    med = {name: statistics.median(times) for name, times in runs.items()}
    result = {
        "reps": args.reps, "median_ms": {k: round(v, 1) for k, v in med.items()},
        "ratio_step_over_api": round(statistics.median(s / a for s, a in zip(runs["step"], runs["papermill-api"],
                                                                              strict=True)), 3),
        "ratio_step_over_cli": round(statistics.median(s / c for s, c in zip(runs["step"], runs["papermill-cli"],
                                                                              strict=True)), 3),
        "overhead_ms_over_api": round(statistics.median(s - a for s, a in zip(runs["step"], runs["papermill-api"],
                                                                               strict=True)), 1),
        "all_ms": {k: [round(t, 1) for t in v] for k, v in runs.items()},
    }
    print(json.dumps(result))
    print("\n| way | median wall time |\n|---|---|")
    for name, value in med.items():
        print(f"| {name} | {value:.0f} ms |")
    print(f"\nstep / papermill-api: {result['ratio_step_over_api']}× (median of per-repetition ratios); "
          f"step / papermill-cli: {result['ratio_step_over_cli']}×; "
          f"overhead over papermill-api: {result['overhead_ms_over_api']} ms")


if __name__ == "__main__":
    main()
