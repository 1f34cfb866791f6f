"""Idempotency keys in storage: claim → complete → replay, reuse, leases, expiry, purge, and
concurrent claimants on separate connections (the database is the only referee)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest

from deepspace_lab.auth import create_org, create_user
from deepspace_lab.db import make_async_engine, make_sessionmaker, utcnow
from deepspace_lab.idempotency import (
    DEFAULT_LEASE_S,
    DEFAULT_TTL_S,
    Claim,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    IdempotentResponseNotStoredError,
    InvalidIdempotencyKeyError,
    Replay,
    StoredResponse,
    abandon_key,
    claim_key,
    complete_key,
    lookup_key,
    parse_key,
    purge_expired_keys,
    renew_key,
    request_sha256,
)

T = TypeVar("T")
TASKS = 32
BODY = request_sha256(b'{"model": "m", "messages": []}', "prj_1", "")
OTHER = request_sha256(b'{"model": "m", "messages": [1]}', "prj_1", "")
RESPONSE = StoredResponse(200, "application/json", b'{"id": "x"}', {"X-DeepSpace-Cost-Micros": "42"})


class Keys:
    """The key functions on the backend's database, on a private loop."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = make_async_engine(url, pool_size=TASKS + 2, max_overflow=0) if url.startswith("postgresql") \
            else make_async_engine(url)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def new_org(self) -> str:
        async def create() -> str:
            async with make_sessionmaker(self.engine)() as session:
                user = await create_user(session, email=f"{secrets.token_hex(6)}@example.org")
                org = await create_org(session, name="org", owner=user)
                await session.commit()
                return org.id

        return self.run(create())

    def claim(self, org_id: str, key: str = "k1", sha: str = BODY, **kwargs: Any) -> Claim | Replay:
        return self.run(claim_key(self.engine, org_id=org_id, key=key, request_sha256=sha, **kwargs))

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()


@pytest.fixture
def keys(db_url: str) -> Iterator[Keys]:
    harness = Keys(db_url)
    yield harness
    harness.close()


@pytest.fixture
def org(keys: Keys) -> str:
    return keys.new_org()


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


# -- the header --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["k", "8e03978e-40d5-43e8-bc93-6894a57f9324", "a b", "x" * 255, '"quoted"'])
def test_printable_keys_up_to_255_characters_are_accepted(value: str) -> None:
    assert parse_key(value) == value.strip('"')


@pytest.mark.parametrize("value", ["", '""', "x" * 256, "tab\there", "new\nline", "é", " lead", "trail ", "\x00"])
def test_other_keys_are_a_clear_400(value: str) -> None:
    with pytest.raises(InvalidIdempotencyKeyError) as caught:
        parse_key(value)
    assert caught.value.http_status == 400 and caught.value.code == "invalid_idempotency_key"


def test_the_fingerprint_covers_body_project_and_conversation() -> None:
    body = b'{"a": 1}'
    assert request_sha256(body, "p1", "") == request_sha256(body, "p1", "")
    assert len({request_sha256(body, "p1", ""), request_sha256(body, "p2", ""), request_sha256(body, "p1", "c1"),
                request_sha256(b'{"a":1}', "p1", "")}) == 4


# -- one claimant at a time ----------------------------------------------------------------------

def test_a_new_key_is_claimed_and_replayed_once_completed(keys: Keys, org: str) -> None:
    claim = keys.claim(org, request_id="req_1", trace_id="t" * 32)
    assert isinstance(claim, Claim)
    with pytest.raises(IdempotencyInProgressError) as caught:
        keys.claim(org)
    assert caught.value.http_status == 409 and caught.value.retryable and caught.value.retry_after_s == 1.0
    assert keys.run(complete_key(keys.engine, claim, response=RESPONSE)) is True
    for _ in range(2):
        replay = keys.claim(org, request_id="req_2")
        assert isinstance(replay, Replay)
        assert replay.response == RESPONSE and replay.request_id == "req_1" and replay.trace_id == "t" * 32


