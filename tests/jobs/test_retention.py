"""Retention removes exactly what is past its age, in small batches; the ledger stays."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from deepspace_lab.audit.models import AuditLog
from deepspace_lab.billing.models import RollupMark, UsageRecord
from deepspace_lab.conversations.models import Conversation, Message
from deepspace_lab.db import make_async_engine, make_sync_engine
from deepspace_lab.jobs.models import Job, JobEvent
from deepspace_lab.jobs.retention import apply_retention
from deepspace_lab.workflows.models import WorkflowEvent, WorkflowRun

from ..helpers import count, make_tenant

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_retention_removes_exactly_what_is_past_its_age(settings_factory: Any) -> None:
    settings = settings_factory(retention_audit_days=30, retention_usage_days=90, retention_messages_days=7,
                                retention_jobs_days=14)
    tenant = make_tenant(settings, email="old@example.org")  # credits its wallet: one ledger entry
    db = make_sync_engine(settings.database_url)
    ledger_before = count(db, "transactions")
    with Session(db) as session:
        # 30 days exactly is not past its age (kept); one second more is (deleted)
        for i, days in enumerate((31, 45, 29, 1, 30, 30 + 1 / 86400)):
            session.add(AuditLog(trace_id="t" * 32, kind="test", org_id=tenant.org_id, created_at=ago(days),
                                 detail={"i": i}))
        for i, (days, status) in enumerate(((100, "captured"), (95, "released"), (200, "pending"), (89, "captured"),
                                            (92, "captured"))):
            session.add(UsageRecord(request_id=f"req_old_{i}", trace_id="t" * 32, org_id=tenant.org_id, model="m",
                                    measured="upstream", status=status, created_at=ago(days)))
        # roll-ups are built up to 94 days ago only: the row from 92 days ago waits for them
        session.add(RollupMark(period="hour", rolled_until=ago(94)))
        conv = Conversation(id="conv_old", org_id=tenant.org_id, project_id=tenant.project_id,
                            user_id=tenant.user_id, title="")
        session.add(conv)
        session.flush()
        for i, days in enumerate((8, 6.9, 30)):
            session.add(Message(conversation_id="conv_old", org_id=tenant.org_id, role="user", content=f"m{i}",
                                trace_id="t" * 32, request_id=f"req_m{i}", created_at=ago(days)))
        for job_id, state, finished in (("job_old_done", "done", 15), ("job_old_failed", "failed", 20),
                                        ("job_new_done", "done", 13), ("job_running", "running", None)):
            session.add(Job(id=job_id, kind="noop", state=state, params={}, attempts=1, max_attempts=3,
                            progress_done=0, trace_id="t" * 32, created_at=ago(30),
                            finished_at=ago(finished) if finished else None))
            session.flush()
            session.add(JobEvent(job_id=job_id, event="started", attempt=1, created_at=ago(30)))
        # workflow runs: their event logs go with the jobs' setting, by when the run ended
        for run_id, state, finished in (("wfr_old_done", "succeeded", 15), ("wfr_old_failed", "failed", 20),
                                        ("wfr_new_done", "succeeded", 13), ("wfr_running", "running", None)):
            session.add(WorkflowRun(id=run_id, org_id=tenant.org_id, project_id=tenant.project_id, name="w",
                                    definition={}, inputs={}, state=state, trace_id="t" * 32,
                                    user_id=tenant.user_id, created_at=ago(30),
                                    finished_at=ago(finished) if finished else None))
            session.flush()
            for event in ("run.started", "step.started", "step.succeeded"):
                session.add(WorkflowEvent(run_id=run_id, org_id=tenant.org_id, event=event, created_at=ago(30)))
        session.commit()

    async def purge() -> dict[str, int]:
        engine = make_async_engine(settings.database_url)
        try:
            return await apply_retention(engine, settings, now=NOW, batch=2)
        finally:
            await engine.dispose()

    purged = {"audit_logs": 3, "usage_records": 2, "messages": 2, "jobs": 2, "workflow_events": 6}
    assert asyncio.run(purge()) == purged
    with db.connect() as conn:

        audits = sorted(d["i"] for d in Session(db).scalars(select(AuditLog.detail).where(AuditLog.kind == "test")))
        usage = sorted(r[0] for r in conn.execute(text("SELECT request_id FROM usage_records")))
        messages = sorted(r[0] for r in conn.execute(text("SELECT content FROM messages")))
        jobs = sorted(r[0] for r in conn.execute(text("SELECT id FROM jobs")))
        logs = sorted({r[0] for r in conn.execute(text("SELECT run_id FROM workflow_events"))})
        runs = count(db, "workflow_runs")
    assert audits == [2, 3, 4]  # the 29-, 1- and exactly 30-day-old rows
    assert usage == ["req_old_2", "req_old_3", "req_old_4"]  # pending, too young, not rolled up yet
    assert messages == ["m1"]
    assert jobs == ["job_new_done", "job_running"] and count(db, "job_events") == 2
    assert logs == ["wfr_new_done", "wfr_running"] and runs == 4  # the runs themselves stay
    assert count(db, "transactions") == ledger_before  # the ledger is never purged
    (record,) = Session(db).scalars(select(AuditLog.detail).where(AuditLog.kind == "worker.retention"))
    assert record["deleted"] == purged
    db.dispose()


def test_zero_days_keeps_everything(settings_factory: Any) -> None:
    settings = settings_factory()
    tenant = make_tenant(settings, email="keep@example.org", credit_micros=0)
    db = make_sync_engine(settings.database_url)
    with Session(db) as session:
        session.add(AuditLog(trace_id="t" * 32, kind="test", org_id=tenant.org_id, created_at=ago(10_000)))
        session.commit()

    async def purge() -> dict[str, int]:
        engine = make_async_engine(settings.database_url)
        try:
            return await apply_retention(engine, settings, now=NOW)
        finally:
            await engine.dispose()

    assert asyncio.run(purge()) == {}
    assert count(db, "audit_logs", kind="test") == 1
    db.dispose()
