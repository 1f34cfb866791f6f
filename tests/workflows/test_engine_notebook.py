"""notebooks/02-workflow.ipynb runs unchanged under papermill: the example workflow (plan: llm → execute:
notebook → verify), end to end on one trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import papermill
import pytest

from .conftest import Flows

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_workflow_notebook_runs_the_example_to_the_end(flows: Flows, worker: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSPACE_GATEWAY_URL", flows.gw.url)
    monkeypatch.setenv("DEEPSPACE_API_KEY", flows.api_key("chat", "workflows"))
    nb = papermill.execute_notebook(str(ROOT / "notebooks" / "02-workflow.ipynb"), str(tmp_path / "out.ipynb"),
                                    kernel_name="python3", parameters={"topic": "tides [sim:tokens=30]"},
                                    progress_bar=False, cwd=str(ROOT))
    text = "".join(str(o) for c in nb.cells for o in c.get("outputs", []))
    assert "run succeeded" in text and "[simulated]" in text
    kinds = flows.rows("SELECT kind, state FROM step_runs ORDER BY position")
    assert kinds == [{"kind": "llm", "state": "succeeded"}, {"kind": "notebook", "state": "succeeded"},
                     {"kind": "verify", "state": "succeeded"}]
    runs = flows.rows("SELECT state, trace_id, cost_micros FROM workflow_runs")
    assert [r["state"] for r in runs] == ["succeeded"]
    usage = flows.rows("SELECT trace_id, cost_micros FROM usage_records")  # the plan's call and the notebook's
    assert len(usage) >= 2 and {u["trace_id"] for u in usage} == {runs[0]["trace_id"]}
    assert runs[0]["cost_micros"] == sum(u["cost_micros"] for u in usage) > 0  # the notebook's calls count
    steps = flows.rows("SELECT step_id, tokens, cost_micros FROM step_runs ORDER BY position")
    assert steps[1]["cost_micros"] > 0 and steps[1]["tokens"] > 0  # the notebook step shows what its calls cost
    assert sum(s["cost_micros"] for s in steps) == runs[0]["cost_micros"]
