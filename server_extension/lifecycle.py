"""Starting and stopping a gateway runtime, shared by the Jupyter extension and the
standalone ``deepspace-lab gateway``."""

from __future__ import annotations

import asyncio
import gc
import logging

from tornado.httpserver import HTTPServer

from deepspace_lab.db.migrate import upgrade
from deepspace_lab.runtime import Runtime

from .simulator import start_simulator

log = logging.getLogger("deepspace_lab.gateway")


class GatewayLifecycle:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._simulator: HTTPServer | None = None

    async def start(self) -> None:
        settings = self.runtime.settings
        # Alembic is synchronous; it runs once per start, under a cross-process lock.
        await asyncio.get_running_loop().run_in_executor(None, upgrade, settings.database_url)
        if settings.uses_simulator:
            self._simulator, port = start_simulator(
                host="127.0.0.1", port=0, token_latency_ms=settings.simulator_token_latency_ms)
            base_url = f"http://127.0.0.1:{port}/v1"
            log.warning("no DEEPSPACE_UPSTREAM_BASE_URL: using the built-in SIMULATED upstream at %s "
                        "(deterministic replies, no real model)", base_url)
        else:
            assert settings.upstream_base_url is not None
            base_url = settings.upstream_base_url
        await self.runtime.start(upstream_base_url=base_url, simulated=settings.uses_simulator)
        # Everything made so far lives as long as the process: keep it out of the collector's
        # full passes (measured: worst GC pause under load 157 ms -> 24 ms).
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        await self.runtime.close()
        if self._simulator is not None:
            self._simulator.stop()
            await self._simulator.close_all_connections()
            self._simulator = None
