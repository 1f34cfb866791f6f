"""Keep a lease alive while a call runs: the hold's lease (billing) and the in-flight slots
(rate limits) both renew every third of their lease, starting only after a third has
passed, so calls shorter than that cost nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("deepspace_lab.pipeline")


class Renewal:
    """Call ``renew()`` every ``lease_s / 3`` until :meth:`stop`; a failure is logged (the
    lease then lapses on its own, which is what the lease is for) and retried next time."""

    def __init__(self, renew: Callable[[], Awaitable[None]], *, lease_s: float, what: str) -> None:
        self._renew, self._every, self._what = renew, lease_s / 3, what
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(self._every, self._start)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._renew()
            except Exception:
                log.warning("could not renew %s", self._what, exc_info=True)
            await asyncio.sleep(self._every)

    def stop(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
