"""The rate limiter: all or nothing across limits, atomic across processes, leases, corrections.

Most tests run on both backends. "Two processes" are, for Redis, two limiters on two event
loops in two threads sharing one Redis; for memory, two groups of tasks on one limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from deepspace_lab.errors import RateLimited
from deepspace_lab.policy.limiter import (
    Limit,
    Limiter,
    LimiterUnavailable,
    MemoryLimiter,
    RedisLimiter,
    make_limiter,
)
from deepspace_lab.policy.login import FailureLimiter, LoginLimiter

from .redis_proc import RedisServer, free_port

T = TypeVar("T")
MakeLimiter = Callable[[], Limiter]


def member() -> str:
    return uuid.uuid4().hex


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(request: pytest.FixtureRequest, backend: str) -> Iterator[MakeLimiter]:
    """Makes limiters sharing one state: one memory limiter, or Redis under a fresh prefix."""
    if backend == "memory":
        shared = MemoryLimiter()
        yield lambda: shared
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"dsl:test:{uuid.uuid4().hex}:"
    yield lambda: RedisLimiter(url, prefix=prefix)
    client = redis.Redis.from_url(url)
    leftovers = list(client.scan_iter(match=prefix + "*"))
    if leftovers:
        client.delete(*leftovers)
    client.close()


def run(make: MakeLimiter, scenario: Callable[[Limiter], Awaitable[T]]) -> T:
    async def main() -> T:
        limiter = make()
        try:
            return await scenario(limiter)
        finally:
            await limiter.close()

    return asyncio.run(main())


def run_two_processes(backend: str, make: MakeLimiter, side: Callable[[Limiter], Awaitable[T]]) -> list[T]:
    """Runs ``side`` twice at once: on two limiters, loops and threads for Redis."""
    if backend == "memory":

        async def both(limiter: Limiter) -> list[T]:
            return list(await asyncio.gather(side(limiter), side(limiter)))

        return run(make, both)
    barrier = threading.Barrier(2)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def thread(index: int) -> None:
        async def start_together(limiter: Limiter) -> T:
            barrier.wait(timeout=10)
            return await side(limiter)

        try:
            results[index] = run(make, start_together)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    if errors:
        raise errors[0]
    return [results[0], results[1]]


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> float:
    """Polls until ``condition`` holds (a lease or window passing); returns the time taken."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < timeout_s, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def wait_s(seconds: float) -> None:
    """Lets time pass (a window elapsing), polling the clock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)


# --- all or nothing -----------------------------------------------------------------------


def test_refused_by_one_limit_consumes_none_of_the_others(make: MakeLimiter) -> None:
    """LiteLLM #39309: a request refused by its TPM limit must not count in RPM or in flight."""
    rpm = Limit("rpm:key:1", "window", 10)
    conc = Limit("conc:project:1", "concurrency", 5)
    tpm_full = Limit("tpm:org:1", "window", 100, cost=100)
    tpm = Limit("tpm:org:1", "window", 100, cost=10)

    async def scenario(limiter: Limiter) -> None:
        assert await limiter.acquire(member(), [tpm_full]) is None
        refusal = await limiter.acquire(member(), [rpm, conc, tpm])
        assert refusal is not None
        assert (refusal.limit, refusal.used) == (tpm, 100)
        assert await limiter.usage([rpm, conc, tpm]) == [0, 0, 100]
        assert await limiter.acquire(member(), [rpm, conc]) is None
        assert await limiter.usage([rpm, conc, tpm]) == [1, 1, 100]

    run(make, scenario)


def test_empty_limits_pass_without_touching_the_backend() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert asyncio.run(limiter.acquire(member(), [])) is None


