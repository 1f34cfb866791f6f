"""End to end in a real headless Chromium (Debian's, driven by Playwright): JupyterLab with the
extension, ``01-chat.ipynb`` opened and run, a message sent, the streamed text seen growing,
Stop pressed mid-stream, the billing view showing the charge, then a reply's code inserted into
a new notebook cell by its button. Screenshots are kept under the
test's tmp dir (the path is printed); ``2-stopped.png`` is the README's ``docs/workbench.png``."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepspace_lab.simulator.engine import SIMULATED_CODE_LINES
from deepspace_lab.widgets.i18n import credits

from ..cli.conftest import JUPYTER, Processes, free_port, sql
from ..cli.test_jupyter_extension import EXTENSION, _root_flags, make_home
from .conftest import needs_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = """
from jupyterlab.galata import configure_jupyter_server
configure_jupyter_server(c)
del c.LabApp["expose_app_in_browser"]  # the project's jupyter-config/ must expose window.jupyterapp
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
"""


def poll(condition: Callable[[], object], *, timeout_s: float = 30, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached in {timeout_s}s"
        time.sleep(0.1)


@needs_chromium
def test_chat_stop_and_billing_in_jupyterlab(tmp_path: Path, browser_page: Any, shots: Path) -> None:
    home = make_home(tmp_path)
    home.env["DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS"] = "40"  # slow enough to press Stop mid-stream
    home.env["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter-config")  # as a wheel install places it
    root_dir = tmp_path / "notebooks"
    shutil.copy(REPO / "notebooks" / "01-chat.ipynb", root_dir / "01-chat.ipynb")
    config = tmp_path / "lab_config.py"
    config.write_text(LAB_CONFIG)
    port = free_port()
    procs = Processes(tmp_path / "logs")
    try:
        lab = procs([JUPYTER, "lab", f"--config={config}", "--no-browser", f"--port={port}",
                     f"--ServerApp.root_dir={root_dir}", f"--ServerApp.jpserver_extensions={ {EXTENSION: True}!r}",
                     *_root_flags()], home.env, name="jupyterlab")
        url = f"http://127.0.0.1:{port}"
        lab.wait_for(url + "/deepspace/api/health/ready", timeout=90)
        shown = run_scenario(browser_page, url, shots)
    finally:
        procs.close()
    rows = sql(f"sqlite:///{tmp_path / 'data' / 'deepspace.db'}",
               "SELECT request_id, status, cost_micros, completion_tokens FROM usage_records "
               "WHERE error_code = 'cancelled'")
    assert len(rows) == 1 and rows[0]["status"] == "captured" and rows[0]["cost_micros"] > 0
    assert 0 < rows[0]["completion_tokens"] < 300
    cost = credits(rows[0]["cost_micros"])
    # the footer and the billing view show what was billed for the stopped reply
    assert f"{rows[0]['completion_tokens']} generated" in shown["footer"] and f"{cost} credits" in shown["footer"]
    assert rows[0]["request_id"] in shown["capture"] and f"\t{cost}\t" in shown["capture"]


def run_scenario(page: Any, url: str, shots: Path) -> dict[str, str]:
    from playwright.sync_api import expect

    page.goto(f"{url}/lab/tree/01-chat.ipynb?reset")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    poll(lambda: page.evaluate("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                               " return !!(w && w.sessionContext && w.sessionContext.session &&"
                               " w.sessionContext.session.kernel &&"
                               " w.sessionContext.session.kernel.status === 'idle'); }"),
         timeout_s=60, what="kernel idle")
    # do not return the promise: it resolves only when every cell has run
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    expect(page.get_by_text("SIMULATED model", exact=False).first).to_be_visible(timeout=60_000)
    news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "notify about news?" toast
    if news.count():
        news.first.click()
    prompt = page.locator(".widget-textarea textarea").last
    prompt.fill("Tell me a long story [sim:tokens=300]")
    prompt.dispatch_event("change")  # the box syncs on change (not per keystroke): the estimate follows
    expect(page.get_by_text("Holds up to", exact=False).first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Send").click()
    reply = page.locator(".widget-html", has_text="[simulated]").last
    expect(reply).to_be_visible(timeout=30_000)
    first = len(reply.inner_text())
    poll(lambda: len(reply.inner_text()) > first + 20, timeout_s=30, what="the reply growing")
    page.screenshot(path=str(shots / "1-streaming.png"))
    page.get_by_role("button", name="Stop").click()
    footer = page.get_by_text("· stopped", exact=False).first
    expect(footer).to_be_visible(timeout=30_000)
    stopped = len(reply.inner_text().strip())
    page.screenshot(path=str(shots / "2-stopped.png"))
    page.locator(".lm-TabBar-tab", has_text="Billing").first.click()
    expect(page.locator(".ds-balance").first).to_be_visible(timeout=30_000)
    captures = page.locator("tr", has=page.get_by_role("cell", name="capture", exact=True))  # ledger rows
    expect(captures).to_have_count(2, timeout=30_000)  # the magic's reply and the stopped one (newest first)
    capture = captures.first
    expect(page.locator("svg.ds-usage-chart").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "3-billing.png"))
    assert len(reply.inner_text().strip()) == stopped  # nothing arrived after Stop
    shown = {"footer": footer.inner_text(), "capture": capture.inner_text(), "reply_chars": str(stopped),
             **insert_code(page, shots)}
    (shots / "ok.json").write_text(json.dumps(shown))
    return shown


CELLS_JS = ("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
            " return {active: nb.activeCellIndex,"
            " cells: nb.widgets.map(c => [c.model.type, c.model.sharedModel.getSource()])}; }")


def insert_code(page: Any, shots: Path) -> dict[str, str]:
    """Ask for code, click "Insert code in a new cell": a code cell with exactly the reply's
    code (quotes, backslashes and ``</script>`` included) appears below the active cell."""
    from playwright.sync_api import expect

    code = "".join(SIMULATED_CODE_LINES[1:-1])
    page.locator(".lm-TabBar-tab", has_text=re.compile(r"^Chat$")).first.click()  # not "01-chat.ipynb"
    prompt = page.locator(".widget-textarea textarea").last
    prompt.fill("Write some code [sim:code] [sim:tokens=12]")
    prompt.dispatch_event("change")
    page.get_by_role("button", name="Send").click()
    insert = page.get_by_role("button", name="Insert code in a new cell").last
    expect(insert).to_be_visible(timeout=30_000)
    before = page.evaluate(CELLS_JS)
    insert.click()
    after = poll(lambda: (lambda now: now if len(now["cells"]) > len(before["cells"]) else None)(
        page.evaluate(CELLS_JS)), timeout_s=30, what="a new cell")
    poll(lambda: page.evaluate(CELLS_JS)["cells"][after["active"]][1], timeout_s=10, what="the cell's source")
    after = page.evaluate(CELLS_JS)
    new = after["active"]
    assert new == before["active"] + 1 and after["cells"][new] == ["code", code]
    assert after["cells"][:new] + after["cells"][new + 1:] == before["cells"]
    page.screenshot(path=str(shots / "4-inserted.png"))
    return {"inserted_at": str(new), "active_before": str(before["active"])}
