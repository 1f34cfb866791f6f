"""Work for the multi-process SQLite test; runs in spawned processes, so it lives in a module."""

from __future__ import annotations

import asyncio
from typing import Any

from deepspace_lab.billing import InsufficientFundsError, place_hold
from deepspace_lab.db import make_async_engine, make_sessionmaker


def hold_each(url: str, org_id: str, refs: list[str], amount_micros: int, barrier: Any, results: Any) -> None:
    """Place one hold per ref once every process is ready; report (ref, entry id or None)."""

    async def run() -> list[tuple[str, int | None]]:
        engine = make_async_engine(url)
        sessions = make_sessionmaker(engine)
        outcomes: list[tuple[str, int | None]] = []
        try:
            async with sessions() as session:  # connect (and so open the file) before the start line
                await session.connection()
                await session.rollback()
            barrier.wait()
            for ref in refs:
                try:
                    async with sessions() as session:
                        entry = await place_hold(session, org_id=org_id, ref=ref, amount_micros=amount_micros)
                    outcomes.append((ref, entry.id))
                except InsufficientFundsError:
                    outcomes.append((ref, None))
        finally:
            await engine.dispose()
        return outcomes

    results.put(asyncio.run(run()))