def test_acquiring_again_with_the_same_member_counts_it_once(make: MakeLimiter) -> None:
    rpm = Limit("rpm:key:1", "window", 1)
    conc = Limit("conc:key:1", "concurrency", 1)

    async def scenario(limiter: Limiter) -> None:
        request = member()
        assert await limiter.acquire(request, [rpm, conc]) is None
        assert await limiter.acquire(request, [rpm, conc]) is None
        assert await limiter.usage([rpm, conc]) == [1, 1]
        assert await limiter.acquire(member(), [rpm]) is not None

    run(make, scenario)


def test_a_burst_admits_exactly_the_limit(backend: str, make: MakeLimiter) -> None:
    """new-api #969: a non-atomic read-then-push let a limit of 60 admit 200."""
    rpm = Limit("rpm:key:burst", "window", 60)

    async def side(limiter: Limiter) -> int:
        refusals = await asyncio.gather(*(limiter.acquire(member(), [rpm]) for _ in range(100)))
        assert all(r is None or r.used == 60 for r in refusals)
        return sum(r is None for r in refusals)

    assert sum(run_two_processes(backend, make, side)) == 60
    assert run(make, lambda limiter: limiter.usage([rpm])) == [60]


# --- concurrency --------------------------------------------------------------------------


def test_never_more_in_flight_than_the_limit_and_releases_free_slots(backend: str, make: MakeLimiter) -> None:
    conc = Limit("conc:project:1", "concurrency", 5, window_s=30.0)
    lock = threading.Lock()
    seen = {"held": 0, "most": 0, "admitted": 0, "refused": 0}

    async def side(limiter: Limiter) -> None:
        async def worker() -> None:
            for _ in range(10):
                request = member()
                refusal = await limiter.acquire(request, [conc])
                if refusal is not None:
                    assert refusal.used <= 5 and 0 < refusal.retry_after_s <= 1.0
                    with lock:
                        seen["refused"] += 1
                    continue
                with lock:
                    seen["held"] += 1
                    seen["admitted"] += 1
                    seen["most"] = max(seen["most"], seen["held"])
                await asyncio.sleep(0)  # others try while this slot is held
                with lock:
                    seen["held"] -= 1
                await limiter.release(request, [conc])

        await asyncio.gather(*(worker() for _ in range(20)))

    run_two_processes(backend, make, side)
    assert seen["most"] <= 5
    assert seen["refused"] > 0, "the test made no contention"
    assert seen["admitted"] > 5, "released slots were not reused"
    assert run(make, lambda limiter: limiter.usage([conc])) == [0]


def test_a_holder_that_never_releases_frees_its_slot_after_the_lease(make: MakeLimiter) -> None:
    conc = Limit("conc:key:1", "concurrency", 2, window_s=0.3)

    async def scenario(limiter: Limiter) -> None:
        started = time.monotonic()
        for _ in range(2):
            assert await limiter.acquire(member(), [conc]) is None  # holders that die
        late = member()
        assert await limiter.acquire(late, [conc]) is not None

        async def admitted() -> bool:
            return await limiter.acquire(late, [conc]) is None

        await wait_until(admitted)
        assert time.monotonic() - started >= 0.29

        async def only_late_holds() -> bool:  # the second dead holder lapses a moment after the first
            return await limiter.usage([conc]) == [1]

        await wait_until(only_late_holds)

    run(make, scenario)


def test_release_frees_a_slot_at_once(make: MakeLimiter) -> None:
    conc = Limit("conc:key:1", "concurrency", 1)

    async def scenario(limiter: Limiter) -> None:
        first = member()
        assert await limiter.acquire(first, [conc]) is None
        assert await limiter.acquire(member(), [conc]) is not None
        await limiter.release(first, [conc])
        assert await limiter.acquire(member(), [conc]) is None

    run(make, scenario)


