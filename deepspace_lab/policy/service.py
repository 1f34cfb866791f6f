"""Policies as data: set, delete and list them (with history), and load what is in force.

Every change closes the version it replaces and inserts the new one, bumps the policy epoch,
and returns (after, before) for the audit row, all in the caller's transaction: the caller
adds its audit row and commits, so a change and its audit row land together or not at all.
Input is checked here, so the CLI and the Admin API refuse the same things with the same
codes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..auth.models import ApiKey, Org, Project
from ..catalog.models import CatalogModel
from ..db.base import utcnow
from ..errors import Conflict, InvalidRequest, NotFound
from .models import Policy, PolicyEpoch
from .rules import PolicySnapshot

_P = cast(Table, Policy.__table__)
_E = cast(Table, PolicyEpoch.__table__)
#: Which scopes each kind of policy may have.
KIND_SCOPES = {"rate_limit": ("org", "project", "key"), "ip_rule": ("global", "org"),
               "model_policy": ("org", "project")}
RATE_FIELDS = ("rpm", "tpm", "concurrency")
MAX_RATE = 10**9
MAX_MODELS = 1000


class PolicyNotFoundError(NotFound):
    default_code = "policy_not_found"


class InvalidPolicyError(InvalidRequest):
    default_code = "invalid_policy"


@dataclass(frozen=True, slots=True)
class PolicyView:
    id: int
    kind: str
    org_id: str | None
    scope: str
    scope_id: str
    subject: str
    spec: dict[str, Any]
    actor: str | None
    created_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None

    @classmethod
    def of(cls, row: Any) -> PolicyView:
        return cls(id=row.id, kind=row.kind, org_id=row.org_id, scope=row.scope, scope_id=row.scope_id,
                   subject=row.subject, spec=dict(row.spec), actor=row.actor, created_at=row.created_at,
                   ended_at=row.ended_at, ended_by=row.ended_by)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "org_id": self.org_id, "scope": self.scope,
                "scope_id": self.scope_id, "subject": self.subject or None, "spec": self.spec,
                "actor": self.actor, "created_at": self.created_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None, "ended_by": self.ended_by,
                "in_force": self.ended_at is None}


def normalise_cidr(text: str) -> str:
    """A CIDR (or a single address) as the database keeps it, e.g. ``10.1.2.0/24``."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise InvalidPolicyError(f"{text!r} is not an IPv4 or IPv6 address or CIDR", code="invalid_cidr",
                                 param="cidr") from None


def _rate_spec(spec: Mapping[str, Any]) -> dict[str, int]:
    unknown = set(spec) - set(RATE_FIELDS)
    if unknown:
        raise InvalidPolicyError(f"unknown rate-limit field(s) {sorted(unknown)}; known: {list(RATE_FIELDS)}")
    out = {}
    for name in RATE_FIELDS:
        value = spec.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RATE:
            raise InvalidPolicyError(f"{name} must be a whole number from 0 (no limit) to {MAX_RATE}, "
                                     f"got {value!r}", param=name)
        out[name] = value
    if not any(out.values()):
        raise InvalidPolicyError("a rate limit needs at least one of rpm, tpm, concurrency above 0 "
                                 "(0 means no limit; to remove a limit use delete)")
    return out


async def _model_spec(session: AsyncSession, spec: Mapping[str, Any]) -> dict[str, Any]:
    if set(spec) != {"allow"}:
        raise InvalidPolicyError("a model policy is {\"allow\": [model, ...]}")
    models = spec["allow"]
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models) or len(models) > MAX_MODELS:
        raise InvalidPolicyError("allow must be a list of model names", param="allow")
    names = sorted(set(models))
    known = set((await session.execute(select(CatalogModel.name).where(CatalogModel.name.in_(names)))).scalars())
    missing = [m for m in names if m not in known]
    if missing:
        raise InvalidPolicyError(f"unknown model(s) {missing}; see `deepspace-lab models list`", code="unknown_model",
                                 param="allow")
    return {"allow": names}


async def _org_of_scope(session: AsyncSession, scope: str, scope_id: str, org_id: str | None) -> str | None:
    """The org a scope belongs to, checked against ``org_id`` (a foreign one is not found)."""
    if scope == "global":
        if org_id:
            raise InvalidPolicyError("a global rule belongs to no org", code="invalid_scope", param="org")
        return None
    column: Any = {"org": Org.id, "project": Project.org_id, "key": ApiKey.org_id}[scope]
    key: Any = {"org": Org.id, "project": Project.id, "key": ApiKey.id}[scope]
    owner = (await session.execute(select(column).where(key == scope_id))).scalar_one_or_none()
    if owner is None or (org_id is not None and owner != org_id):
        raise PolicyNotFoundError(f"no {scope} {scope_id!r}" + (f" in org {org_id!r}" if org_id else ""),
                                  code=f"{scope}_not_found", param=scope)
    return str(owner)


async def _bump_epoch(session: AsyncSession) -> None:
    await session.execute(update(_E).where(_E.c.id == 1).values(epoch=_E.c.epoch + 1))


async def _current(session: AsyncSession, kind: str, scope: str, scope_id: str, subject: str) -> Policy | None:
    query = select(Policy).where(Policy.kind == kind, Policy.scope == scope, Policy.scope_id == scope_id,
                                 Policy.subject == subject, Policy.ended_at.is_(None))
    return (await session.execute(query.with_for_update())).scalar_one_or_none()


