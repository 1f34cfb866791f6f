"""The workbench without a browser, against a live gateway: send, stream, stop, errors,
history, conversations, keys, billing — asserted through the stores and the widgets' values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from deepspace_lab.client import AsyncDeepSpaceClient
from deepspace_lab.widgets import Workbench, views
from deepspace_lab.widgets.render import escape

from ..helpers import Gateway, make_tenant

MODEL = "deepspace-simulated-chat"
PASSWORD = "correct horse battery"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def until(condition: Callable[[], bool], timeout_s: float = 15) -> None:
    """Poll (yielding to the loop) until ``condition`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def bench(gw: Gateway, key: str | None = None, **kwargs: Any) -> Workbench:
    return Workbench(AsyncDeepSpaceClient(base_url=gw.url, api_key=key or gw.tenant.api_key), **kwargs)


def test_send_streams_a_reply_with_its_estimate_footer_and_bill(gateway: Gateway) -> None:
    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        chat, view = wb.chat_store, wb.chat_view
        assert MODEL in chat.models and chat.model in chat.models
        assert chat.simulated and "SIMULATED" in view.simulated.value
        assert view.model.value == chat.model  # the picker shows the store's model
        view.model.value = MODEL  # the user picks one
        assert chat.model == MODEL
        view.prompt.input.value = "tell me [sim:tokens=60]"
        await until(lambda: chat.estimate_micros is not None)
        assert "credits" in view.prompt.estimate.value
        estimate = chat.estimate_micros
        view.prompt.send_button.click()
        assert chat.streaming and view.prompt.stop_button.disabled is False and view.prompt.send_button.disabled
        await wb.chat_stream.task
        user, reply = chat.messages
        assert user.content == "tell me [sim:tokens=60]" and reply.status == "done"
        assert reply.content.startswith("[simulated]") and len(reply.content.split()) == 60
        assert reply.usage["completion_tokens"] == 60 and reply.billing["held_micros"] == estimate
        assert 0 < wb.chat_stream.flushes < 60  # batched: fewer widget updates than tokens
        item = view.messages.children[1]
        assert reply.content.split()[-1] in item.body.value
        assert "60 generated" in item.footer.value and "credits" in item.footer.value
        assert wb.billing_store.wallet["balance_micros"] == (await wb.connection.client.wallet())["balance_micros"]
        assert not chat.streaming and view.prompt.send_button.disabled is False

    run(scenario())


def test_stop_mid_stream_keeps_the_reply_and_shows_what_was_billed(gateway: Gateway) -> None:
    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        wb.chat_store.model = MODEL
        wb.chat_view.prompt.input.value = "long [sim:tokens=400] [sim:token_latency_ms=20]"
        wb.chat_view.prompt.send_button.click()
        reply = wb.chat_store.messages[-1]
        await until(lambda: len(reply.content.split()) >= 3)
        wb.chat_view.prompt.stop_button.click()
        await wb.chat_stream.task
        assert reply.status == "stopped" and reply.usage["delivered_tokens"] < 400
        assert reply.billing["cost_micros"] > 0
        footer = wb.chat_view.messages.children[-1].footer.value
        assert "stopped" in footer and "delivered" in footer
        stored = await wb.connection.client.conversation(wb.chat_store.conversation_id)
        assert stored["messages"][-1]["content"] == reply.content

    run(scenario())


def test_errors_show_the_servers_message(gateway: Gateway) -> None:
    poor = make_tenant(gateway.settings, email="poor@example.org", credit_micros=0)

    async def scenario() -> None:
        wb = bench(gateway, poor.api_key)
        await wb.load()
        wb.chat_store.model = MODEL
        wb.chat_view.prompt.input.value = "hello"
        wb.chat_view.prompt.send_button.click()
        await wb.chat_stream.task
        reply = wb.chat_store.messages[-1]
        assert reply.status == "error" and reply.error["code"] == "insufficient_funds"
        assert "insufficient_funds" in wb.chat_view.error.value
        assert reply.error["message"] and reply.error["message"][:20] in wb.chat_view.messages.children[-1].error.value

    run(scenario())


def test_history_reloads_and_conversations_are_managed(gateway: Gateway) -> None:
    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        wb.chat_store.model = MODEL
        for prompt in ("first [sim:tokens=3]", "second [sim:tokens=3]"):
            await wb.chat_stream.send(prompt)
        conv = wb.chat_store.conversation_id
        again = bench(gateway)
        await again.load()  # a new kernel: the newest conversation, as stored
        assert again.chat_store.conversation_id == conv
        assert [m.role for m in again.chat_store.messages] == ["user", "assistant", "user", "assistant"]
        assert [m.content for m in again.chat_store.messages] == [m.content for m in wb.chat_store.messages]
        again.chat_view.title.value = "renamed"
        again.chat_view.buttons["rename"].click()
        await until(lambda: again.chat_store.title() == "renamed")
        assert again.chat_view.conversation.label == "renamed"
        again.chat_view.buttons["new_chat"].click()
        await until(lambda: len(again.chat_store.conversations) == 2)
        assert again.chat_store.messages == [] and again.chat_store.conversation_id != conv
        fresh = again.chat_store.conversation_id
        again.chat_view.conversation.value = conv  # switch back
        await until(lambda: len(again.chat_store.messages) == 4)
        again.chat_view.buttons["delete"].click()
        await until(lambda: len(again.chat_store.conversations) == 1 and again.chat_store.conversation_id == fresh)
        assert again.chat_store.messages == [] and again.chat_view.conversation.value == fresh

    run(scenario())


def test_regenerate_adds_a_new_answer_to_the_last_question(gateway: Gateway) -> None:
    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        wb.chat_store.model = MODEL
        await wb.chat_stream.send("q [sim:tokens=3]")
        wb.chat_view.buttons["regenerate"].click()
        await wb.chat_stream.task
        assert [m.role for m in wb.chat_store.messages] == ["user", "assistant", "assistant"]
        assert wb.chat_store.messages[-1].status == "done"

    run(scenario())


def test_insert_code_puts_javascript_for_a_new_cell_and_the_copy_box(gateway: Gateway) -> None:
    import json

    from IPython.core.interactiveshell import InteractiveShell

    from deepspace_lab.simulator.engine import SIMULATED_CODE_LINES

    code = "".join(SIMULATED_CODE_LINES[1:-1])  # what the simulated reply's fence holds

    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        wb.chat_store.model = MODEL
        await wb.chat_stream.send("some code please [sim:code]")
        view, item = wb.chat_view, wb.chat_view.messages.children[1]
        assert item.insert.layout.display == "" and view.insert_js.layout.display == "none"
        item.insert.click()  # a widget click: no cell runs
        (output,) = view.insert_js.outputs
        js = output["data"]["application/javascript"]
        encoded = json.dumps(code).replace("<", "\\u003c").replace(">", "\\u003e")
        assert f"var code = {encoded}," in js and "</script>" not in js and "window.jupyterapp" in js
        assert "notebook:insert-cell-below" in js and "setSource(code)" in js
        assert view.code_out.value == code and view.code_out.layout.display == ""  # the fallback to copy
        item.insert.click()
        assert len(view.insert_js.outputs) == 1 and view.insert_js.outputs[0] != output  # a new nonce

        shell = InteractiveShell.instance()
        try:  # called from a running cell: IPython's own next-input payload, no JavaScript
            shell.parent_header = {"msg_type": "execute_request"}
            view.insert_js.outputs = ()
            view.insert_code("x = 1\n")
            assert shell.rl_next_input == "x = 1\n"
            assert view.insert_js.outputs == () and view.code_out.value == "x = 1\n"
        finally:
            InteractiveShell.clear_instance()

    run(scenario())


def test_keys_are_created_shown_once_and_revoked(gateway: Gateway) -> None:
    owner = make_tenant(gateway.settings, email="owner@example.org", scopes=("chat", "account"))

    async def scenario() -> None:
        wb = bench(gateway, owner.api_key)
        await wb.load()
        profile = wb.profile_view
        assert "owner@example.org" in profile.who.value
        profile.key_name.value = "notebook key"
        profile.create_key.click()
        await until(lambda: bool(wb.user_store.new_key))
        secret = wb.user_store.new_key["api_key"]
        assert secret.startswith("dsk_") and secret in profile.new_key.value
        assert "notebook key" in profile.key_table.value
        profile.key_choice.value = wb.user_store.new_key["id"]
        profile.revoke.click()
        await until(lambda: not wb.user_store.new_key and any(k.get("revoked_at") for k in wb.user_store.keys))
        assert secret not in profile.new_key.value  # shown once only
        assert wb.user_store.new_key == {}

    run(scenario())


def test_billing_and_projects_views(gateway: Gateway) -> None:
    owner = make_tenant(gateway.settings, email="owner@example.org", scopes=("chat", "account"))

    async def scenario() -> None:
        wb = bench(gateway, owner.api_key, lang="zh")
        await wb.load()
        assert wb.get_title(1) == "账单" and "发送" == wb.chat_view.prompt.send_button.description
        wb.chat_store.model = MODEL
        await wb.chat_stream.send("x [sim:tokens=5]")
        await wb.billing.refresh()
        view = wb.billing_view
        assert "capture" in view.transactions.value and "<svg" in view.chart.value
        assert wb.billing_store.usage_summary["group_by"] == "day"  # the roll-ups' whole history
        assert view.summary.value.count("ds-balance") == 1
        wb.projects_view.name.value = "analysis"
        wb.projects_view.create.click()
        await until(lambda: len(wb.user_store.projects) == 2)
        assert "analysis" in wb.projects_view.list.value
        other = next(p["id"] for p in wb.user_store.projects if p["name"] == "analysis")
        wb.projects_view.choice.value = other
        wb.projects_view.switch.click()  # an API key is bound to its project
        assert wb.user_store.error["code"] == "key_project_mismatch" and wb.user_store.project_id != other

    run(scenario())




def test_agent_steps_and_notebook_context_are_shown_and_sent() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from deepspace_lab.widgets.components import MessageItem
    from deepspace_lab.widgets.context import notebook_context
    from deepspace_lab.widgets.i18n import Text
    from deepspace_lab.widgets.stores import MessageModel

    message = MessageModel(role="assistant", content="Use:\n```python\nprint(1)\n```", status="done",
                           steps=[{"kind": "thought", "content": "look it up"},
                                  {"kind": "citation", "content": {"title": "Doc"}}])
    inserted: list[str] = []
    item = MessageItem(message, text=Text("en"), on_insert_code=inserted.append)
    assert item.thought.layout.display == "" and "look it up" in item.thought.list.value
    assert "Source" in item.thought.list.value and '<pre class="ds-code">' in item.body.value
    item.insert.click()
    assert inserted == ["print(1)\n"]
    message.content = "<script>alert(1)</script>"  # model output is untrusted
    assert "<script>" not in item.body.value and "&lt;script&gt;" in item.body.value

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("df = list(range(3))", store_history=True)
        shell.run_cell("1/0", store_history=True)
        text = notebook_context(shell, include_cell=True, include_error=True, variables=["df", "missing"])
    finally:
        InteractiveShell.clear_instance()
    assert "Current cell:\n```python\n1/0" in text and "ZeroDivisionError" in text
    assert "Variable `df` (list)" in text and "[0, 1, 2]" in text and "missing" not in text
    assert notebook_context(None, include_cell=True, include_error=True, variables=[]) == ""


