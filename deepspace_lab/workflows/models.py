"""Workflow tables: definitions and their versions, runs, step runs and the run's events.

A definition (``workflows``) belongs to a project and keeps every version of its text
(``workflow_versions``: the source as written, YAML or JSON, and the parsed, validated
definition). A run (``workflow_runs``) snapshots the definition it runs, so a new version never
changes a running run; each of its steps has one ``step_runs`` row (inputs, outputs, timing,
tokens, cost, attempts, error). ``workflow_events`` is the run's log, paged or streamed by the
API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt, UTCDateTime

RUN_STATES = ("running", "cancelling", "succeeded", "failed", "cancelled")
RUN_ACTIVE = ("running", "cancelling")
STEP_STATES = ("pending", "queued", "running", "succeeded", "failed", "skipped", "cancelled")
STEP_FINISHED = ("succeeded", "failed", "skipped", "cancelled")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Workflow(CreatedAt, Base):
    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("org_id", "project_id", "name", name="uq_workflows_project_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class WorkflowVersion(CreatedAt, Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class WorkflowRun(CreatedAt, Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        CheckConstraint(_one_of("state", RUN_STATES), name="known_state"),
        Index("ix_workflow_runs_org_id_created_at", "org_id", "created_at"),
        Index("ix_workflow_runs_org_id_state", "org_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    project_id: Mapped[str] = mapped_column(String(40))
    workflow_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="running")
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: the run-scoped API key (its row; the plaintext is derived, never stored) and its generation
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    key_generation: Mapped[int] = mapped_column(Integer, default=0)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    forked_from: Mapped[str | None] = mapped_column(String(40), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StepRun(CreatedAt, Base):
    __tablename__ = "step_runs"
    __table_args__ = (
        CheckConstraint(_one_of("state", STEP_STATES), name="known_state"),
        UniqueConstraint("run_id", "step_id", name="uq_step_runs_run_step"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(40))
    step_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    artifacts: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: the step run of an earlier run whose outputs a fork reused (nothing ran, nothing was paid)
    reused_from: Mapped[str | None] = mapped_column(String(40), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WorkflowEvent(CreatedAt, Base):
    __tablename__ = "workflow_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(String(40))
    step_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    event: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
