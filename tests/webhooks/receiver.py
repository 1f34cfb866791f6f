"""A real HTTP receiver for webhook tests: a threaded stdlib server on 127.0.0.1 that records
each request (headers and raw body) and answers the statuses it is told, in order (then 200),
after the delays it is told (a slow receiver);
its fixture, and a gateway with a Worker beside it (for the modules that override ``gateway``)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ..helpers import Gateway


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, statuses: list[int] | None = None, delays_s: list[float] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.delays_s = list(delays_s or [])
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    delay_s = receiver.delays_s.pop(0) if receiver.delays_s else 0.0
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    receiver.arrived.notify_all()
                time.sleep(delay_s)  # a receiver slower than the sender's timeout
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, *, timeout_s: float = 30) -> list[Received]:
        """Block until ``count`` requests arrived (woken by each arrival, not polling)."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout_s)
        assert ok, f"{len(self.received)} of {count} deliveries arrived"
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def gateway_with_worker(gateway_factory: Callable[..., Gateway], worker_factory: Callable[..., Any],
                        **overrides: Any) -> Gateway:
    """A gateway with an in-process Worker beside it, on a queue of the test's own, which may deliver
    webhooks to this machine's loopback receivers."""
    overrides.setdefault("webhook_private_networks", "127.0.0.0/8")
    gw = gateway_factory(worker_backend="sqlite", worker_queue=f"t_{secrets.token_hex(5)}", **overrides)
    worker_factory(gw.settings)
    return gw
