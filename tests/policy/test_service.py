"""The policy service on SQLite and PostgreSQL: versions and history, the epoch, validation
with stable codes (and nothing written when refused), the one-in-force index, the snapshot
and the per-process cache that reloads when another process changes a policy."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from deepspace_lab.auth import create_api_key, create_org, create_project, create_user
from deepspace_lab.bootstrap import seed_simulated_models
from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine
from deepspace_lab.errors import DeepSpaceError
from deepspace_lab.policy.cache import PolicyCache
from deepspace_lab.policy.rules import IPRules, PolicySnapshot, RateSpec, parse_networks
from deepspace_lab.policy.service import (
    MAX_RATE,
    InvalidPolicyError,
    PolicyNotFoundError,
    PolicyView,
    delete_policy,
    list_policies,
    load_snapshot,
    read_epoch,
    set_policy,
)

from ..helpers import TEST_SECRET

T = TypeVar("T")
MODEL = "deepspace-simulated-chat"
OTHER_MODEL = "deepspace-simulated-long"


class Org:
    def __init__(self, org_id: str, project_id: str, key_id: str) -> None:
        self.id, self.project, self.key = org_id, project_id, key_id


class Policies:
    """Policy operations on the backend's database, each in its own session (committed), on a
    private event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.engine = make_async_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.db = make_sync_engine(url)
        self.a = self.run(self._new_org("a"))
        self.b = self.run(self._new_org("b"))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _new_org(self, name: str) -> Org:
        async with self.sessions() as session:
            user = await create_user(session, email=f"{name}@example.org")
            org = await create_org(session, name=f"org {name}", owner=user)
            project = await create_project(session, org_id=org.id, name=f"project {name}")
            key, _ = await create_api_key(session, secret_key=TEST_SECRET, org_id=org.id, project_id=project.id,
                                          user_id=user.id)
            await session.commit()
            return Org(org.id, project.id, key.id)

    def set(self, *, actor: str = "test:ops", **kwargs: Any) -> tuple[PolicyView, PolicyView | None]:
        async def op(session: AsyncSession) -> tuple[PolicyView, PolicyView | None]:
            result = await set_policy(session, actor=actor, **kwargs)
            await session.commit()
            return result

        return self._in_session(op)

    def delete(self, policy_id: int, *, org_id: str | None = None, actor: str = "test:ops") -> PolicyView:
        async def op(session: AsyncSession) -> PolicyView:
            gone = await delete_policy(session, policy_id=policy_id, org_id=org_id, actor=actor)
            await session.commit()
            return gone

        return self._in_session(op)

    def listing(self, **kwargs: Any) -> list[PolicyView]:
        async def op(session: AsyncSession) -> list[PolicyView]:
            return await list_policies(session, **kwargs)

        return self._in_session(op)

    def refused(self, op: Callable[[AsyncSession], Coroutine[Any, Any, Any]]) -> DeepSpaceError:
        """Run ``op``, which must raise; the session is then committed anyway (a careless
        caller): a refusal must have written nothing, so nothing changes."""
        before = (self.table(), self.epoch())

        async def run(session: AsyncSession) -> DeepSpaceError:
            try:
                await op(session)
            except DeepSpaceError as exc:
                await session.commit()
                return exc
            raise AssertionError("not refused")

        error = self._in_session(run)
        assert (self.table(), self.epoch()) == before, "a refused change wrote something"
        return error

    def refuse_set(self, **kwargs: Any) -> DeepSpaceError:
        return self.refused(lambda session: set_policy(session, actor="test:ops", **kwargs))

    def _in_session(self, op: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
        async def run() -> T:
            async with self.sessions() as session:
                return await op(session)

        return self.run(run())

    def epoch(self) -> int:
        async def read() -> int:
            async with self.engine.connect() as conn:
                return await read_epoch(conn)

        return self.run(read())

    def snapshot(self) -> PolicySnapshot:
        async def read() -> PolicySnapshot:
            async with self.engine.connect() as conn:
                return await load_snapshot(conn)

        return self.run(read())

    def table(self) -> list[dict[str, Any]]:
        """Every policy row, as stored, oldest first (read apart from the service)."""
        with self.db.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text(
                "SELECT id, kind, org_id, scope, scope_id, subject, spec, actor, ended_at, ended_by "
                "FROM policies ORDER BY id"))]
        for row in rows:  # JSON comes back as text from SQLite through a raw query
            if isinstance(row["spec"], str):
                row["spec"] = json.loads(row["spec"])
        return rows

    def in_force(self, **where: Any) -> list[int]:
        """The ids of the rows in force (``ended_at`` null) matching ``where``."""
        return [r["id"] for r in self.table() if r["ended_at"] is None
                and all(r[k] == v for k, v in where.items())]

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()
        self.db.dispose()


