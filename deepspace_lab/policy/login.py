"""Failed logins per client address, on the shared limiter.

After ``max_failures`` failures within ``window_s`` from one address, further attempts are
refused with 429 ``login_rate_limited`` until the oldest failure leaves the window; a
success clears the address. With Redis the count is shared by every gateway process (so
running more processes does not multiply the guesses allowed); without it, per process.
If Redis cannot be reached the limiter lets logins through (logged): the per-account lockout
in the database still stops password guessing.
"""

from __future__ import annotations

import logging
import uuid

from ..errors import RateLimited
from .limiter import Limit, Limiter, LimiterUnavailable

log = logging.getLogger("deepspace_lab.policy")


class LoginLimiter:
    def __init__(self, limiter: Limiter, *, max_failures: int = 10, window_s: float = 60.0) -> None:
        self.limiter = limiter
        self.max_failures = max_failures
        self.window_s = window_s

    def _limit(self, address: str) -> Limit:
        return Limit(key=f"login:{address}", kind="window", limit=self.max_failures, window_s=self.window_s)

    async def check(self, address: str) -> None:
        """Raise :class:`RateLimited` while the address is over its budget."""
        try:
            refusal = await self.limiter.peek([self._limit(address)])
        except LimiterUnavailable:
            log.warning("login limiter unavailable; letting the attempt through")
            return
        if refusal is not None:
            raise RateLimited("too many failed logins from your address; wait and retry",
                              code="login_rate_limited", retry_after_s=max(refusal.retry_after_s, 1.0))

    async def failed(self, address: str) -> None:
        try:
            await self.limiter.add(uuid.uuid4().hex, self._limit(address))
        except LimiterUnavailable:
            log.warning("login limiter unavailable; a failed login was not counted")

    async def succeeded(self, address: str) -> None:
        try:
            await self.limiter.clear(self._limit(address).key)
        except LimiterUnavailable:
            pass
