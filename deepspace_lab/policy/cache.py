"""A gateway process's view of the policies in force, fresh on every request.

Each request reads one integer, the policy epoch (one prepared statement on the engine's raw
pool on PostgreSQL); only when it moved — some process changed a policy — are the policies
reloaded. So a change takes effect on the next request in every process, and a request
costs one tiny read, not one read per kind of policy.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.rawpool import raw_pool_for
from .rules import PolicySnapshot
from .service import EPOCH_SQL, load_snapshot, read_epoch


class PolicyCache:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._snapshot = PolicySnapshot()
        self._lock = asyncio.Lock()

    async def epoch(self) -> int:
        if self._pg:
            row = await raw_pool_for(self.engine).fetchone(EPOCH_SQL)
            return int(row[0])
        async with self.engine.connect() as conn:
            return await read_epoch(conn)

    async def current(self) -> PolicySnapshot:
        """The policies in force now."""
        epoch = await self.epoch()
        if epoch == self._snapshot.epoch:
            return self._snapshot
        async with self._lock:
            if self._snapshot.epoch < epoch:
                async with self.engine.connect() as conn:
                    self._snapshot = await load_snapshot(conn)
        return self._snapshot
