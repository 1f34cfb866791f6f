"""The pieces the pages stand on, against a real gateway: the server-side paged table (keyset
cursors through a cursor-paged route), the form that shows the API's error codes, the progress
of a Worker job, and charts from aggregates."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import panel as pn
import pytest

from deepspace_lab.client import DeepSpaceClient
from deepspace_lab.dashboards import ApiForm, JobProgress, PagedTable, Text, aggregate_frame, bar_chart, line_chart
from deepspace_lab.db import make_async_engine
from deepspace_lab.jobs import JobQueue, submit_job

from ..admin.conftest import AdminWorld
from ..helpers import Gateway, make_tenant
from .conftest import key_client, run

MODEL = "deepspace-simulated-chat"


def make_usage(gw: Gateway, calls: int) -> None:
    with DeepSpaceClient(base_url=gw.url, api_key=gw.tenant.api_key) as client:
        for i in range(calls):
            client.chat(MODEL, [{"role": "user", "content": f"call {i} [sim:tokens=2]"}])


def test_the_paged_table_pages_through_usage_one_page_at_a_time(gateway: Gateway) -> None:
    make_usage(gateway, 7)

    async def scenario() -> None:
        client = key_client(gateway.url, gateway.tenant.api_key)
        asked: list[dict[str, Any]] = []

        async def fetch(params: dict[str, Any]) -> Mapping[str, Any]:
            asked.append(dict(params))
            return await client.usage(**params)

        model = pn.widgets.TextInput(label="model")
        table = PagedTable(fetch, text=Text("en"), columns=["request_id", "model", "cost_micros"],
                           filters={"model": model}, page_size=3)
        await table.load()
        pages = [[r["request_id"] for r in table.rows]]
        assert table.previous_button.disabled and not table.next_button.disabled
        assert table.status.object == "Page 1 · 3 rows"
        assert list(table.table.value.columns) == ["request_id", "model", "cost_micros"]
        await table.next_page()
        pages.append([r["request_id"] for r in table.rows])
        await table.next_page()
        pages.append([r["request_id"] for r in table.rows])
        assert [len(p) for p in pages] == [3, 3, 1] and table.next_button.disabled
        assert len({rid for page in pages for rid in page}) == 7  # every row once, none twice
        assert all(p["limit"] == 3 for p in asked)  # never more than a page asked for
        await table.previous_page()
        assert [r["request_id"] for r in table.rows] == pages[1] and table.page_index == 1
        await table.previous_page()
        assert [r["request_id"] for r in table.rows] == pages[0] and table.previous_button.disabled
        await table.previous_page()  # nothing before the first page
        assert table.page_index == 0 and len(asked) == 5
        # a filter is a query parameter and starts again from the first page
        await table.next_page()
        model.value = "no-such-model"
        await until(lambda: table.status.object == "No rows")  # the watcher's task runs on this loop
        assert asked[-1]["model"] == "no-such-model" and asked[-1]["cursor"] is None
        assert table.rows == [] and table.page_index == 0 and table.next_button.disabled
        model.value = MODEL
        await until(lambda: len(table.rows) == 3)
        await client.aclose()

    run(scenario)


def test_the_paged_table_shows_the_api_error_and_keeps_its_page(gateway: Gateway) -> None:
    make_usage(gateway, 2)

    async def scenario() -> None:
        client = key_client(gateway.url, gateway.tenant.api_key)
        since = pn.widgets.TextInput(label="since")
        table = PagedTable(lambda p: client.usage(**p), text=Text("en"), filters={"since": since})
        await table.load()
        assert len(table.rows) == 2 and not table.alert.visible
        since.value = "yesterday-ish"
        await until(lambda: table.alert.visible)
        assert table.error is not None and "(invalid_" in table.error
        assert len(table.rows) == 2  # the last good page stays
        await client.aclose()

    run(scenario)


async def until(condition: Callable[[], bool], timeout_s: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_the_form_shows_api_errors_by_code_under_their_field(admin_world: AdminWorld) -> None:
    w = admin_world
    member = w.a.people["member"]

    async def scenario() -> None:
        client = key_client(w.gw.url, member.key)
        name = pn.widgets.TextInput(label="name")
        scopes = pn.widgets.MultiChoice(label="scopes", options=["chat", "account", "nonsense"])
        made: list[Any] = []
        form = ApiForm({"name": name, "scopes": scopes},
                       lambda v: client.create_key(name=v["name"], scopes=v["scopes"]),
                       text=Text("en"), required=("name",), on_success=made.append)
        scopes.value = ["nonsense"]
        assert await form.send() is None
        assert form.last_error == ("required", "name")  # checked here: nothing was sent
        assert form.field_errors["name"].visible and not form.field_errors["scopes"].visible
        name.value = "from the console"
        assert await form.send() is None
        assert form.last_error == ("invalid_scope", "scopes")  # the API's code, under its field
        assert form.field_errors["scopes"].visible and "nonsense" in form.field_errors["scopes"].object
        assert not form.field_errors["name"].visible and not form.form_error.visible
        scopes.value = ["chat"]
        result = await form.send()
        assert result["api_key"].startswith("dsk_") and made == [result]
        assert form.last_error is None and form.done.visible and not form.field_errors["scopes"].visible
        await client.aclose()
        # a refusal that names no field is shown above the form
        viewer = key_client(w.gw.url, w.a.people["viewer"].key)
        form = ApiForm({"name": pn.widgets.TextInput(value="x")},
                       lambda v: viewer.create_key(name=v["name"]), text=Text("zh"))
        assert await form.send() is None
        assert form.last_error is not None and form.last_error[0] == "permission_denied"
        assert form.form_error.visible and "permission_denied" in form.form_error.object
        await viewer.aclose()

    run(scenario)


@pytest.fixture
def worker_gateway(gateway_factory: Callable[..., Gateway], worker_factory: Callable[..., Any]) -> Gateway:
    gw = gateway_factory(worker_backend="sqlite", worker_queue=f"t_{secrets.token_hex(5)}", job_max_attempts=1)
    worker_factory(gw.settings)
    return gw


def submit(gw: Gateway, org_id: str, kind: str, **params: Any) -> str:
    async def go() -> str:
        engine = make_async_engine(gw.settings.database_url)
        queue = JobQueue(gw.settings)
        try:
            job = await submit_job(engine, queue, kind=kind, trace_id=secrets.token_hex(16), org_id=org_id,
                                   params=params)
            return job.id
        finally:
            queue.close()
            await engine.dispose()

    return asyncio.run(go())


def test_job_progress_follows_a_worker_job_until_it_ends(worker_gateway: Gateway) -> None:
    gw = worker_gateway
    tenant = make_tenant(gw.settings, email="jobs@example.org", scopes=("workflows",), credit_micros=0)
    ok = submit(gw, tenant.org_id, "sleep", seconds=0.5)
    bad = submit(gw, tenant.org_id, "sleep", seconds=0.1, fail_times=1)

    async def scenario() -> None:
        client = key_client(gw.url, tenant.api_key)
        progress = JobProgress(client.job, text=Text("en"), poll_interval_s=0.02)
        job = await progress.follow(ok)
        assert job is not None and job["state"] == "done"
        assert progress.seen[-1] == ("done", 100.0) and progress.bar.value == 100 and progress.label.object == "Done"
        assert progress.seen[0][0] in ("queued", "running") and len(progress.seen) >= 2
        running = [p for s, p in progress.seen if s == "running" and p is not None]
        assert running == sorted(running) and all(0 <= p <= 100 for p in running)  # progress only goes up
        failed = JobProgress(client.job, text=Text("en"), poll_interval_s=0.02)
        job = await failed.follow(bad)
        assert job is not None and job["state"] == "failed" and failed.label.object.startswith("Failed: ")
        missing = JobProgress(client.job, text=Text("en"))
        assert await missing.follow("job_doesnotexist") is None
        assert "not_found)" in missing.label.object
        await client.aclose()

    run(scenario)


def test_charts_come_from_aggregates() -> None:
    rows = [{"day": "2026-11-02", "model": "a", "cost": 5}, {"day": "2026-11-01", "model": "a", "cost": 2},
            {"day": "2026-11-01", "model": "b", "cost": 3}, {"day": "2026-11-01", "model": "a", "cost": 1}]
    frame = aggregate_frame(rows, x="day", y="cost")
    assert frame.to_dict("records") == [{"day": "2026-11-01", "cost": 6}, {"day": "2026-11-02", "cost": 5}]
    fig = bar_chart(rows, x="model", y="cost", title="Cost per model")
    (renderer,) = fig.renderers
    assert list(renderer.data_source.data["model"]) == ["a", "b"] and list(renderer.data_source.data["cost"]) == [8, 3]
    fig = line_chart(rows, x="day", y="cost", by="model", title="Cost per day")
    assert sorted(r.data_source.data["model"][0] for r in fig.renderers) == ["a", "b"]
    with pytest.raises(ValueError, match="aggregates"):
        aggregate_frame([{"day": "d", "cost": 1}] * 5001, x="day", y="cost")


def test_the_paged_table_shows_the_newest_answer_when_an_older_one_arrives_late() -> None:
    async def scenario() -> None:
        slow_may_answer = asyncio.Event()

        async def fetch(params: dict[str, Any]) -> Mapping[str, Any]:
            if params.get("model") == "old":
                await slow_may_answer.wait()
            return {"data": [{"model": params.get("model")}], "next_cursor": None}

        model = pn.widgets.TextInput(value="old")
        table = PagedTable(fetch, text=Text("en"), filters={"model": model})
        older = asyncio.ensure_future(table.load())
        await asyncio.sleep(0)  # the older request is out
        model.value = "new"
        await until(lambda: table.rows == [{"model": "new"}])
        slow_may_answer.set()
        await older
        assert table.rows == [{"model": "new"}]  # the late answer to the old filter is dropped

    run(scenario)
