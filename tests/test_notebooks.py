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


@pytest.mark.slow
def test_first_chat_notebook_runs_under_papermill_and_keeps_the_magics_answer(
        gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel gets the Gateway from its environment, as a papermill job would."""
    monkeypatch.setenv("DEEPSPACE_GATEWAY_URL", gateway.url)
    monkeypatch.setenv("DEEPSPACE_API_KEY", gateway.tenant.api_key)
    out = tmp_path / "01-chat.out.ipynb"
    nb = papermill.execute_notebook(
        str(ROOT / "notebooks" / "01-chat.ipynb"), str(out), kernel_name="python3",
        parameters={"topic": "a telescope [sim:tokens=7]"}, progress_bar=False)
    magic = next(c for c in nb.cells if c.source.startswith("%%deepspace"))
    final = magic.outputs[-1]["data"]["text/markdown"]
    assert final.startswith("[simulated]") and "7 generated" in final and "credits" in final
    saved = out.read_text()
    assert final.splitlines()[0] in saved  # kept in the output notebook
    assert any("Balance" in o.get("data", {}).get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []))