@pytest.fixture
def pol(db_url: str, settings_factory: Callable[..., Settings]) -> Iterator[Policies]:
    asyncio.run(seed_simulated_models(settings_factory()))
    harness = Policies(db_url)
    yield harness
    harness.close()


def ids(views: list[PolicyView]) -> list[int]:
    return [v.id for v in views]


# -- versions, history, epoch ------------------------------------------------------------------


def test_set_replace_no_op_delete_with_history_and_epoch(pol: Policies) -> None:
    org = pol.a.id
    assert pol.epoch() == 0 and pol.table() == [] and pol.listing(history=True) == []

    first, before = pol.set(kind="rate_limit", scope="org", scope_id=org, spec={"rpm": 60}, actor="cli:alice")
    assert before is None
    assert (first.kind, first.org_id, first.scope, first.scope_id, first.subject) == ("rate_limit", org, "org", org, "")
    assert first.spec == {"rpm": 60, "tpm": 0, "concurrency": 0}  # every field, 0 = no limit
    assert (first.actor, first.ended_at, first.ended_by) == ("cli:alice", None, None)
    assert first.to_dict()["in_force"] is True and first.to_dict()["subject"] is None
    assert pol.epoch() == 1
    [stored] = pol.table()
    assert stored == {"id": first.id, "kind": "rate_limit", "org_id": org, "scope": "org", "scope_id": org,
                      "subject": "", "spec": first.spec, "actor": "cli:alice", "ended_at": None, "ended_by": None}

    # the same limits again (said differently): nothing changes, the version in force is returned
    again, same = pol.set(kind="rate_limit", scope="org", scope_id=org, spec={"tpm": 0, "rpm": 60}, actor="cli:bob")
    assert again == same == first
    assert pol.epoch() == 1 and pol.table() == [stored]

    # different limits: a new version; the old one is closed by whoever replaced it
    second, replaced = pol.set(kind="rate_limit", scope="org", scope_id=org, spec={"rpm": 120, "concurrency": 4},
                               actor="cli:bob")
    assert replaced == first  # as it was before the change
    assert second.id != first.id and second.spec == {"rpm": 120, "tpm": 0, "concurrency": 4}
    assert second.actor == "cli:bob" and second.ended_at is None
    assert pol.epoch() == 2
    assert pol.in_force() == [second.id]
    old, new = pol.table()
    assert old["id"] == first.id and old["spec"] == first.spec  # history keeps what it said
    assert old["ended_by"] == "cli:bob" and old["ended_at"] is not None
    assert (new["id"], new["ended_at"], new["actor"]) == (second.id, None, "cli:bob")

    # delete: out of force, still in history
    gone = pol.delete(second.id, actor="cli:carol")
    assert gone == second  # as it was
    assert pol.epoch() == 3
    assert pol.in_force() == []
    old_again, deleted = pol.table()
    assert old_again == old  # the older version is untouched
    assert deleted["id"] == second.id and deleted["ended_by"] == "cli:carol" and deleted["ended_at"] is not None
    assert deleted["spec"] == second.spec

    error = pol.refused(lambda s: delete_policy(s, policy_id=second.id, actor="cli:carol"))  # not in force
    assert isinstance(error, PolicyNotFoundError) and (error.code, error.http_status) == ("policy_not_found", 404)
    error = pol.refused(lambda s: delete_policy(s, policy_id=10**6, actor="cli:carol"))
    assert error.code == "policy_not_found"

    # set after a delete: a fresh version, nothing to replace
    third, before = pol.set(kind="rate_limit", scope="org", scope_id=org, spec={"rpm": 120, "concurrency": 4})
    assert before is None and third.id not in (first.id, second.id)
    assert pol.epoch() == 4
    assert pol.in_force() == [third.id] and len(pol.table()) == 3


