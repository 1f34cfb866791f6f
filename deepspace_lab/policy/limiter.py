"""Rate limits: several counters checked and consumed at once, all or nothing.

A request is checked against every limit that applies to it (requests and tokens per minute
per key, project and org; requests in flight; failed logins per address) in ONE atomic step:
either every limit has room and the request is counted in all of them, or it is counted in
none and the caller gets a :class:`Refusal` naming the limit that will free up last.

Why not the ``limits`` library: it checks each limit separately, so a request refused by one
limit has already consumed another (LiteLLM #39309); it has no concurrency (in-flight)
limits with leases that free themselves when a holder dies; and it cannot correct a cost
afterwards, which tokens-per-minute needs (counted at the hold with an upper bound,
corrected to the real token count at capture with :meth:`Limiter.adjust`).

Two kinds of limit:

- ``window``: a sliding window of ``window_s`` seconds; each member counts ``cost`` units
  from the moment it was recorded until ``window_s`` later. Room means
  ``sum_in_window + cost <= limit``.
- ``concurrency``: slots in flight. Each slot is a lease of ``window_s`` seconds (extended by
  :meth:`Limiter.renew`), so a holder that died without releasing frees its slot.

Members are request ids. Recording a member that is already recorded replaces its cost
and keeps its timestamp, so every operation is idempotent and a call retried after a lost
reply never counts a request twice.

Backends: :class:`MemoryLimiter` (one process; state changes happen between two ``await``
points, so they are atomic on its event loop) and :class:`RedisLimiter` (shared by every
process; each operation is one Lua script, atomic in Redis, on Redis's clock). Redis
Cluster is not supported: one request's counters live in different hash slots.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..errors import ServiceUnavailable

#: The most a concurrency refusal asks a caller to wait: a slot usually frees when a
#: request ends, long before its lease would run out.
CONCURRENCY_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter and the room a request needs in it."""

    key: str  #: unique counter name, e.g. ``rpm:key:<uuid>``, ``conc:project:<uuid>``
    kind: Literal["window", "concurrency"]
    limit: int  #: > 0
    window_s: float = 60.0  #: window length ("window") or lease length ("concurrency")
    cost: int = 1  #: units consumed ("window" only; a concurrency request takes one slot)

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"limit must be > 0, got {self.limit}")
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"window_s must be a positive number, got {self.window_s}")
        if self.cost < 0:
            raise ValueError(f"cost must be >= 0, got {self.cost}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request does not fit: the limit, what is counted in it, and when it could."""

    limit: Limit
    used: int  #: window sum, or slots in flight
    retry_after_s: float  #: ``math.inf`` when the cost exceeds the limit itself


class LimiterUnavailable(ServiceUnavailable):
    """The shared backend could not be reached (Redis down, timeout, LOADING...).

    The cause is chained (``__cause__``); the message is fit for a caller."""

    default_code = "rate_limiter_unavailable"

    def __init__(self, message: str = "rate limiting is temporarily unavailable; retry in a moment") -> None:
        super().__init__(message, retry_after_s=1.0)


class Limiter(Protocol):
    """The contract both backends keep (see the module docstring)."""

    async def acquire(self, member: str, limits: Sequence[Limit]) -> Refusal | None:
        """Record ``member`` in every limit if all have room, else in none and refuse
        (with the refusal that frees last). Empty ``limits``: ``None``, backend untouched."""

    async def adjust(self, member: str, limit: Limit, cost: int) -> None:
        """Change the cost ``member`` counts in a window limit (same timestamp); 0 removes it."""

    async def release(self, member: str, limits: Sequence[Limit], *, refund: bool = False,
                      final_costs: Mapping[str, int] | None = None) -> None:
        """Free ``member``'s slots; with ``refund`` also drop its window entries; else set the
        cost it counts in the window limits named in ``final_costs`` (by key; 0 drops it) —
        the end of a request in one call."""

    async def renew(self, member: str, limits: Sequence[Limit]) -> None:
        """Extend ``member``'s slot leases to now + ``window_s``; no-op when not held."""

    async def usage(self, limits: Sequence[Limit]) -> list[int]:
        """What each limit counts now (window sum or live slots), in order."""

    async def add(self, member: str, limit: Limit) -> None:
        """Record ``member`` with ``limit.cost`` in a window limit, room or not."""

    async def clear(self, key: str) -> None:
        """Forget the counter ``key`` entirely."""

    async def close(self) -> None:
        """Release connections (the limiter stays usable: it reconnects on next use)."""


def make_limiter(redis_url: str | None) -> Limiter:
    """A :class:`RedisLimiter` when a URL is given, else a :class:`MemoryLimiter`."""
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()


def _cost(cost: int) -> int:
    if cost < 0:
        raise ValueError(f"cost must be >= 0, got {cost}")
    return cost


def _need_member(member: str) -> None:
    if not member:
        raise ValueError("member must be a non-empty request id")


def _need_window(limit: Limit) -> None:
    if limit.kind != "window":
        raise ValueError(f"{limit.key}: only window limits take costs")


def _worst(refusals: Sequence[Refusal | None]) -> Refusal | None:
    found = [r for r in refusals if r is not None]
    return max(found, key=lambda r: r.retry_after_s) if found else None


class _Window:
    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        #: member -> (time recorded, cost), oldest first: times are monotonic and an
        #: update keeps its member's position.
        self.entries: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self.total = 0


class MemoryLimiter:
    """The limiter for one process. Empty counters are dropped; expired entries go on access."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, dict[str, float]] = {}  # key -> member -> lease end

    def _window(self, limit: Limit, now: float) -> _Window | None:
        window = self._windows.get(limit.key)
        if window is None:
            return None
        cutoff, entries = now - limit.window_s, window.entries
        while entries:
            member, (at, cost) = next(iter(entries.items()))
            if at > cutoff:
                return window
            del entries[member]
            window.total -= cost
        del self._windows[limit.key]
        return None

    def _held(self, limit: Limit, now: float) -> dict[str, float] | None:
        slots = self._slots.get(limit.key)
        if slots is None:
            return None
        for member in [m for m, until in slots.items() if until <= now]:
            del slots[member]
        if not slots:
            del self._slots[limit.key]
            return None
        return slots

    def _refusal(self, member: str, limit: Limit, now: float) -> Refusal | None:
        if limit.kind == "concurrency":
            slots = self._held(limit, now) or {}
            if len(slots) - (member in slots) + 1 <= limit.limit:
                return None
            return Refusal(limit, len(slots), min(CONCURRENCY_RETRY_S, min(slots.values()) - now))
        window = self._window(limit, now) or _Window()
        mine = window.entries[member][1] if member in window.entries else 0
        need = window.total - mine + limit.cost - limit.limit  # units that must leave first
        if need <= 0:
            return None
        if limit.cost > limit.limit:
            return Refusal(limit, window.total, math.inf)
        freed, retry_after_s = 0, limit.window_s
        for other, (at, cost) in window.entries.items():
            freed += cost if other != member else 0
            if freed >= need:
                retry_after_s = at + limit.window_s - now
                break
        return Refusal(limit, window.total, retry_after_s)

    def _record(self, member: str, limit: Limit, now: float) -> None:
        if limit.kind == "concurrency":
            self._slots.setdefault(limit.key, {})[member] = now + limit.window_s
            return
        window = self._windows.setdefault(limit.key, _Window())
        at, old = window.entries.get(member, (now, 0))
        window.entries[member] = (at, limit.cost)
        window.total += limit.cost - old

    async def acquire(self, member: str, limits: Sequence[Limit]) -> Refusal | None:
        if not limits:
            return None
        _need_member(member)
        now = time.monotonic()
        refusal = _worst([self._refusal(member, limit, now) for limit in limits])
        if refusal is None:
            for limit in limits:
                self._record(member, limit, now)
        return refusal

    def _set_cost(self, member: str, limit: Limit, cost: int, now: float) -> None:
        window = self._window(limit, now)
        if window is None or member not in window.entries:
            return
        at, old = window.entries[member]
        window.total += cost - old
        if cost:
            window.entries[member] = (at, cost)
            return
        del window.entries[member]
        if not window.entries:
            del self._windows[limit.key]

    async def adjust(self, member: str, limit: Limit, cost: int) -> None:
        _need_window(limit)
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        self._set_cost(member, limit, cost, time.monotonic())

    async def release(self, member: str, limits: Sequence[Limit], *, refund: bool = False,
                      final_costs: Mapping[str, int] | None = None) -> None:
        now = time.monotonic()
        for limit in limits:
            if limit.kind == "concurrency":
                slots = self._slots.get(limit.key)
                if slots is not None and slots.pop(member, None) is not None and not slots:
                    del self._slots[limit.key]
            elif refund:
                self._set_cost(member, limit, 0, now)
            elif final_costs and limit.key in final_costs:
                self._set_cost(member, limit, _cost(final_costs[limit.key]), now)

    async def renew(self, member: str, limits: Sequence[Limit]) -> None:
        now = time.monotonic()
        for limit in limits:
            slots = self._held(limit, now) if limit.kind == "concurrency" else None
            if slots is not None and member in slots:
                slots[member] = now + limit.window_s

    async def usage(self, limits: Sequence[Limit]) -> list[int]:
        now = time.monotonic()
        counts = []
        for limit in limits:
            if limit.kind == "concurrency":
                counts.append(len(self._held(limit, now) or ()))
            else:
                window = self._window(limit, now)
                counts.append(window.total if window else 0)
        return counts

    async def add(self, member: str, limit: Limit) -> None:
        _need_member(member)
        _need_window(limit)
        now = time.monotonic()
        self._window(limit, now)
        self._record(member, limit, now)

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        self._slots.pop(key, None)

    async def close(self) -> None:
        return None


# --- Redis -----------------------------------------------------------------------------
# A window limit is three keys: z (ZSET member -> time in ms), h (HASH member -> cost) and
# s (the sum of h, kept exact as entries expire, so a check costs O(expired entries)).
# A concurrency limit is one ZSET member -> lease end in ms. Times are Redis's (TIME), in
# whole milliseconds so that they survive Lua's 14-digit number formatting. Every key
# touched lives at least twice its window or lease longer, so idle counters vanish.
# ARGV carries 4 fields per limit (kind w|c, limit, window ms, cost); KEYS 3 or 1 per limit.
_LUA_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function parse(from)
  local out, k = {}, 1
  for a = from, #ARGV, 4 do
    local l = {kind = ARGV[a], limit = tonumber(ARGV[a + 1]), window = tonumber(ARGV[a + 2]),
               cost = tonumber(ARGV[a + 3]), z = KEYS[k]}
    if l.kind == 'w' then l.h, l.s, k = KEYS[k + 1], KEYS[k + 2], k + 3 else k = k + 1 end
    out[#out + 1] = l
  end
  return out
end

-- never shortens a TTL: another member may hold a longer lease in the same key
local function keep(key, ttl)
  local left = redis.call('PTTL', key)
  if left ~= -2 and left < ttl then redis.call('PEXPIRE', key, ttl) end
end

local function cost_of(l, member)
  return tonumber(redis.call('HGET', l.h, member) or 0)
end

-- drops window entries older than the window, keeping the sum exact; returns the sum
local function expire(l, now)
  local cutoff = now - l.window
  while true do
    local old = redis.call('ZRANGEBYSCORE', l.z, '-inf', cutoff, 'LIMIT', 0, 256)
    if #old == 0 then break end
    local freed = 0
    for _, m in ipairs(old) do freed = freed + cost_of(l, m) end
    redis.call('ZREM', l.z, unpack(old))
    redis.call('HDEL', l.h, unpack(old))
    redis.call('DECRBY', l.s, freed)
    if #old < 256 then break end
  end
  if redis.call('EXISTS', l.z) == 0 then
    redis.call('DEL', l.h, l.s)
    return 0
  end
  return tonumber(redis.call('GET', l.s) or 0)
end

local function live_slots(l, now)
  redis.call('ZREMRANGEBYSCORE', l.z, '-inf', now)
  return redis.call('ZCARD', l.z)
end

-- returns what l counts and, when member does not fit, the ms until it could (-1: never)
local function check(l, member, now)
  if l.kind == 'c' then
    local used = live_slots(l, now)
    local mine = redis.call('ZSCORE', l.z, member) and 1 or 0
    if used - mine + 1 <= l.limit then return used, nil end
    local first = redis.call('ZRANGE', l.z, 0, 0, 'WITHSCORES')
    return used, math.min(CONC_RETRY_MS, tonumber(first[2]) - now)
  end
  local used = expire(l, now)
  local need = used - cost_of(l, member) + l.cost - l.limit
  if need <= 0 then return used, nil end
  if l.cost > l.limit then return used, -1 end
  local freed, start = 0, 0
  while true do
    local page = redis.call('ZRANGE', l.z, start, start + 255, 'WITHSCORES')
    if #page == 0 then return used, l.window end
    for i = 1, #page, 2 do
      if page[i] ~= member then
        freed = freed + cost_of(l, page[i])
        if freed >= need then return used, tonumber(page[i + 1]) + l.window - now end
      end
    end
    start = start + 256
  end
end

local function record(l, member, now)
  if l.kind == 'c' then
    redis.call('ZADD', l.z, now + l.window, member)
    keep(l.z, 2 * l.window)
    return
  end
  local old = redis.call('HGET', l.h, member)
  if not old then redis.call('ZADD', l.z, now, member) end
  redis.call('HSET', l.h, member, l.cost)
  redis.call('INCRBY', l.s, l.cost - tonumber(old or 0))
  for _, key in ipairs({l.z, l.h, l.s}) do keep(key, 2 * l.window) end
end

local function forget(l, member)
  local old = redis.call('HGET', l.h, member)
  if not old then return end
  redis.call('ZREM', l.z, member)
  redis.call('HDEL', l.h, member)
  redis.call('DECRBY', l.s, tonumber(old))
  if redis.call('EXISTS', l.z) == 0 then redis.call('DEL', l.h, l.s) end
end
""".replace("CONC_RETRY_MS", str(round(CONCURRENCY_RETRY_S * 1000)))

_LUA = {
    # ARGV: member, limits. Returns {0} or {index, used, retry ms (-1 never)}.
    "acquire": """
local member, now = ARGV[1], now_ms()
local limits = parse(2)
local worst, worst_used, worst_retry = 0, 0, 0
for i, l in ipairs(limits) do
  local used, retry = check(l, member, now)
  if retry and (worst == 0 or (worst_retry ~= -1 and (retry == -1 or retry > worst_retry))) then
    worst, worst_used, worst_retry = i, used, retry
  end
end
if worst > 0 then return {worst, worst_used, worst_retry} end
for _, l in ipairs(limits) do record(l, member, now) end
return {0, 0, 0}
""",
    # ARGV: member, cost, one window limit
    "adjust": """
local member, cost, now = ARGV[1], tonumber(ARGV[2]), now_ms()
local l = parse(3)[1]
expire(l, now)
local old = redis.call('HGET', l.h, member)
if not old then return 0 end
if cost == 0 then forget(l, member) return 0 end
redis.call('HSET', l.h, member, cost)
redis.call('INCRBY', l.s, cost - tonumber(old))
return 0
""",
    # ARGV: member, mode ('0' keep, '1' refund, '2' set each window limit's cost), limits
    "release": """
local member, mode = ARGV[1], ARGV[2]
for _, l in ipairs(parse(3)) do
  if l.kind == 'c' then redis.call('ZREM', l.z, member)
  elseif mode == '1' or (mode == '2' and l.cost == 0) then forget(l, member)
  elseif mode == '2' then
    local old = redis.call('HGET', l.h, member)
    if old then
      redis.call('HSET', l.h, member, l.cost)
      redis.call('INCRBY', l.s, l.cost - tonumber(old))
    end
  end
end
return 0
""",
    # ARGV: member, concurrency limits
    "renew": """
local member, now = ARGV[1], now_ms()
for _, l in ipairs(parse(2)) do
  live_slots(l, now)
  if redis.call('ZSCORE', l.z, member) then
    redis.call('ZADD', l.z, now + l.window, member)
    keep(l.z, 2 * l.window)
  end
end
return 0
""",
    # ARGV: limits. Returns what each counts.
    "usage": """
local now, out = now_ms(), {}
for i, l in ipairs(parse(1)) do
  if l.kind == 'c' then out[i] = live_slots(l, now) else out[i] = expire(l, now) end
end
return out
""",
    # ARGV: member, one window limit
    "add": """
local now = now_ms()
local l = parse(2)[1]
expire(l, now)
record(l, ARGV[1], now)
return 0
""",
}


@dataclass(slots=True)
class _Connection:
    loop: asyncio.AbstractEventLoop
    client: aioredis.Redis
    scripts: dict[str, AsyncScript]


class RedisLimiter:
    """The limiter shared by every process on one Redis (a single server or a primary).

    Every call is one script run, bounded by ``timeout_s`` per network step and about twice
    that in all; any failure to get an answer raises :class:`LimiterUnavailable`, and the
    next call after Redis is back works (connections are re-made, scripts re-loaded). One
    client at a time, made on first use for the running event loop; a use on another loop
    makes a new one for that loop and drops the old one unclosed (``close`` it there first).
    """

    #: Connections per client; further concurrent calls wait (at most timeout_s) for one.
    max_connections = 64

    def __init__(self, url: str, *, prefix: str = "dsl:rl:", timeout_s: float = 0.5) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._connection: _Connection | None = None

    def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._connection is not None and self._connection.loop is loop:
            return self._connection
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self.max_connections,
            timeout=self._timeout_s,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            # One immediate retry on a dropped connection (a pooled socket Redis closed on
            # restart) - safe because every script is idempotent. Timeouts are not retried.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        client = aioredis.Redis.from_pool(pool)
        scripts = {name: client.register_script(_LUA_PRELUDE + body) for name, body in _LUA.items()}
        self._connection = _Connection(loop, client, scripts)
        return self._connection

    async def _run(self, script: str, keys: list[str], args: list[str | int]) -> Any:
        connection = self._connect()
        try:
            async with asyncio.timeout(2 * self._timeout_s):
                return await connection.scripts[script](keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimiterUnavailable() from exc

    def _spec(self, limits: Sequence[Limit]) -> tuple[list[str], list[str | int]]:
        keys: list[str] = []
        args: list[str | int] = []
        for limit in limits:
            if limit.kind == "window":
                base = f"{self._prefix}w:{limit.key}"
                keys += [f"{base}:z", f"{base}:h", f"{base}:s"]
            else:
                keys.append(f"{self._prefix}c:{limit.key}")
            window_ms = max(1, round(limit.window_s * 1000))
            args += ["w" if limit.kind == "window" else "c", limit.limit, window_ms, limit.cost]
        return keys, args

    async def acquire(self, member: str, limits: Sequence[Limit]) -> Refusal | None:
        if not limits:
            return None
        _need_member(member)
        keys, args = self._spec(limits)
        index, used, retry_ms = await self._run("acquire", keys, [member, *args])
        if index == 0:
            return None
        retry_after_s = math.inf if retry_ms < 0 else retry_ms / 1000
        return Refusal(limits[index - 1], int(used), retry_after_s)

    async def adjust(self, member: str, limit: Limit, cost: int) -> None:
        _need_window(limit)
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        keys, args = self._spec([limit])
        await self._run("adjust", keys, [member, cost, *args])

    async def release(self, member: str, limits: Sequence[Limit], *, refund: bool = False,
                      final_costs: Mapping[str, int] | None = None) -> None:
        if refund:
            mode, chosen = 1, list(limits)
        else:
            mode, chosen = (2 if final_costs else 0), []
            for limit in limits:
                if limit.kind == "concurrency":
                    chosen.append(limit)
                elif final_costs and limit.key in final_costs:
                    chosen.append(dataclasses.replace(limit, cost=_cost(final_costs[limit.key])))
        if chosen:
            keys, args = self._spec(chosen)
            await self._run("release", keys, [member, mode, *args])

    async def renew(self, member: str, limits: Sequence[Limit]) -> None:
        limits = [limit for limit in limits if limit.kind == "concurrency"]
        if limits:
            keys, args = self._spec(limits)
            await self._run("renew", keys, [member, *args])

    async def usage(self, limits: Sequence[Limit]) -> list[int]:
        if not limits:
            return []
        keys, args = self._spec(limits)
        return [int(count) for count in await self._run("usage", keys, args)]

    async def add(self, member: str, limit: Limit) -> None:
        _need_member(member)
        _need_window(limit)
        keys, args = self._spec([limit])
        await self._run("add", keys, [member, *args])

    async def clear(self, key: str) -> None:
        base = f"{self._prefix}w:{key}"
        connection = self._connect()
        try:
            async with asyncio.timeout(2 * self._timeout_s):
                await connection.client.delete(f"{base}:z", f"{base}:h", f"{base}:s", f"{self._prefix}c:{key}")
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimiterUnavailable() from exc

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.loop is asyncio.get_running_loop():
            await connection.client.aclose()
