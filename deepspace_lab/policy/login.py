"""Failed attempts (logins per client address; credit-code redemptions per user), on the
shared limiter.

After ``max_failures`` failures within ``window_s`` from one subject, further attempts are
refused with 429 (``login_rate_limited``) until the oldest failure leaves the window. The
count is exact under a burst: an attempt takes its place in the window *before* it runs, in
one atomic step, so a subject's failures plus its attempts still running never exceed the
budget — also across gateway processes (new-api #969's read-then-push, on the login path).
A failed attempt keeps its place; a successful login clears the address (a redemption just
gives its place back); any other outcome (bad input, a crash) gives its place back.

With Redis the count is shared by every gateway process (so running more processes does not
multiply the guesses allowed); without it, per process. If Redis cannot be reached the
limiter lets attempts through (logged): the per-account lockout in the database still stops
password guessing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable

from ..errors import RateLimited
from .limiter import Limit, Limiter, LimiterUnavailable

log = logging.getLogger("deepspace_lab.policy")


class FailureLimiter:
    """At most ``max_failures`` failed attempts per subject within ``window_s``; then 429 ``code``."""

    #: A success forgets the subject's failures (else it only gives its own place back).
    clear_on_success = False

    def __init__(self, limiter: Limiter, *, max_failures: int = 10, window_s: float = 60.0, name: str = "login",
                 code: str = "login_rate_limited",
                 message: str = "too many failed logins from your address; wait and retry") -> None:
        self.limiter = limiter
        self.max_failures = max_failures
        self.window_s = window_s
        self.name, self.code, self.message = name, code, message

    def _limit(self, subject: str) -> Limit:
        return Limit(key=f"{self.name}:{subject}", kind="window", limit=self.max_failures, window_s=self.window_s)

    @contextlib.asynccontextmanager
    async def attempt(self, subject: str, *, failures: tuple[type[BaseException], ...]) -> AsyncIterator[None]:
        """Run one attempt of ``subject`` inside the block: refused with :class:`RateLimited`
        before it starts when the budget is full; counted as a failure when the block raises
        one of ``failures``."""
        limit, member = self._limit(subject), uuid.uuid4().hex
        try:
            refusal = await self.limiter.acquire(member, [limit])
        except LimiterUnavailable:
            log.warning("%s limiter unavailable; letting the attempt through", self.name)
            refusal = None
        if refusal is not None:
            raise RateLimited(self.message, code=self.code, retry_after_s=max(refusal.retry_after_s, 1.0))
        try:
            yield
        except failures:
            # Recorded again (idempotent per member): a success may have cleared the subject
            # while this attempt ran, or the limiter was down when it started.
            await self._settle(self.limiter.add(member, limit), "a failed attempt was not counted")
            raise
        except BaseException:
            await self._settle(self.limiter.release(member, [limit], refund=True), "an attempt lapses with its window")
            raise
        if self.clear_on_success:
            await self._settle(self.limiter.clear(limit.key), "a success did not clear the failures")
        else:
            await self._settle(self.limiter.release(member, [limit], refund=True), "an attempt lapses with its window")

    async def _settle(self, call: Awaitable[None], what: str) -> None:
        try:
            await call
        except LimiterUnavailable:
            log.warning("%s limiter unavailable; %s", self.name, what)


class LoginLimiter(FailureLimiter):
    """Failed logins per client address; a successful login clears the address."""

    clear_on_success = True


def redeem_limiter(limiter: Limiter) -> FailureLimiter:
    """Failed credit-code redemptions per user: 10 an hour, then 429 ``redeem_rate_limited``
    (80-bit codes cannot be guessed anyway; this keeps anyone from trying)."""
    return FailureLimiter(limiter, max_failures=10, window_s=3600.0, name="redeem", code="redeem_rate_limited",
                          message="too many failed code redemptions; wait and retry")