def test_renew_keeps_a_lease_alive_and_ignores_members_not_held(make: MakeLimiter) -> None:
    conc = Limit("conc:key:1", "concurrency", 5, window_s=0.2)

    async def scenario(limiter: Limiter) -> None:
        streaming = member()
        started = time.monotonic()
        assert await limiter.acquire(streaming, [conc]) is None
        while time.monotonic() - started < 0.5:  # two and a half leases
            await limiter.renew(streaming, [conc])
            await wait_s(0.05)
        assert await limiter.usage([conc]) == [1]
        await limiter.renew(member(), [conc])
        assert await limiter.usage([conc]) == [1]

        async def lapsed() -> bool:
            return await limiter.usage([conc]) == [0]

        await wait_until(lapsed)

    run(make, scenario)


# --- windows: retry_after, adjust, refund ---------------------------------------------------


def test_retry_after_is_when_enough_of_the_oldest_entries_leave(make: MakeLimiter) -> None:
    window_s, tol = 0.6, 0.02

    def rpm(cost: int) -> Limit:
        return Limit("rpm:key:1", "window", 2, window_s=window_s, cost=cost)

    async def scenario(limiter: Limiter) -> None:
        before_first = time.monotonic()
        assert await limiter.acquire(member(), [rpm(1)]) is None
        after_first = time.monotonic()
        await wait_s(0.2)
        before_second = time.monotonic()
        assert await limiter.acquire(member(), [rpm(1)]) is None
        after_second = time.monotonic()

        asked = time.monotonic()
        one, two, three = [await limiter.acquire(member(), [rpm(cost)]) for cost in (1, 2, 3)]  # refused: free
        answered = time.monotonic()
        assert one is not None and two is not None and three is not None

        # cost 1 waits for the first entry to leave, cost 2 for both, cost 3 never fits
        def left(since: float, until: float) -> float:  # of the window, for an entry made at `since`
            return window_s - (until - since)

        assert left(before_first, answered) - tol <= one.retry_after_s <= left(after_first, asked) + tol
        assert left(before_second, answered) - tol <= two.retry_after_s <= left(after_second, asked) + tol
        assert three.retry_after_s == math.inf and three.used == 2

        async def admitted() -> bool:
            return await limiter.acquire(member(), [rpm(1)]) is None

        await wait_until(admitted)
        assert time.monotonic() - before_first >= window_s - tol

    run(make, scenario)


def test_the_refusal_that_frees_last_is_reported(make: MakeLimiter) -> None:
    conc = Limit("conc:key:1", "concurrency", 1)
    rpm = Limit("rpm:key:1", "window", 1, window_s=30.0)
    too_big = Limit("tpm:key:1", "window", 10, cost=11)

    async def scenario(limiter: Limiter) -> None:
        assert await limiter.acquire(member(), [conc, rpm]) is None
        for limits in ([conc, rpm], [rpm, conc]):
            refusal = await limiter.acquire(member(), limits)
            assert refusal is not None and refusal.limit == rpm and refusal.retry_after_s > 29
        refusal = await limiter.acquire(member(), [conc, too_big, rpm])
        assert refusal is not None and refusal.limit == too_big and refusal.retry_after_s == math.inf
        assert await limiter.usage([conc, rpm, too_big]) == [1, 1, 0]

    run(make, scenario)


def test_adjust_corrects_a_tpm_hold_to_the_real_tokens(make: MakeLimiter) -> None:
    def tpm(cost: int) -> Limit:
        return Limit("tpm:key:1", "window", 100, cost=cost)

    async def scenario(limiter: Limiter) -> None:
        held = member()
        assert await limiter.acquire(held, [tpm(80)]) is None
        refusal = await limiter.acquire(member(), [tpm(30)])
        assert refusal is not None and refusal.used == 80
        await limiter.adjust(held, tpm(80), 20)
        assert await limiter.usage([tpm(1)]) == [20]
        later = member()
        assert await limiter.acquire(later, [tpm(30)]) is None
        assert await limiter.usage([tpm(1)]) == [50]
        await limiter.adjust(held, tpm(1), 0)  # cost 0 removes the entry
        await limiter.adjust(member(), tpm(1), 70)  # not in the window: nothing happens
        assert await limiter.usage([tpm(1)]) == [30]
        await limiter.adjust(held, tpm(1), 70)  # removed before: still nothing
        assert await limiter.usage([tpm(1)]) == [30]

    run(make, scenario)


