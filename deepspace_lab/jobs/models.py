"""jobs and job_events: what users see of the Worker's work.

The queue (Huey) only carries a job's id; the state lives here, in the Gateway's database,
so it survives the queue (and a worker killed mid-job) and the product API can show it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt, UTCDateTime

JOB_STATES = ("queued", "running", "done", "failed")
EVENT_KINDS = ("queued", "started", "retry", "lost", "done", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Job(CreatedAt, Base):
    """One unit of the Worker's work. ``org_id`` is null only for an operator's job started
    without one (``deepspace-lab jobs run``), which no org ever sees. The scheduled tasks
    (roll-ups, reconciliation, retention) are not rows here: they report to the log, the
    roll-up marks and, for retention, an audit row."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_one_of("state", JOB_STATES), name="known_state"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # newest-first listing of one org's jobs
        Index("ix_jobs_org_id_created_at", "org_id", "created_at"),
        # the reaper's scan: running jobs by lease
        Index("ix_jobs_state_lease_expires_at", "state", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    #: ``host:pid`` of the worker running it
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobEvent(CreatedAt, Base):
    """The job's log: one row per transition (queued, each attempt's start, retry, a lost
    worker, done, failed), with the worker and the error."""

    __tablename__ = "job_events"
    __table_args__ = (CheckConstraint(_one_of("event", EVENT_KINDS), name="known_event"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