def test_delete_by_org(pol: Policies) -> None:
    a, b = pol.a, pol.b
    glob, _ = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="203.0.113.0/24")
    rate_a, _ = pol.set(kind="rate_limit", scope="project", scope_id=a.project, spec={"tpm": 1000})
    rate_b, _ = pol.set(kind="rate_limit", scope="key", scope_id=b.key, spec={"concurrency": 2})
    assert (glob.org_id, rate_a.org_id, rate_b.org_id) == (None, a.id, b.id)
    epoch = pol.epoch()
    for policy_id in (rate_a.id, glob.id):  # another org's policy, a global rule: not b's to delete
        error = pol.refused(functools.partial(delete_policy, policy_id=policy_id, org_id=b.id, actor="x"))
        assert error.code == "policy_not_found"
    assert pol.in_force() == [glob.id, rate_a.id, rate_b.id]

    pol.delete(rate_b.id, org_id=b.id)
    pol.delete(glob.id)
    assert pol.epoch() == epoch + 2
    assert pol.in_force() == [rate_a.id]


def test_list_policies_in_force_history_and_filters(pol: Policies) -> None:
    a, b = pol.a, pol.b
    glob, _ = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="203.0.113.0/24")
    old_a, _ = pol.set(kind="rate_limit", scope="project", scope_id=a.project, spec={"tpm": 1000})
    model_a, _ = pol.set(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": [MODEL]})
    rate_b, _ = pol.set(kind="rate_limit", scope="key", scope_id=b.key, spec={"concurrency": 2})
    rate_a, _ = pol.set(kind="rate_limit", scope="project", scope_id=a.project, spec={"tpm": 2000}, actor="cli:bob")
    pol.delete(rate_b.id, actor="cli:carol")

    assert ids(pol.listing()) == [glob.id, model_a.id, rate_a.id]  # in force, oldest first
    assert all(p.ended_at is None for p in pol.listing())
    history = pol.listing(history=True)
    assert ids(history) == [glob.id, old_a.id, model_a.id, rate_b.id, rate_a.id]
    ended = {p.id: p.ended_by for p in history if p.ended_at is not None}
    assert ended == {old_a.id: "cli:bob", rate_b.id: "cli:carol"}
    assert history[1].spec == {"rpm": 0, "tpm": 1000, "concurrency": 0}
    assert ids(pol.listing(org_id=a.id)) == [glob.id, model_a.id, rate_a.id]
    assert ids(pol.listing(org_id=a.id, include_global=False)) == [model_a.id, rate_a.id]
    assert ids(pol.listing(org_id=b.id)) == [glob.id]
    assert ids(pol.listing(org_id=b.id, kind="rate_limit", history=True)) == [rate_b.id]
    assert ids(pol.listing(kind="ip_rule")) == [glob.id]
    assert pol.listing(kind="model_policy") == [model_a]


# -- validation ----------------------------------------------------------------------------------

RATE = {"kind": "rate_limit", "scope": "org"}
IP = {"kind": "ip_rule", "scope": "global", "spec": {"action": "deny"}}


def invalid_cases(pol: Policies) -> list[tuple[dict[str, Any], type[DeepSpaceError], str, str | None]]:
    """(set_policy arguments, error class, code, param)."""
    a, b = pol.a, pol.b
    rate_a = dict(RATE, scope_id=a.id)
    bad_rate = InvalidPolicyError, "invalid_policy"
    return [
        (dict(kind="quota", scope="org", scope_id=a.id, spec={"rpm": 1}), *bad_rate, "kind"),
        (dict(RATE, scope="global", spec={"rpm": 1}), InvalidPolicyError, "invalid_scope", "scope"),
        (dict(kind="model_policy", scope="key", scope_id=a.key, spec={"allow": [MODEL]}),
         InvalidPolicyError, "invalid_scope", "scope"),
        (dict(IP, scope="project", scope_id=a.project, subject="10.0.0.0/8"), InvalidPolicyError, "invalid_scope",
         "scope"),
        (dict(IP, scope="key", scope_id=a.key, subject="10.0.0.0/8"), InvalidPolicyError, "invalid_scope", "scope"),
        (dict(RATE, scope="galaxy", scope_id=a.id, spec={"rpm": 1}), InvalidPolicyError, "invalid_scope", "scope"),
        (dict(IP, org_id=a.id, subject="10.0.0.0/8"), InvalidPolicyError, "invalid_scope", "org"),
        # rate-limit values
        (dict(rate_a, spec={"rpm": 0, "tpm": 0, "concurrency": 0}), *bad_rate, None),
        (dict(rate_a, spec={}), *bad_rate, None),
        (dict(rate_a, spec={"rpm": -1}), *bad_rate, "rpm"),
        (dict(rate_a, spec={"tpm": True}), *bad_rate, "tpm"),
        (dict(rate_a, spec={"concurrency": MAX_RATE + 1}), *bad_rate, "concurrency"),
        (dict(rate_a, spec={"rpm": 1.5}), *bad_rate, "rpm"),
        (dict(rate_a, spec={"rpm": "60"}), *bad_rate, "rpm"),
        (dict(rate_a, spec={"rpm": None}), *bad_rate, "rpm"),
        (dict(rate_a, spec={"rpm": 10, "burst": 5}), *bad_rate, None),
        # IP rules
        (dict(IP, subject="10.0.0.0/33"), InvalidPolicyError, "invalid_cidr", "cidr"),
        (dict(IP, subject="not-an-ip"), InvalidPolicyError, "invalid_cidr", "cidr"),
        (dict(IP, subject=""), InvalidPolicyError, "invalid_cidr", "cidr"),
        (dict(IP, subject="10.0.0.0/8, 11.0.0.0/8"), InvalidPolicyError, "invalid_cidr", "cidr"),
        (dict(IP, spec={"action": "block"}, subject="10.0.0.0/8"), *bad_rate, "action"),
        (dict(IP, spec={"action": "deny", "note": "x"}, subject="10.0.0.0/8"), *bad_rate, "action"),
        (dict(IP, spec={}, subject="10.0.0.0/8"), *bad_rate, "action"),
        # model policies
        (dict(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": [MODEL, "no-such-model"]}),
         InvalidPolicyError, "unknown_model", "allow"),
        (dict(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": MODEL}), *bad_rate, "allow"),
        (dict(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": [MODEL, ""]}), *bad_rate, "allow"),
        (dict(kind="model_policy", scope="org", scope_id=a.id, spec={"deny": [MODEL]}), *bad_rate, None),
        (dict(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": [MODEL], "x": 1}), *bad_rate, None),
        # scopes that do not exist, or not in the org named
        (dict(rate_a, scope_id="", spec={"rpm": 1}), InvalidPolicyError, "missing_field", "org"),
        (dict(RATE, scope="project", scope_id="", spec={"rpm": 1}), InvalidPolicyError, "missing_field", "project"),
        (dict(rate_a, scope_id="org_nope", spec={"rpm": 1}), PolicyNotFoundError, "org_not_found", "org"),
        (dict(rate_a, org_id=b.id, spec={"rpm": 1}), PolicyNotFoundError, "org_not_found", "org"),
        (dict(RATE, scope="project", scope_id="prj_nope", spec={"rpm": 1}), PolicyNotFoundError,
         "project_not_found", "project"),
        (dict(RATE, scope="project", scope_id=b.project, org_id=a.id, spec={"rpm": 1}), PolicyNotFoundError,
         "project_not_found", "project"),
        (dict(kind="model_policy", scope="project", scope_id=b.project, org_id=a.id, spec={"allow": [MODEL]}),
         PolicyNotFoundError, "project_not_found", "project"),
        (dict(RATE, scope="key", scope_id=b.key, org_id=a.id, spec={"rpm": 1}), PolicyNotFoundError,
         "key_not_found", "key"),
        (dict(RATE, scope="key", scope_id=a.project, spec={"rpm": 1}), PolicyNotFoundError, "key_not_found", "key"),
        (dict(IP, scope="org", scope_id="org_nope", subject="10.0.0.0/8"), PolicyNotFoundError, "org_not_found",
         "org"),
    ]


def test_invalid_changes_are_refused_with_stable_codes_and_write_nothing(pol: Policies) -> None:
    # something in force for the same scopes, which a refused change must leave alone
    pol.set(kind="rate_limit", scope="org", scope_id=pol.a.id, spec={"rpm": 5})
    pol.set(kind="ip_rule", scope="global", spec={"action": "allow"}, subject="10.0.0.0/8")
    pol.set(kind="model_policy", scope="org", scope_id=pol.a.id, spec={"allow": [MODEL]})
    cases = invalid_cases(pol)
    for kwargs, error_class, code, param in cases:
        error = pol.refuse_set(**kwargs)  # checks nothing was written
        assert (type(error), error.code, error.param) == (error_class, code, param), kwargs
        assert error.http_status == (404 if error_class is PolicyNotFoundError else 400), kwargs
    assert pol.epoch() == 3 and len(pol.table()) == 3


def test_what_is_accepted_is_stored_normalised(pol: Policies) -> None:
    a = pol.a
    limit, _ = pol.set(kind="rate_limit", scope="key", scope_id=a.key, org_id=a.id, subject="1.2.3.4",
                       spec={"rpm": MAX_RATE, "tpm": 0, "concurrency": 1})
    assert limit.spec == {"rpm": MAX_RATE, "tpm": 0, "concurrency": 1}
    assert (limit.subject, limit.org_id) == ("", a.id)  # a subject is for IP rules only; the key's org
    models, _ = pol.set(kind="model_policy", scope="project", scope_id=a.project, org_id=a.id,
                        spec={"allow": [OTHER_MODEL, MODEL, OTHER_MODEL]})
    assert models.spec == {"allow": [MODEL, OTHER_MODEL]}  # sorted, once each
    assert models.org_id == a.id
    nothing, _ = pol.set(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": []})
    assert nothing.spec == {"allow": []}  # allowed: it allows no model

    cidrs = {" 10.1.2.3/24 ": "10.1.2.0/24", "192.0.2.7": "192.0.2.7/32", "2001:DB8:0::1/64": "2001:db8::/64",
             "2001:db8::5": "2001:db8::5/128", "0.0.0.0/0": "0.0.0.0/0"}
    for given, stored in cidrs.items():
        rule, _ = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject=given)
        assert rule.subject == stored, given
    in_force = pol.table()
    assert sorted(r["subject"] for r in in_force if r["kind"] == "ip_rule") == sorted(cidrs.values())


def test_one_version_in_force_per_kind_scope_and_subject(pol: Policies) -> None:
    a = pol.a
    deny, _ = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="10.1.2.0/24")
    other, _ = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="10.1.3.0/24")
    same_in_org, _ = pol.set(kind="ip_rule", scope="org", scope_id=a.id, spec={"action": "deny"},
                             subject="10.1.2.0/24")
    assert len({deny.id, other.id, same_in_org.id}) == 3  # different CIDRs, or scopes: they coexist
    epoch = pol.epoch()

    # the same CIDR written with host bits is the same rule: nothing changes
    again, before = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="10.1.2.99/24")
    assert again == before == deny and pol.epoch() == epoch
    # ... and another action for it replaces it
    allow, before = pol.set(kind="ip_rule", scope="global", spec={"action": "allow"}, subject="10.1.2.3/24")
    assert before == deny and allow.id != deny.id and pol.epoch() == epoch + 1
    assert pol.in_force(kind="ip_rule") == [other.id, same_in_org.id, allow.id]

    # every kind on one scope coexists: one version each
    for kind, spec in (("rate_limit", {"rpm": 1}), ("model_policy", {"allow": [MODEL]})):
        pol.set(kind=kind, scope="org", scope_id=a.id, spec=spec)
    assert len(pol.in_force(org_id=a.id)) == 3

    # the database itself refuses a second version in force (whatever writes it), not an ended one
    insert = text("INSERT INTO policies (kind, org_id, scope, scope_id, subject, spec, actor, created_at, ended_at) "
                  "VALUES ('ip_rule', NULL, 'global', '', '10.1.3.0/24', '{\"action\": \"allow\"}', 'x', "
                  "CURRENT_TIMESTAMP, :ended)")
    with pol.db.begin() as conn:
        conn.execute(insert, {"ended": allow.created_at})
    with pytest.raises(IntegrityError), pol.db.begin() as conn:
        conn.execute(insert, {"ended": None})
    assert [r["id"] for r in pol.table() if r["subject"] == "10.1.3.0/24" and r["ended_at"] is None] == [other.id]


# -- snapshot and cache --------------------------------------------------------------------------


def test_load_snapshot_is_what_is_in_force(pol: Policies) -> None:
    a, b = pol.a, pol.b
    assert pol.snapshot() == PolicySnapshot(epoch=0)
    pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="203.0.113.0/24")
    gone, _ = pol.set(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="198.51.100.0/24")
    pol.set(kind="ip_rule", scope="org", scope_id=a.id, spec={"action": "allow"}, subject="192.0.2.0/24")
    pol.set(kind="ip_rule", scope="org", scope_id=a.id, spec={"action": "deny"}, subject="192.0.2.128/25")
    pol.set(kind="rate_limit", scope="org", scope_id=a.id, spec={"rpm": 60})
    pol.set(kind="rate_limit", scope="org", scope_id=a.id, spec={"rpm": 30, "tpm": 900})  # replaces
    pol.set(kind="rate_limit", scope="key", scope_id=b.key, spec={"concurrency": 2})
    pol.set(kind="model_policy", scope="org", scope_id=a.id, spec={"allow": [MODEL, OTHER_MODEL]})
    pol.set(kind="model_policy", scope="project", scope_id=a.project, spec={"allow": [MODEL]})
    pol.delete(gone.id)

    snap = pol.snapshot()
    assert snap.epoch == pol.epoch() == 10
    assert snap.global_ip == IPRules(deny=parse_networks("203.0.113.0/24"))
    assert snap.org_ip == {a.id: IPRules(allow=parse_networks("192.0.2.0/24"), deny=parse_networks("192.0.2.128/25"))}
    assert snap.rates == {("org", a.id): RateSpec(rpm=30, tpm=900), ("key", b.key): RateSpec(concurrency=2)}
    assert snap.models == {("org", a.id): {MODEL, OTHER_MODEL}, ("project", a.project): {MODEL}}
    assert snap.rate_specs(org_id=b.id, project_id=b.project, api_key_id=b.key) == [
        ("key", b.key, RateSpec(concurrency=2))]
    assert snap.allowed_models(org_id=a.id, project_id=a.project) == [MODEL]


def test_cache_reloads_only_when_another_process_changes_a_policy(pol: Policies) -> None:
    a = pol.a
    cache = PolicyCache(pol.engine)
    other: AsyncEngine = make_async_engine(pol.url)  # another process's engine and sessions
    other_sessions = make_sessionmaker(other)

    async def change(**kwargs: Any) -> None:
        async with other_sessions() as session:
            await set_policy(session, actor="other-process", **kwargs)
            await session.commit()

    async def scenario() -> None:
        first = await cache.current()
        assert first.epoch == 0 and first.rates == {}
        assert await cache.current() is first

        await change(kind="rate_limit", scope="org", scope_id=a.id, spec={"rpm": 60})
        second = await cache.current()
        assert second is not first
        assert (second.epoch, second.rates) == (1, {("org", a.id): RateSpec(rpm=60)})
        assert await cache.current() is second and await cache.current() is second

        await change(kind="rate_limit", scope="org", scope_id=a.id, spec={"rpm": 60})  # no change, no epoch
        assert await cache.current() is second

        await change(kind="ip_rule", scope="global", spec={"action": "deny"}, subject="203.0.113.0/24")
        third = await cache.current()
        assert third is not second and third.epoch == 2
        assert third.global_ip == IPRules(deny=parse_networks("203.0.113.0/24"))
        assert third.rates == second.rates
        # many requests at once after a change: all see the new snapshot, loaded once
        await change(kind="rate_limit", scope="org", scope_id=a.id, spec={"rpm": 61})
        seen = await asyncio.gather(*(cache.current() for _ in range(20)))
        assert len({id(s) for s in seen}) == 1 and seen[0].epoch == 3
        assert seen[0].rates == {("org", a.id): RateSpec(rpm=61)}

    try:
        pol.run(scenario())
    finally:
        pol.run(other.dispose())