def test_release_with_refund_gives_the_window_back(make: MakeLimiter) -> None:
    rpm = Limit("rpm:key:1", "window", 10)
    conc = Limit("conc:key:1", "concurrency", 1)

    async def scenario(limiter: Limiter) -> None:
        refunded, kept = member(), member()
        assert await limiter.acquire(refunded, [rpm, conc]) is None
        await limiter.release(refunded, [rpm, conc], refund=True)
        assert await limiter.usage([rpm, conc]) == [0, 0]
        assert await limiter.acquire(kept, [rpm, conc]) is None
        await limiter.release(kept, [rpm, conc])
        assert await limiter.usage([rpm, conc]) == [1, 0]

    run(make, scenario)


def test_release_with_final_costs_frees_slots_and_corrects_tokens_in_one_call(make: MakeLimiter) -> None:
    rpm, tpm = Limit("rpm:key:1", "window", 10), Limit("tpm:key:1", "window", 1000, cost=800)
    conc = Limit("conc:key:1", "concurrency", 1)

    async def scenario(limiter: Limiter) -> None:
        first, second, third = member(), member(), member()
        assert await limiter.acquire(first, [rpm, tpm, conc]) is None
        assert await limiter.acquire(second, [tpm]) is not None  # 800 + 800 > 1000
        await limiter.release(first, [rpm, tpm, conc], final_costs={tpm.key: 150})
        assert await limiter.usage([rpm, tpm, conc]) == [1, 150, 0]  # rpm kept, tokens corrected, slot free
        assert await limiter.acquire(second, [rpm, tpm, conc]) is None
        await limiter.release(second, [rpm, tpm, conc], final_costs={tpm.key: 0})  # nothing used: dropped
        assert await limiter.usage([rpm, tpm, conc]) == [2, 150, 0]
        await limiter.release(third, [tpm], final_costs={tpm.key: 500})  # never admitted: nothing happens
        assert await limiter.usage([tpm]) == [150]

    run(make, scenario)


# --- the login limiter: add, clear ----------------------------------------------------------


def test_failed_logins_are_added_counted_and_cleared(make: MakeLimiter) -> None:
    failures = Limit("login:203.0.113.9", "window", 3)
    other = Limit("login:203.0.113.10", "window", 3)

    async def scenario(limiter: Limiter) -> None:
        assert await limiter.usage([failures]) == [0]
        for _ in range(3):
            await limiter.add(member(), failures)
        await limiter.add(member(), other)
        refusal = await limiter.acquire(member(), [failures])
        assert refusal is not None and refusal.used == 3 and refusal.retry_after_s > 0
        await limiter.add(member(), failures)  # unconditional, even when full
        assert await limiter.usage([failures]) == [4]  # the refused acquire counted nothing
        await limiter.clear(failures.key)
        assert await limiter.usage([failures, other]) == [0, 1]

    run(make, scenario)


class WrongPassword(Exception):
    pass


