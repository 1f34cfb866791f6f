"""A small in-process limiter for failed logins per client address.

It slows an address that keeps guessing: after ``max_failures`` failures within ``window_s``
further attempts are refused with ``rate_limited`` until the oldest failure leaves the
window. Per process; the risk-policy issue moves it onto the shared (Redis) limiter.
"""

from __future__ import annotations

import time
from collections import deque

from ..errors import RateLimited


class LoginLimiter:
    def __init__(self, *, max_failures: int = 10, window_s: float = 60.0, max_addresses: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures

    def check(self, address: str) -> None:
        """Raise :class:`RateLimited` while the address is over its budget."""
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) >= self.max_failures:
            retry = failures[0] + self.window_s - now
            raise RateLimited("too many failed logins from your address; wait and retry",
                              code="login_rate_limited", retry_after_s=max(retry, 1.0))

    def failed(self, address: str) -> None:
        if len(self._failures) >= self.max_addresses:
            self._failures.clear()
        self._failures.setdefault(address, deque()).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