def test_a_login_in_the_profile_view_switches_the_user(gateway: Gateway) -> None:
    import asyncio as aio

    from deepspace_lab.auth import create_user
    from deepspace_lab.auth.models import OrgMember
    from deepspace_lab.db import make_async_engine, make_sessionmaker

    async def add_user() -> None:
        engine = make_async_engine(gateway.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                user = await create_user(session, email="researcher@example.org", password="correct horse battery")
                session.add(OrgMember(id="mem_researcher", org_id=gateway.tenant.org_id, user_id=user.id,
                                      role="member"))
                await session.commit()
        finally:
            await engine.dispose()

    aio.run(add_user())

    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        profile = wb.profile_view
        profile.email.value, profile.password.value = "researcher@example.org", "wrong password!"
        profile.login.click()
        await until(lambda: wb.user_store.error.get("code") == "invalid_credentials")
        assert "invalid email or password" in profile.error.value
        profile.password.value = "correct horse battery"
        profile.login.click()
        await until(lambda: wb.user_store.me.get("user", {}).get("email") == "researcher@example.org")
        await until(lambda: profile.password.value == "")  # not kept once used
        assert wb.user_store.me["via"] == "jwt"
        assert "researcher@example.org" in profile.who.value
        await wb.chat_stream.send("as the researcher [sim:tokens=3]")
        assert wb.chat_store.messages[-1].status == "done"

    run(scenario())


def test_a_low_balance_warns_after_a_reply(gateway: Gateway) -> None:
    poorish = make_tenant(gateway.settings, email="low@example.org", credit_micros=2_000_000)

    async def scenario() -> None:
        wb = bench(gateway, poorish.api_key)
        await wb.load()
        assert wb.billing_store.low_balance and "Low balance" in wb.chat_view.low_balance.value
        wb.billing_store.low_balance_micros = 1_000
        await wb.chat_stream.send("x [sim:tokens=3]")
        assert not wb.billing_store.low_balance and wb.chat_view.low_balance.value == ""

    run(scenario())


def test_the_system_prompt_is_kept_per_project_and_sent(gateway: Gateway, tmp_path: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSPACE_WORKBENCH_PREFS", str(tmp_path / "prefs.json"))

    async def scenario() -> None:
        wb = bench(gateway)
        await wb.load()
        assert wb.chat_store.system_prompt == ""
        wb.chat_view.system.value = "Answer as a physicist."
        assert wb.chat_store.system_prompt == "Answer as a physicist."
        await wb.chat_stream.send("why [sim:tokens=3]")
        request_id = wb.chat_store.messages[-1].request_id
        again = bench(gateway)  # a new kernel in the same project
        await again.load()
        assert again.chat_store.system_prompt == "Answer as a physicist."
        assert again.chat_view.system.value == "Answer as a physicist."
        return request_id

    request_id = run(scenario())
    rows = gateway.audit_rows(request_id=request_id)
    assert rows and rows[0]["detail"]["history_messages"] == 0
    # the system prompt reached the model: the same messages give the same simulated reply
    from deepspace_lab.client import DeepSpaceClient

    client = DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key)
    stored = client.conversation(client.conversations()["data"][0]["id"])["messages"]
    expected = client.chat(MODEL, [{"role": "system", "content": "Answer as a physicist."},
                                   {"role": "user", "content": "why [sim:tokens=3]"}], max_tokens=512)
    assert stored[-1]["content"] == expected["choices"][0]["message"]["content"]


def test_refusals_and_upstream_failures_show_the_servers_message(gateway: Gateway) -> None:
    """Upstream down (before and during the reply), rate limited, budget reached: each reply ends
    in its error with the Gateway's code and message, in the store and on screen."""
    from deepspace_lab.billing import set_budget

    from ..policy.test_gateway import drop_policy, put_policy

    limit = put_policy(gateway, "rate_limit", "key", gateway.tenant.api_key_id, {"rpm": 2})

    async def cap() -> None:
        async with gateway.runtime.sessions() as session:
            await set_budget(session, org_id=gateway.tenant.org_id, scope="org", scope_id=gateway.tenant.org_id,
                             period="day", limit_micros=1, actor="test")
            await session.commit()

    async def reply_to(wb: Workbench, prompt: str) -> Any:
        await wb.chat_stream.send(prompt)
        reply = wb.chat_store.messages[-1]
        assert reply.status == "error" and not wb.chat_store.streaming
        shown = wb.chat_view.error.value
        assert reply.error["code"] in shown and escape(reply.error["message"])[:30] in shown
        assert escape(reply.error["message"])[:30] in wb.chat_view.messages.children[-1].error.value
        return reply

    async def scenario() -> list[str]:
        wb = bench(gateway)
        await wb.load()
        wb.chat_store.model = MODEL
        codes = [(await reply_to(wb, "x [sim:error=503]")).error["code"]]
        cut = await reply_to(wb, "x [sim:tokens=9] [sim:fail_after=3] [sim:token_latency_ms=20]")
        assert cut.usage and cut.billing  # the stream still ended with its bill
        codes.append(cut.error["code"])
        codes.append((await reply_to(wb, "x [sim:tokens=2]")).error["code"])  # the third this minute
        drop_policy(gateway, limit)
        gateway.loop.run(cap())
        codes.append((await reply_to(wb, "x [sim:tokens=2]")).error["code"])
        return codes

    down, cut, limited, budget = run(scenario())
    assert down.startswith("upstream_") and cut == "upstream_stream_interrupted"
    assert (limited, budget) == ("rate_limited", "budget_exceeded")


async def settled() -> None:
    """Until every task the views started (loads after a switch, refreshes) has finished."""
    await until(lambda: not views._TASKS)


def test_a_login_into_another_org_and_a_project_switch_bring_their_own_wallet_chats_and_prompt(
        gateway: Gateway, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSPACE_WORKBENCH_PREFS", str(tmp_path / "prefs.json"))
    other = make_tenant(gateway.settings, email="researcher@example.org", password=PASSWORD, credit_micros=3_000_000)

    async def scenario() -> tuple[str, str]:
        wb = bench(gateway)
        await wb.load()
        wb.chat_store.model = MODEL
        wb.chat_view.system.value = "Prompt of A"
        await wb.chat_stream.send("in A [sim:tokens=3]")
        conv_a = wb.chat_store.conversation_id
        assert not wb.billing_store.low_balance
        profile, projects = wb.profile_view, wb.projects_view
        profile.email.value, profile.password.value = "researcher@example.org", PASSWORD
        profile.login.click()
        await until(lambda: wb.user_store.project_id == other.project_id)
        await settled()
        # the other org: its wallet (under 5 credits: the warning), its project's chats and prompt
        assert wb.billing_store.wallet["balance_micros"] == 3_000_000 and wb.billing_store.low_balance
        assert wb.chat_store.conversations == [] and wb.chat_store.messages == []
        assert wb.chat_store.system_prompt == "" and wb.chat_view.system.value == ""
        wb.chat_view.system.value = "Prompt of R"
        projects.name.value = "second"
        projects.create.click()
        await until(lambda: any(p["name"] == "second" for p in wb.user_store.projects))
        second = next(p["id"] for p in wb.user_store.projects if p["name"] == "second")
        projects.choice.value = second
        projects.switch.click()  # a token may act in any project of its org
        await settled()
        assert wb.user_store.project_id == second and wb.chat_store.system_prompt == ""
        wb.chat_view.system.value = "Prompt of second"
        await wb.chat_stream.send("in second [sim:tokens=3]")
        conv_second = wb.chat_store.conversation_id
        projects.choice.value = other.project_id
        projects.switch.click()
        await settled()
        assert wb.chat_store.system_prompt == "Prompt of R" and wb.chat_view.system.value == "Prompt of R"
        assert wb.chat_store.conversations == [] and conv_second != conv_a
        return conv_a, conv_second

    conv_a, conv_second = run(scenario())
    from deepspace_lab.client import DeepSpaceClient, NotFoundError
    from deepspace_lab.widgets.prefs import Prefs

    assert [c["id"] for c in DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key)
            .conversations()["data"]] == [conv_a]
    with pytest.raises(NotFoundError):  # stored in the second project, not in the first one's key
        DeepSpaceClient(base_url=gateway.url, api_key=other.api_key).conversation(conv_second)
    assert Prefs().system_prompt(gateway.tenant.project_id) == "Prompt of A"


def test_the_chosen_max_tokens_and_notebook_context_reach_the_model(gateway: Gateway) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("readings = [1.5, 2.5]", store_history=True)

        async def scenario() -> Workbench:
            wb = bench(gateway)
            await wb.load()
            view = wb.chat_view
            view.max_tokens.value = 4
            view.use_cell.value = True
            view.variables.value = "readings, nothing_by_that_name"
            view.prompt.input.value = "why [sim:tokens=50]"
            view.prompt.send_button.click()
            await wb.chat_stream.task
            return wb

        wb = run(scenario())
    finally:
        InteractiveShell.clear_instance()
    user, reply = wb.chat_store.messages
    assert user.content.startswith("Notebook context:") and user.content.endswith("\n\nwhy [sim:tokens=50]")
    assert "readings = [1.5, 2.5]" in user.content and "Variable `readings` (list)" in user.content
    assert "nothing_by_that_name" not in user.content
    assert reply.usage["completion_tokens"] == 4 and len(reply.content.split()) == 4  # max tokens cut it


def test_the_chosen_temperature_reaches_the_model(gateway: Gateway) -> None:
    """The simulator's ``params`` directive says what sampling parameters it received."""
    async def scenario() -> str:
        wb = bench(gateway)
        await wb.load()
        view = wb.chat_view
        view.temperature.value = 0.3
        view.max_tokens.value = 40
        view.prompt.input.value = "what reached you? [sim:params] [sim:tokens=6]"
        view.prompt.send_button.click()
        await wb.chat_stream.task
        return wb.chat_store.messages[-1].content

    words = run(scenario()).split()
    assert words[:3] == ["[simulated]", "temperature=0.3", "max_tokens=40"]


def test_the_language_comes_from_the_setting_else_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    import locale

    from deepspace_lab.widgets.i18n import TEXT, Text, language

    assert TEXT["zh"].keys() == TEXT["en"].keys()  # every text exists in both
    monkeypatch.setenv("DEEPSPACE_LANG", "zh")
    assert language() == "zh" and language("en") == "en" and Text()("send") == "发送"
    monkeypatch.delenv("DEEPSPACE_LANG")
    monkeypatch.setattr(locale, "getlocale", lambda *_: ("zh_CN", "UTF-8"))
    assert language() == "zh"
    monkeypatch.setattr(locale, "getlocale", lambda *_: ("en_GB", "UTF-8"))
    assert language() == "en" and Text()("send") == "Send"


def test_spend_per_day_joins_the_rollups_and_the_newest_records_once() -> None:
    from deepspace_lab.widgets.views import spend_per_day

    summary = {"rolled_until": "2026-11-20T10:00:00+00:00",
               "data": [{"key": "2026-11-01", "cost_micros": 5_000_000},
                        {"key": "2026-11-20", "cost_micros": 1_000_000}]}
    records = [{"created_at": "2026-11-20T09:59:00+00:00", "cost_micros": 1_000_000},  # rolled up already
               {"created_at": "2026-11-20T10:30:00+00:00", "cost_micros": 2_000_000},
               {"created_at": "2026-11-21T08:00:00+00:00", "cost_micros": 500_000}]
    assert spend_per_day(summary, records) == [("2026-11-01", 5.0), ("2026-11-20", 3.0), ("2026-11-21", 0.5)]
    assert spend_per_day({}, records) == [("2026-11-20", 3.0), ("2026-11-21", 0.5)]  # nothing rolled up yet
