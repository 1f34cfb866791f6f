"""Failed attempts (logins per client address; credit-code redemptions per user), on the
shared limiter.

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


class FailureLimiter:
    """At most ``max_failures`` failed attempts per subject within ``window_s``; then 429 ``code``."""

    def __init__(self, limiter: Limiter, *, max_failures: int = 10, window_s: float = 60.0, name: str = "login",
                 code: str = "login_rate_limited",
                 message: str = "too many failed logins from your address; wait and retry") -> None:
        self.limiter = limiter
        self.max_failures = max_failures
        self.window_s = window_s
        self.name, self.code, self.message = name, code, message

    def _limit(self, address: str) -> Limit:
        return Limit(key=f"{self.name}:{address}", kind="window", limit=self.max_failures, window_s=self.window_s)

    async def check(self, address: str) -> None:
        """Raise :class:`RateLimited` while the subject is over its budget."""
        try:
            refusal = await self.limiter.peek([self._limit(address)])
        except LimiterUnavailable:
            log.warning("%s limiter unavailable; letting the attempt through", self.name)
            return
        if refusal is not None:
            raise RateLimited(self.message, code=self.code, retry_after_s=max(refusal.retry_after_s, 1.0))

    async def failed(self, address: str) -> None:
        try:
            await self.limiter.add(uuid.uuid4().hex, self._limit(address))
        except LimiterUnavailable:
            log.warning("%s limiter unavailable; a failed attempt was not counted", self.name)

    async def succeeded(self, address: str) -> None:
        try:
            await self.limiter.clear(self._limit(address).key)
        except LimiterUnavailable:
            pass


class LoginLimiter(FailureLimiter):
    """Failed logins per client address."""


def redeem_limiter(limiter: Limiter) -> FailureLimiter:
    """Failed credit-code redemptions per user: 10 an hour, then 429 ``redeem_rate_limited``
    (80-bit codes cannot be guessed anyway; this keeps anyone from trying)."""
    return FailureLimiter(limiter, max_failures=10, window_s=3600.0, name="redeem", code="redeem_rate_limited",
                          message="too many failed code redemptions; wait and retry")
