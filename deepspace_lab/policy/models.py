"""Policy tables: ``policies`` (versioned rows, history kept) and ``policy_epoch``.

A policy is one of three kinds, for one scope:

- ``rate_limit`` on an org, project or API key: ``{"rpm": N, "tpm": N, "concurrency": N}``
  (0 or absent: no limit of that kind);
- ``ip_rule`` for one CIDR, global or on an org: ``{"action": "allow" | "deny"}``;
- ``model_policy`` on an org or project: ``{"allow": ["model", ...]}``.

Rows are never edited in place except to close them: a change inserts the new version and
sets ``ended_at`` (and ``ended_by``) on the one it replaces, a delete only closes the
current one. The rows whose ``ended_at`` is null are in force; the others are the history.
Every change also bumps the single ``policy_epoch`` row in the same transaction, which is how
every gateway process learns, on its next request, that it must reload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt, UTCDateTime

POLICY_KINDS = ("rate_limit", "ip_rule", "model_policy")
POLICY_SCOPES = ("global", "org", "project", "key")
_CURRENT = "ended_at IS NULL"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Policy(CreatedAt, Base):
    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint(_one_of("kind", POLICY_KINDS), name="known_kind"),
        CheckConstraint(_one_of("scope", POLICY_SCOPES), name="known_scope"),
        CheckConstraint("(scope = 'global') = (org_id IS NULL)", name="global_has_no_org"),
        # one version in force per (kind, scope, subject): a partial unique index
        Index("uq_policies_current", "kind", "scope", "scope_id", "subject", unique=True,
              postgresql_where=text(_CURRENT), sqlite_where=text(_CURRENT)),
        Index("ix_policies_org_id_id", "org_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: None for global rules
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), nullable=True)
    scope: Mapped[str] = mapped_column(String(16))
    #: the org, project or key id ("" for global)
    scope_id: Mapped[str] = mapped_column(String(40))
    #: what inside the scope: the CIDR of an IP rule ("" for the other kinds)
    subject: Mapped[str] = mapped_column(String(64), server_default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PolicyEpoch(Base):
    """One row; ``epoch`` grows with every policy change (read on every request)."""

    __tablename__ = "policy_epoch"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
