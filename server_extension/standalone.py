"""The Gateway without Jupyter: the same handlers in a plain tornado Application, for
deployments with several gateway processes over one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import logging
import signal

import tornado.web
from tornado.httpserver import HTTPServer

from deepspace_lab.config import Settings
from deepspace_lab.runtime import Runtime

from .lifecycle import GatewayLifecycle
from .routes import all_handlers

log = logging.getLogger("deepspace_lab.gateway")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    if status >= 500:
        log.warning("%s %s -> %s", handler.request.method, handler.request.path, status)
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s -> %s", handler.request.method, handler.request.path, status)


def make_gateway_app(runtime: Runtime) -> tornado.web.Application:
    return tornado.web.Application(all_handlers(runtime), log_function=_log_request)


def make_gateway_server(runtime: Runtime) -> HTTPServer:
    # Bodies over the gateway's own limit are refused by the pipeline with a clear, audited
    # 400; tornado's cap (which just drops the connection) only stops absurd uploads.
    limit = max(runtime.settings.max_body_bytes * 4, runtime.settings.storage_max_file_bytes + (1 << 20), 16 << 20)
    return HTTPServer(make_gateway_app(runtime), max_body_size=limit)


async def serve_gateway(settings: Settings, *, host: str, port: int) -> None:
    """Run until SIGTERM / SIGINT, then flush audit rows and stop cleanly."""
    runtime = Runtime(settings)
    lifecycle = GatewayLifecycle(runtime)
    await lifecycle.start()
    server = make_gateway_server(runtime)
    server.bind(port, address=host, backlog=4096)
    server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.warning("DeepSpace Gateway listening on http://%s:%s/deepspace/v1 (%s upstream)", host, port,
                "SIMULATED" if runtime.upstream_is_simulated else settings.upstream_base_url)
    try:
        await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        await lifecycle.stop()
