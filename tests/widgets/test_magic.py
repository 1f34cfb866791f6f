"""``%%deepspace`` in a real IPython shell (in-process) against a live gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepspace_lab.client import DeepSpaceClient
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


def test_cell_magic_streams_the_answer_with_a_footer(shell: InteractiveShell, gateway: Gateway) -> None:
    shell.user_ns["topic"] = "comets"
    with capture_output() as captured:
        shell.run_cell_magic("deepspace", f"-m {MODEL}", "Tell me about {topic} [sim:tokens=12]\n")
    shown = markdown_outputs(captured)
    final = shown[-1]
    expected = DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key).chat(
        MODEL, [{"role": "user", "content": "Tell me about comets [sim:tokens=12]\n"}])["choices"][0]["message"]
    assert final.startswith(expected["content"])  # {topic} was filled in: the same reply
    assert "12 generated" in final and "credits" in final and MODEL in final
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
