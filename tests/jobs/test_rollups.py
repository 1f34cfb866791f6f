"""Usage roll-ups: sums per hour and day equal the usage rows, building twice changes nothing,
a missed schedule is caught up from the mark, and the summary route reads them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from deepspace_lab.auth import create_org, create_project, create_user
from deepspace_lab.billing.models import UsageRecord
from deepspace_lab.billing.rollups import roll_up_due, rollup_period
from deepspace_lab.client import DeepSpaceClient
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine

from ..helpers import Gateway, make_tenant

T = TypeVar("T")
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def run(url: str, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    async def go() -> T:
        engine = make_async_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def seed(url: str, rows: list[tuple[datetime, str, int]]) -> tuple[str, str]:
    """An org with one project and usage rows (created_at, model, cost)."""
    async def make(engine: Any) -> tuple[str, str]:
        async with make_sessionmaker(engine)() as session:
            user = await create_user(session, email=f"r{id(rows)}@example.org")
            org = await create_org(session, name="r", owner=user)
            project = await create_project(session, org_id=org.id, name="p")
            await session.commit()
            return org.id, project.id

    org_id, project_id = run(url, make)
    engine = make_sync_engine(url)
    with Session(engine) as session:
        for i, (at, model, cost) in enumerate(rows):
            session.add(UsageRecord(request_id=f"req_{org_id}_{i}", trace_id="t" * 32, org_id=org_id,
                                    project_id=project_id, model=model, prompt_tokens=10, completion_tokens=5,
                                    cost_micros=cost, measured="upstream", status="captured", created_at=at))
        session.commit()
    engine.dispose()
    return org_id, project_id


def rollups(url: str, period: str) -> list[tuple[Any, ...]]:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT period_start, model, requests, prompt_tokens, completion_tokens, cost_micros "
                "FROM usage_rollups WHERE period = :p ORDER BY period_start, model"), {"p": period})]
    finally:
        engine.dispose()


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


ROWS = [(at(0.1), "m1", 100), (at(0.9), "m1", 50), (at(0.5), "m2", 7), (at(1.2), "m1", 1),
        (at(25.0), "m2", 1000), (at(25.99), "m2", 1)]


def _start(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def test_hours_and_days_sum_the_usage_rows_and_a_rebuild_changes_nothing(db_url: str) -> None:
    seed(db_url, ROWS)
    report = run(db_url, lambda e: roll_up_due(e, now=at(48.5)))
    assert report.built == {"hour": 3, "day": 2} and report.rows == 4 + 3
    hours = [(_start(r[0]), *r[1:]) for r in rollups(db_url, "hour")]
    assert hours == [(at(0), "m1", 2, 20, 10, 150), (at(0), "m2", 1, 10, 5, 7), (at(1), "m1", 1, 10, 5, 1),
                     (at(25), "m2", 2, 20, 10, 1001)]
    days = [(_start(r[0]), *r[1:]) for r in rollups(db_url, "day")]
    assert days == [(at(0), "m1", 3, 30, 15, 151), (at(0), "m2", 1, 10, 5, 7), (at(24), "m2", 2, 20, 10, 1001)]
    run(db_url, lambda e: rollup_period(e, period="hour", start=at(0.3)))
    run(db_url, lambda e: rollup_period(e, period="day", start=at(1)))
    assert [(_start(r[0]), *r[1:]) for r in rollups(db_url, "hour")] == hours
    assert [(_start(r[0]), *r[1:]) for r in rollups(db_url, "day")] == days
    again = run(db_url, lambda e: roll_up_due(e, now=at(48.5)))
    assert again.built == {"hour": 0, "day": 0}


def test_a_missed_schedule_is_caught_up_from_the_mark(db_url: str) -> None:
    seed(db_url, ROWS)
    first = run(db_url, lambda e: roll_up_due(e, now=at(1.5)))  # only hour 0 is complete
    assert first.built == {"hour": 1, "day": 0} and first.rolled_until["hour"] == at(1).isoformat()
    # the worker is down for two days; when it is back, everything since the mark is built
    back = run(db_url, lambda e: roll_up_due(e, now=at(50)))
    assert back.built == {"hour": 2, "day": 2} and back.rolled_until["hour"] == at(50).isoformat()
    assert sum(r[5] for r in rollups(db_url, "hour")) == sum(cost for _, _, cost in ROWS)


def test_an_hour_still_settling_is_not_summed_yet(db_url: str) -> None:
    seed(db_url, ROWS)
    report = run(db_url, lambda e: roll_up_due(e, now=at(1.1), settle_s=900))  # 01:06 minus 15 min settle
    assert report.built["hour"] == 0 and report.rolled_until["hour"] == at(0).isoformat()


def test_the_summary_route_groups_the_callers_rollups(gateway: Gateway) -> None:
    settings = gateway.settings
    tenant = make_tenant(settings, email="summary@example.org")
    now = datetime.now(UTC)
    with Session(gateway.db) as session:
        for hours_ago, model, cost in ((3, "m1", 10), (3, "m2", 20), (30, "m1", 5)):
            session.add(UsageRecord(request_id=f"req_sum_{hours_ago}_{model}", trace_id="t" * 32,
                                    org_id=tenant.org_id, project_id=tenant.project_id, model=model,
                                    prompt_tokens=1, completion_tokens=2, cost_micros=cost, measured="upstream",
                                    status="captured", created_at=now - timedelta(hours=hours_ago)))
        session.commit()
    gateway.loop.run(roll_up_due(gateway.runtime.engine, now=now))
    headers = {"Authorization": f"Bearer {tenant.api_key}"}

    def summary(**params: str) -> dict[str, Any]:
        response = httpx.get(gateway.url + "/deepspace/api/usage/summary", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    by_model = summary(group_by="model")
    assert [(r["key"], r["requests"], r["cost_micros"]) for r in by_model["data"]] == [("m1", 2, 15), ("m2", 1, 20)]
    with DeepSpaceClient(base_url=gateway.url, api_key=tenant.api_key) as client:  # what the workbench calls
        assert client.usage_summary(group_by="model")["data"] == by_model["data"]
    assert [r["cost_micros"] for r in summary(group_by="project")["data"]] == [35]
    days = summary(group_by="day")["data"]
    assert sum(r["cost_micros"] for r in days) == 35 and all(len(r["key"]) == 10 for r in days)
    recent = summary(group_by="model", since=(now - timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert [(r["key"], r["cost_micros"]) for r in recent["data"]] == [("m1", 10), ("m2", 20)]
    bad = httpx.get(gateway.url + "/deepspace/api/usage/summary", headers=headers, params={"group_by": "key"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_group_by"


def test_two_builders_at_once_build_each_period_once(db_url: str) -> None:
    seed(db_url, ROWS)

    async def both(engine: Any) -> list[Any]:
        return list(await asyncio.gather(roll_up_due(engine, now=at(48.5)), roll_up_due(engine, now=at(48.5))))

    first, second = run(db_url, both)
    assert first.built["hour"] + second.built["hour"] == 3 and first.built["day"] + second.built["day"] == 2
    assert len(rollups(db_url, "hour")) == 4 and sum(r[5] for r in rollups(db_url, "day")) == 1159
