"""Prometheus metrics of one gateway process: requests, errors, latency, tokens, cost, and
open holds (read from the database when scraped).

The audit step feeds :meth:`RequestMetrics.observe` once per request with what it already
knows for the audit row, so counting costs a few label look-ups and no I/O. Each process
counts its own requests in its own registry (several gateway processes: scrape each one, as
Prometheus does with one target per process; sums across them are PromQL's ``sum``).
Labels stay bounded: the route kind, the status code, the error code and catalog model names
(an unknown model asked for is counted under ``""``, never under the caller's text).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class RequestMetrics:
    """The counters of one process, in a registry of their own (two gateways in one test
    process never mix their numbers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._children: dict[tuple[Any, ...], Any] = {}
        r = self.registry
        self.requests = Counter("deepspace_requests", "Requests answered, by route kind and HTTP status",
                                ["kind", "status"], registry=r)
        self.errors = Counter("deepspace_errors", "Requests answered with an error, by route kind and error code",
                              ["kind", "code"], registry=r)
        self.latency = Histogram("deepspace_request_latency_seconds", "Time from arrival to the last byte",
                                 ["kind"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.tokens = Counter("deepspace_tokens", "Tokens billed, by model and direction (prompt|completion)",
                              ["model", "direction"], registry=r)
        self.cost = Counter("deepspace_cost_micros", "Micro-credits captured, by model", ["model"], registry=r)
        self.open_holds = Gauge("deepspace_open_holds", "Holds open now (all gateways; read at scrape time)",
                                registry=r)
        self.holds_past_lease = Gauge("deepspace_holds_past_lease", "Open holds whose lease has lapsed "
                                      "(reconciliation releases them; read at scrape time)", registry=r)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: the library's look-up takes a lock and builds a key
        each time; the children never change once made."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, *, kind: str, status_code: int, error_code: str | None, latency_s: float, model: str | None,
                prompt_tokens: int = 0, completion_tokens: int = 0, cost_micros: int = 0) -> None:
        """Count one answered request."""
        self._child(self.requests, kind, str(status_code)).inc()
        if status_code >= 400:
            self._child(self.errors, kind, error_code or "").inc()
        self._child(self.latency, kind).observe(latency_s)
        if prompt_tokens or completion_tokens:
            self._child(self.tokens, model or "", "prompt").inc(prompt_tokens)
            self._child(self.tokens, model or "", "completion").inc(completion_tokens)
        if cost_micros:
            self._child(self.cost, model or "").inc(cost_micros)

    def render(self, *, open_holds: int, holds_past_lease: int) -> bytes:
        """The text exposition format, with the hold gauges set to the numbers just read."""
        self.open_holds.set(open_holds)
        self.holds_past_lease.set(holds_past_lease)
        return generate_latest(self.registry)