def test_an_attempt_takes_its_place_first_and_only_failures_keep_it(make: MakeLimiter) -> None:
    """The failure limiter (logins, redemptions) counts an attempt before it runs, so attempts
    running at once never pass the budget; a failure stays counted, any other outcome gives its
    place back, and a successful login clears the subject."""

    async def attempt(failures: FailureLimiter, subject: str, outcome: type[BaseException] | None) -> None:
        async with failures.attempt(subject, failures=(WrongPassword,)):
            await asyncio.sleep(0)  # the others try while this one runs
            if outcome is not None:
                raise outcome

    async def scenario(limiter: Limiter) -> None:
        redeem, subject = FailureLimiter(limiter, max_failures=3, name="redeem"), member()
        done = await asyncio.gather(*(attempt(redeem, subject, WrongPassword) for _ in range(8)),
                                    return_exceptions=True)
        assert sorted(type(e).__name__ for e in done) == ["RateLimited"] * 5 + ["WrongPassword"] * 3
        assert await limiter.usage([Limit(f"redeem:{subject}", "window", 3)]) == [3]

        other = member()
        for outcome in (ValueError, None, ValueError, None):  # neither a failure: nothing kept
            with contextlib.suppress(ValueError):
                await attempt(redeem, other, outcome)
        assert await limiter.usage([Limit(f"redeem:{other}", "window", 3)]) == [0]

        login, address = LoginLimiter(limiter, max_failures=2), member()
        with pytest.raises(WrongPassword):
            await attempt(login, address, WrongPassword)
        await attempt(login, address, None)  # a success clears the address...
        for _ in range(2):  # ...so two more failures fit
            with pytest.raises(WrongPassword):
                await attempt(login, address, WrongPassword)
        with pytest.raises(RateLimited):
            await attempt(login, address, None)

    run(make, scenario)


def test_limits_reject_nonsense() -> None:
    for bad in ({"limit": 0}, {"window_s": 0.0}, {"window_s": math.inf}, {"cost": -1}):
        with pytest.raises(ValueError):
            Limit(**{"key": "k", "kind": "window", "limit": 1, **bad})  # type: ignore[arg-type]


def test_make_limiter_picks_the_backend() -> None:
    assert isinstance(make_limiter(None), MemoryLimiter)
    assert isinstance(make_limiter("redis://127.0.0.1:6379/15"), RedisLimiter)


# --- Redis: event loops, outage, recovery ---------------------------------------------------


def test_one_redis_limiter_serves_several_event_loops(redis_url: str) -> None:
    limiter = RedisLimiter(redis_url, prefix=f"dsl:test:{uuid.uuid4().hex}:")
    rpm = Limit("rpm:key:1", "window", 10, window_s=5.0)
    assert asyncio.run(limiter.acquire(member(), [rpm])) is None
    assert asyncio.run(limiter.acquire(member(), [rpm])) is None

    async def usage_then_close() -> list[int]:
        try:
            return await limiter.usage([rpm])
        finally:
            await limiter.close()

    assert asyncio.run(usage_then_close()) == [2]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_outage_fails_fast_and_the_same_limiter_recovers(private_redis: RedisServer) -> None:
    limiter = RedisLimiter(private_redis.url, prefix=f"dsl:test:{uuid.uuid4().hex}:")
    rpm = Limit("rpm:key:1", "window", 100)
    conc = Limit("conc:key:1", "concurrency", 100)

    async def burst() -> list[Any]:
        return list(await asyncio.gather(*(limiter.acquire(member(), [rpm, conc]) for _ in range(20))))

    async def scenario() -> None:
        assert await burst() == [None] * 20  # twenty pooled connections, all dead after the stop
        private_redis.stop()
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: limiter.acquire(member(), [rpm, conc]),
            lambda: limiter.usage([rpm]),
            lambda: limiter.release(member(), [conc]),
            lambda: limiter.clear(rpm.key),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(LimiterUnavailable) as failure:
                await call()
            assert time.monotonic() - started < 1.0
            assert isinstance(failure.value.__cause__, redis.RedisError | OSError)
        private_redis.start()  # empty: no data, no scripts cached
        assert await burst() == [None] * 20
        assert await limiter.usage([rpm, conc]) == [20, 20]
        await limiter.close()

    asyncio.run(scenario())


def test_a_redis_that_never_answers_fails_fast() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        limiter = RedisLimiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable):
            asyncio.run(limiter.acquire(member(), [Limit("rpm:key:1", "window", 1)]))
        assert time.monotonic() - started < 1.0