def test_the_same_key_for_another_request_is_refused_422_running_or_done(keys: Keys, org: str) -> None:
    claim = keys.claim(org)
    assert isinstance(claim, Claim)
    for _ in range(2):
        with pytest.raises(IdempotencyKeyReusedError) as caught:
            keys.claim(org, sha=OTHER)
        assert caught.value.http_status == 422 and not caught.value.retryable
        keys.run(complete_key(keys.engine, claim, response=RESPONSE))


def test_keys_are_scoped_to_the_org(keys: Keys, org: str) -> None:
    assert isinstance(keys.claim(org), Claim)
    assert isinstance(keys.claim(keys.new_org()), Claim)


def test_an_abandoned_key_is_free_again_even_for_another_request(keys: Keys, org: str) -> None:
    claim = keys.claim(org)
    assert isinstance(claim, Claim)
    assert keys.run(abandon_key(keys.engine, claim)) is True
    assert keys.run(lookup_key(keys.engine, org_id=org, key="k1")) is None
    again = keys.claim(org, sha=OTHER)
    assert isinstance(again, Claim) and again.token != claim.token
    assert keys.run(abandon_key(keys.engine, claim)) is False  # the old claim is gone for good


def test_a_lapsed_lease_is_taken_over_and_the_old_claim_can_no_longer_write(keys: Keys, org: str) -> None:
    first = keys.claim(org)
    assert isinstance(first, Claim)
    with pytest.raises(IdempotencyKeyReusedError):  # still bound to its request, lease or not
        keys.claim(org, sha=OTHER, now=later(DEFAULT_LEASE_S + 1))
    second = keys.claim(org, now=later(DEFAULT_LEASE_S + 1))
    assert isinstance(second, Claim)
    assert keys.run(complete_key(keys.engine, first, response=RESPONSE)) is False
    assert keys.run(renew_key(keys.engine, first)) is False
    assert keys.run(abandon_key(keys.engine, first)) is False
    assert keys.run(complete_key(keys.engine, second, response=RESPONSE)) is True


def test_a_renewed_lease_is_not_taken_over(keys: Keys, org: str) -> None:
    claim = keys.claim(org)
    assert isinstance(claim, Claim)
    assert keys.run(renew_key(keys.engine, claim, now=later(DEFAULT_LEASE_S - 1))) is True
    with pytest.raises(IdempotencyInProgressError):
        keys.claim(org, now=later(DEFAULT_LEASE_S + 1))


def test_an_expired_key_counts_as_absent(keys: Keys, org: str) -> None:
    claim = keys.claim(org)
    assert isinstance(claim, Claim)
    keys.run(complete_key(keys.engine, claim, response=RESPONSE))
    after = later(DEFAULT_TTL_S + 1)
    assert keys.run(lookup_key(keys.engine, org_id=org, key="k1", now=after)) is None
    fresh = keys.claim(org, sha=OTHER, now=after)
    assert isinstance(fresh, Claim)
    view = keys.run(lookup_key(keys.engine, org_id=org, key="k1", now=after))
    assert view is not None and view.state == "in_progress" and view.response is None
    assert view.request_sha256 == OTHER and view.expires_at > after


def test_a_response_too_big_to_keep_is_not_run_again(keys: Keys, org: str) -> None:
    claim = keys.claim(org, request_id="req_big")
    assert isinstance(claim, Claim)
    keys.run(complete_key(keys.engine, claim, response=StoredResponse(200, "application/json", None)))
    with pytest.raises(IdempotentResponseNotStoredError) as caught:
        keys.claim(org)
    assert caught.value.http_status == 409 and not caught.value.retryable and "req_big" in caught.value.message


def test_sse_bodies_and_headers_come_back_byte_for_byte(keys: Keys, org: str) -> None:
    stream = b"".join(b'data: {"n": %d}\n\n' % i for i in range(500)) + b"data: [DONE]\n\n" + bytes(range(256))
    response = StoredResponse(200, "text/event-stream; charset=utf-8", stream, {"X-A": "1", "X-B": "two"})
    claim = keys.claim(org)
    assert isinstance(claim, Claim)
    keys.run(complete_key(keys.engine, claim, response=response))
    replay = keys.claim(org)
    assert isinstance(replay, Replay) and replay.response == response


