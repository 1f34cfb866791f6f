"""Two operators putting the same policy in force at the same moment on PostgreSQL: one wins,
the other gets 409 ``policy_conflict`` and writes nothing (never a 500, never two versions in
force)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.db.migrate import upgrade
from deepspace_lab.errors import Conflict
from deepspace_lab.policy.service import read_epoch, set_policy

from ..conftest import make_settings
from ..helpers import make_tenant


async def _until_waiting_on_a_lock(engine: AsyncEngine, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with engine.connect() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))).scalar_one()
        if waiting:
            return
    pytest.fail("the second change never waited on the first")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_concurrent_first_version_is_a_conflict_not_a_500(fresh_db_url: Callable[[], str], tmp_path: Path) -> None:
    url = fresh_db_url()
    upgrade(url)
    tenant = make_tenant(make_settings(url, tmp_path), email="ops@example.org")

    async def race() -> None:
        engine = make_async_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            async with sessions() as first, sessions() as second:
                await set_policy(first, kind="rate_limit", scope="org", scope_id=tenant.org_id,
                                 spec={"rpm": 10}, actor="ops-1")  # flushed, not committed
                late = asyncio.ensure_future(set_policy(second, kind="rate_limit", scope="org",
                                                        scope_id=tenant.org_id, spec={"rpm": 20}, actor="ops-2"))
                await _until_waiting_on_a_lock(engine)  # the second insert waits at the unique index
                assert not late.done()
                await first.commit()
                with pytest.raises(Conflict) as caught:
                    await late
                assert caught.value.code == "policy_conflict" and caught.value.http_status == 409
            async with engine.connect() as conn:
                in_force = (await conn.execute(text(
                    "SELECT spec, actor FROM policies WHERE ended_at IS NULL"))).all()
                assert [row.actor for row in in_force] == ["ops-1"]
                assert await read_epoch(conn) == 1
        finally:
            await engine.dispose()

    asyncio.run(race())
