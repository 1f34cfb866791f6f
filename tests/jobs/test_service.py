"""The jobs state machine, on both databases: one claim wins, leases, retries, org scoping."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.db.base import utcnow
from deepspace_lab.jobs import JobNotFoundError, create_job, get_job, list_jobs
from deepspace_lab.jobs.service import claim_job, fail_attempt, finish_job, job_events, renew_lease, requeue_lapsed

from ..helpers import make_tenant

T = TypeVar("T")


def run(db_url: str, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    async def go() -> T:
        engine = make_async_engine(db_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def new_job(engine: Any, **kwargs: Any) -> Any:
    return create_job(engine, kind="noop", trace_id=secrets.token_hex(16), **kwargs)


def test_only_one_of_two_concurrent_claims_wins(db_url: str) -> None:
    async def work(engine: Any) -> list[Any]:
        job = await new_job(engine)
        return await asyncio.gather(*(claim_job(engine, job.id, worker=f"w{i}", lease_s=30) for i in range(2)))

    first, second = run(db_url, work)
    winners = [c for c in (first, second) if c is not None]
    assert len(winners) == 1 and winners[0].state == "running" and winners[0].attempts == 1


def test_a_finished_job_is_not_claimed_again(db_url: str) -> None:
    async def work(engine: Any) -> Any:
        job = await new_job(engine)
        assert await claim_job(engine, job.id, worker="w", lease_s=30) is not None
        assert await finish_job(engine, job.id, worker="w", result={"n": 1})
        return await claim_job(engine, job.id, worker="w2", lease_s=30)

    assert run(db_url, work) is None


def test_failures_retry_until_attempts_are_used_up(db_url: str) -> None:
    async def work(engine: Any) -> list[str | None]:
        job = await new_job(engine, max_attempts=2)
        states = []
        for attempt in range(2):
            assert await claim_job(engine, job.id, worker="w", lease_s=30) is not None
            states.append(await fail_attempt(engine, job.id, worker="w", error=f"boom {attempt}"))
        return states

    assert run(db_url, work) == ["queued", "failed"]


def test_a_lapsed_lease_queues_the_job_again_and_its_worker_can_no_longer_finish_it(db_url: str) -> None:
    async def work(engine: Any) -> tuple[Any, ...]:
        job = await new_job(engine)
        await claim_job(engine, job.id, worker="dead", lease_s=30)
        not_yet = await requeue_lapsed(engine, now=utcnow())
        later = await requeue_lapsed(engine, now=utcnow() + timedelta(seconds=31))
        renewed = await renew_lease(engine, job.id, worker="dead", lease_s=30)
        finished = await finish_job(engine, job.id, worker="dead", result=None)
        again = await claim_job(engine, job.id, worker="alive", lease_s=30)
        events = [e["event"] for e in await job_events(engine, job.id)]
        return not_yet, later, renewed, finished, again, events

    not_yet, later, renewed, finished, again, events = run(db_url, work)
    assert not_yet == [] and len(later) == 1
    assert renewed is False and finished is False
    assert again is not None and again.attempts == 2 and again.worker == "alive"
    assert events == ["queued", "started", "lost", "started"]


def test_a_lapsed_job_on_its_last_attempt_fails(db_url: str) -> None:
    async def work(engine: Any) -> Any:
        job = await new_job(engine, max_attempts=1)
        await claim_job(engine, job.id, worker="dead", lease_s=1)
        assert await requeue_lapsed(engine, now=utcnow() + timedelta(seconds=5)) == []
        return await claim_job(engine, job.id, worker="x", lease_s=1)

    assert run(db_url, work) is None


def test_jobs_are_read_only_within_their_org(db_url: str, settings_factory: Any) -> None:
    settings = settings_factory()
    a = make_tenant(settings, email="a@example.org", credit_micros=0)
    b = make_tenant(settings, email="b@example.org", credit_micros=0)

    async def work(engine: Any) -> tuple[Any, ...]:
        job = await new_job(engine, org_id=a.org_id, project_id=a.project_id)
        await new_job(engine)  # a deployment job: nobody's
        async with make_sessionmaker(engine)() as session:
            mine = await list_jobs(session, org_id=a.org_id)
            theirs = await list_jobs(session, org_id=b.org_id)
            with pytest.raises(JobNotFoundError):
                await get_job(session, org_id=b.org_id, job_id=job.id)
            own = await get_job(session, org_id=a.org_id, job_id=job.id)
        return job, mine, theirs, own

    job, mine, theirs, own = run(db_url, work)
    assert [j.id for j in mine.jobs] == [job.id] and theirs.jobs == [] and own.id == job.id


def test_last_error_never_carries_database_text() -> None:
    from sqlalchemy.exc import OperationalError

    from deepspace_lab.jobs.errors import JobParamsError
    from deepspace_lab.jobs.worker import _error_text

    leak = OperationalError("SELECT secret FROM t WHERE k = 'hunter2'", {}, Exception("host db.internal"))
    assert "hunter2" not in _error_text(leak, "t" * 32) and "trace " + "t" * 32 in _error_text(leak, "t" * 32)
    assert _error_text(JobParamsError("bad month", param="month"), "x") == "invalid_job_params: bad month"
    assert _error_text(RuntimeError("boom"), "x") == "RuntimeError: boom"