def test_purge_deletes_expired_keys_only(keys: Keys, org: str) -> None:
    for key in ("old1", "old2", "new"):
        claim = keys.claim(org, key=key, ttl_s=1 if key.startswith("old") else DEFAULT_TTL_S)
        assert isinstance(claim, Claim)
    assert keys.run(purge_expired_keys(keys.engine, now=later(2), limit=1)) == 1
    assert keys.run(purge_expired_keys(keys.engine, now=later(2))) == 1
    assert keys.run(purge_expired_keys(keys.engine, now=later(2))) == 0
    assert keys.run(lookup_key(keys.engine, org_id=org, key="new")) is not None


# -- concurrent claimants ------------------------------------------------------------------------

async def _race(keys: Keys, org: str, *, n: int = TASKS, **kwargs: Any) -> list[Any]:
    calls = [claim_key(keys.engine, org_id=org, key="k1", request_sha256=BODY, request_id=f"req_{i}", **kwargs)
             for i in range(n)]
    return await asyncio.gather(*calls, return_exceptions=True)


def _kinds(results: list[Any]) -> Counter[str]:
    return Counter(type(r).__name__ for r in results)


def test_concurrent_claims_of_a_new_key_give_exactly_one_claim(keys: Keys, org: str) -> None:
    results = keys.run(_race(keys, org))
    assert _kinds(results) == {"Claim": 1, "IdempotencyInProgressError": TASKS - 1}, results


def test_concurrent_claims_of_a_lapsed_lease_give_exactly_one_takeover(keys: Keys, org: str) -> None:
    first = keys.claim(org)
    assert isinstance(first, Claim)
    results = keys.run(_race(keys, org, now=later(DEFAULT_LEASE_S + 1)))
    assert _kinds(results) == {"Claim": 1, "IdempotencyInProgressError": TASKS - 1}, results


def test_concurrent_claims_of_an_expired_key_give_exactly_one_claim(keys: Keys, org: str) -> None:
    first = keys.claim(org)
    assert isinstance(first, Claim)
    keys.run(complete_key(keys.engine, first, response=RESPONSE))
    results = keys.run(_race(keys, org, now=later(DEFAULT_TTL_S + 1)))
    assert _kinds(results) == {"Claim": 1, "IdempotencyInProgressError": TASKS - 1}, results


def test_concurrent_retries_after_completion_all_replay(keys: Keys, org: str) -> None:
    first = keys.claim(org)
    assert isinstance(first, Claim)
    keys.run(complete_key(keys.engine, first, response=RESPONSE))
    results = keys.run(_race(keys, org))
    assert _kinds(results) == {"Replay": TASKS} and all(r.response == RESPONSE for r in results)


def test_claims_racing_an_abandon_and_a_purge_never_give_two_claims(keys: Keys, org: str) -> None:
    """The holder gives up while retries arrive and a purge runs: at most one claim at a time."""
    first = keys.claim(org)
    assert isinstance(first, Claim)

    async def scenario() -> list[Any]:
        return await asyncio.gather(abandon_key(keys.engine, first), purge_expired_keys(keys.engine),
                                    *[claim_key(keys.engine, org_id=org, key="k1", request_sha256=BODY)
                                      for _ in range(TASKS - 2)], return_exceptions=True)

    results = keys.run(scenario())
    assert results[0] is True and results[1] == 0
    assert _kinds(results[2:])["Claim"] <= 1
    assert set(_kinds(results[2:])) <= {"Claim", "IdempotencyInProgressError"}
    if not any(isinstance(r, Claim) for r in results[2:]):
        assert isinstance(keys.claim(org), Claim)  # every racer came before the abandon: the key is free
    with pytest.raises(IdempotencyInProgressError):  # and now it has exactly one holder
        keys.claim(org)