async def set_policy(session: AsyncSession, *, kind: str, scope: str, scope_id: str = "", org_id: str | None = None,
                     spec: Mapping[str, Any], subject: str = "", actor: str) -> tuple[PolicyView, PolicyView | None]:
    """Put a policy in force (a new version; the one it replaces goes to history). Returns
    (after, before); setting what is already in force changes nothing and returns the policy
    in force as both. The caller commits."""
    if kind not in KIND_SCOPES:
        raise InvalidPolicyError(f"unknown policy kind {kind!r}; known: {sorted(KIND_SCOPES)}", param="kind")
    if scope not in KIND_SCOPES[kind]:
        raise InvalidPolicyError(f"a {kind} applies to {' / '.join(KIND_SCOPES[kind])}, not {scope!r}",
                                 code="invalid_scope", param="scope")
    scope_id = "" if scope == "global" else scope_id
    if scope != "global" and not scope_id:
        raise InvalidPolicyError(f"name the {scope} the policy applies to", code="missing_field", param=scope)
    owner = await _org_of_scope(session, scope, scope_id, org_id)
    if kind == "rate_limit":
        clean: dict[str, Any] = _rate_spec(spec)
    elif kind == "model_policy":
        clean = await _model_spec(session, spec)
    else:
        action = spec.get("action")
        if set(spec) != {"action"} or action not in ("allow", "deny"):
            raise InvalidPolicyError("an IP rule is {\"action\": \"allow\" | \"deny\"}", param="action")
        clean = {"action": action}
        subject = normalise_cidr(subject)
    if kind != "ip_rule":
        subject = ""
    before = await _current(session, kind, scope, scope_id, subject)
    if before is not None and before.spec == clean:
        view = PolicyView.of(before)
        return view, view
    now = utcnow()
    before_view = PolicyView.of(before) if before is not None else None
    if before is not None:
        before.ended_at, before.ended_by = now, actor
        await session.flush()
    row = Policy(kind=kind, org_id=owner, scope=scope, scope_id=scope_id, subject=subject, spec=clean,
                 actor=actor, created_at=now)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # another change of the same policy committed first (uq_policies_current)
        await session.rollback()
        raise Conflict("this policy was changed at the same moment by someone else; look again and retry",
                       code="policy_conflict") from None
    await _bump_epoch(session)
    return PolicyView.of(row), before_view


async def delete_policy(session: AsyncSession, *, policy_id: int, org_id: str | None = None,
                        actor: str) -> PolicyView:
    """End a policy in force (it stays in history). Returns it as it was; the caller commits."""
    row = (await session.execute(select(Policy).where(Policy.id == policy_id, Policy.ended_at.is_(None))
                                 .with_for_update())).scalar_one_or_none()
    if row is None or (org_id is not None and row.org_id != org_id):
        raise PolicyNotFoundError(f"no policy {policy_id} in force" + (f" in org {org_id!r}" if org_id else ""),
                                  param="id")
    before = PolicyView.of(row)
    row.ended_at, row.ended_by = utcnow(), actor
    await _bump_epoch(session)
    return before


def _policies_query(*, org_id: str | None, kind: str | None, history: bool, include_global: bool) -> Any:
    query = select(Policy).order_by(Policy.id)
    if org_id is not None:
        query = query.where((Policy.org_id == org_id) | (Policy.org_id.is_(None)) if include_global
                            else Policy.org_id == org_id)
    if kind is not None:
        query = query.where(Policy.kind == kind)
    if not history:
        query = query.where(Policy.ended_at.is_(None))
    return query


async def list_policies(session: AsyncSession, *, org_id: str | None = None, kind: str | None = None,
                        history: bool = False, include_global: bool = True) -> list[PolicyView]:
    """Policies in force (with ``history``, every version), oldest first. ``org_id`` limits
    them to one org (plus the global rules, unless ``include_global`` is false)."""
    query = _policies_query(org_id=org_id, kind=kind, history=history, include_global=include_global)
    return [PolicyView.of(r) for r in (await session.execute(query)).scalars().all()]


async def page_policies(session: AsyncSession, *, org_id: str | None = None, kind: str | None = None,
                        history: bool = False, include_global: bool = True, after_id: int | None = None,
                        limit: int = 50) -> tuple[list[PolicyView], int | None]:
    """:func:`list_policies` a page at a time (keyset on the id): the page after ``after_id``,
    and the id to pass for the next one (None at the end)."""
    query = _policies_query(org_id=org_id, kind=kind, history=history, include_global=include_global)
    if after_id is not None:
        query = query.where(Policy.id > after_id)
    rows = [PolicyView.of(r) for r in (await session.execute(query.limit(limit + 1))).scalars().all()]
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


EPOCH_SQL = "SELECT epoch FROM policy_epoch WHERE id = 1"


async def read_epoch(conn: AsyncConnection) -> int:
    return int((await conn.exec_driver_sql(EPOCH_SQL)).scalar_one())


async def load_snapshot(conn: AsyncConnection) -> PolicySnapshot:
    """Every policy in force, with the epoch they belong to (read in one transaction)."""
    async with conn.begin():
        epoch = await read_epoch(conn)
        rows = (await conn.execute(select(_P.c.kind, _P.c.scope, _P.c.scope_id, _P.c.subject, _P.c.spec)
                                   .where(_P.c.ended_at.is_(None)))).mappings().all()
    return PolicySnapshot.build(epoch, [dict(r) for r in rows])


def spec_summary(kind: str, spec: Mapping[str, Any], subject: str = "") -> str:
    if kind == "rate_limit":
        return ", ".join(f"{k} {spec[k]}" for k in RATE_FIELDS if spec.get(k)) or "no limit"
    if kind == "ip_rule":
        return f"{spec['action']} {subject}"
    return "allow " + (", ".join(spec["allow"]) or "no model")

