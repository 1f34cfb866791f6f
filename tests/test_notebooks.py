"""The example notebooks run unchanged as papermill jobs against a live gateway."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from .helpers import Gateway

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gateway_quickstart_runs_under_papermill(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "gateway_quickstart.ipynb"), str(out), kernel_name="python3",
        parameters={"base_url": gateway.base_url, "api_key": gateway.tenant.api_key}, progress_bar=False)
    text = out.read_text()
    assert "deepspace-simulated-chat" in text and "[simulated]" in text
    rows = [r for r in gateway.audit_rows() if r["path"] == "/deepspace/v1/chat/completions"]
    assert len(rows) == 2 and all(r["status_code"] == 200 for r in rows)
