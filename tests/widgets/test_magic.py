"""``%%deepspace`` in a real IPython shell (in-process) against a live gateway."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepspace_lab.client import DeepSpaceClient
from deepspace_lab.widgets.i18n import credits
from deepspace_lab.widgets.magic import interpolate

from ..helpers import Gateway, wait_for

MODEL = "deepspace-simulated-chat"


@pytest.fixture
def shell(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("DEEPSPACE_GATEWAY_URL", gateway.url)
    monkeypatch.setenv("DEEPSPACE_API_KEY", gateway.tenant.api_key)
    monkeypatch.delenv("DEEPSPACE_MODEL", raising=False)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "deepspace_lab.widgets")
    yield ip
    InteractiveShell.clear_instance()


def markdown_outputs(captured: Any) -> list[str]:
    return [o.data["text/markdown"] for o in captured.outputs if "text/markdown" in o.data]


def test_interpolation_fills_known_names_and_leaves_the_rest() -> None:
    assert interpolate("{a} and {b} and {{x}} and {a.b}", {"a": 1}) == "1 and {b} and {{x}} and {a.b}"


def test_interpolation_reads_attributes_and_items_as_str_format_does() -> None:
    class Frame:
        shape = (120, 4)

    namespace = {"df": Frame(), "meta": {"topic": "comets"}, "xs": [3, 5], "x": 7}
    text = "{df.shape[0]} rows on {meta[topic]}, {xs[1]}; {xs[9]} {df.nope} {meta[none]} {{x}} {'a': 1}"
    assert interpolate(text, namespace) == "120 rows on comets, 5; {xs[9]} {df.nope} {meta[none]} {{x}} {'a': 1}"


def test_cell_magic_streams_the_answer_with_a_footer(shell: InteractiveShell, gateway: Gateway) -> None:
    shell.user_ns["topic"] = "comets"
    with capture_output() as captured:
        shell.run_cell_magic("deepspace", f"-m {MODEL}", "Tell me about {topic} [sim:tokens=12]\n")
    shown = markdown_outputs(captured)
    final = shown[-1]
    expected = DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key).chat(
        MODEL, [{"role": "user", "content": "Tell me about comets [sim:tokens=12]\n"}])["choices"][0]["message"]
    assert final.startswith(expected["content"])  # {topic} was filled in: the same reply
    assert "12 generated" in final and "credits" in final and "— credits" not in final and MODEL in final
    assert len(shown) >= 2  # the first display, then updates as it streamed


def test_cell_magic_in_a_conversation_stores_the_turn(shell: InteractiveShell, gateway: Gateway) -> None:
    client = DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key)
    conv = client.create_conversation("magic")["id"]
    with capture_output() as captured:
        shell.run_cell_magic("deepspace", f"--conversation {conv}", "hello [sim:tokens=4]")
    final = markdown_outputs(captured)[-1]
    stored = client.conversation(conv)["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert final.startswith(stored[1]["content"]) and "4 delivered" in final


def test_line_commands(shell: InteractiveShell) -> None:
    models = shell.run_line_magic("deepspace", "models")
    assert MODEL in set(models["id"])
    with capture_output():
        shell.run_cell_magic("deepspace", "", "x [sim:tokens=2]")
    # the OpenAI route relays the upstream's [DONE] before the capture commits: poll until settled
    wait_for(lambda: shell.run_line_magic("deepspace", "usage").iloc[0]["status"] == "captured")
    usage = shell.run_line_magic("deepspace", "usage")
    assert usage.iloc[0]["model"] == MODEL and usage.iloc[0]["cost_micros"] > 0
    with capture_output() as captured:
        shell.run_line_magic("deepspace", "wallet")
    assert "Balance" in markdown_outputs(captured)[0]


def test_errors_are_shown_with_the_servers_message(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        shell.run_cell_magic("deepspace", "-m no-such-model", "hi")
        shell.run_line_magic("deepspace", "bogus")
    shown = markdown_outputs(captured)
    assert "model_not_found" in shown[-2] and "unknown model" in shown[-2]
    assert "invalid_magic" in shown[-1]


def interrupted(shell: InteractiveShell, line: str) -> str:
    """Run a long ``%%deepspace`` cell, send this process SIGINT (what a kernel interrupt sends)
    once the reply is streaming, and return the cell's final output."""
    previous = signal.getsignal(signal.SIGINT)
    with capture_output() as captured:
        def interrupt_mid_stream() -> None:
            wait_for(lambda: len(captured.outputs) >= 3, timeout_s=30)
            os.kill(os.getpid(), signal.SIGINT)

        interrupter = threading.Thread(target=interrupt_mid_stream)
        interrupter.start()
        shell.run_cell_magic("deepspace", line, "long [sim:tokens=400] [sim:token_latency_ms=20]")
        interrupter.join()
    assert signal.getsignal(signal.SIGINT) is previous  # the usual handler is back
    return markdown_outputs(captured)[-1]


def test_a_kernel_interrupt_stops_a_reply_in_a_conversation_which_ends_with_its_bill(
        shell: InteractiveShell, gateway: Gateway) -> None:
    """SIGINT (what a kernel interrupt sends) while the reply streams: the Gateway cancels it, the
    reply is kept and stored, and the footer shows what was generated, delivered and billed."""
    client = DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key)
    conv = client.create_conversation("stop")["id"]
    final = interrupted(shell, f"--conversation {conv}")
    counts = re.search(r"(\d+) generated · (\d+) delivered · (\S+) credits · stopped", final)
    assert counts and 0 < int(counts[2]) <= int(counts[1]) < 400, final
    stored = client.conversation(conv)["messages"]
    assert final.startswith(stored[-1]["content"])  # what was shown is what was kept
    record = client.usage(limit=1)["data"][0]
    assert record["error_code"] == "cancelled" and record["status"] == "captured"
    assert record["completion_tokens"] == int(counts[1]) and counts[3] == credits(record["cost_micros"])


def test_a_kernel_interrupt_cuts_a_stateless_reply_off(shell: InteractiveShell) -> None:
    final = interrupted(shell, f"-m {MODEL}")
    text, footer = final.split("\n\n---\n")
    assert footer == f"*{MODEL} · stopped*" and 0 < len(text.split()) < 400  # left mid-way, shown as stopped
