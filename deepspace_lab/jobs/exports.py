"""Exports and statements: job kinds that write an org's rows into a file in storage.

``export`` writes one dataset — ``conversations`` (messages with their conversation),
``usage`` (usage records) or ``transactions`` (the ledger) — of the job's org, optionally
one project (conversations and usage) and a ``[since, until)`` window, as ``csv``, ``json``
(an array of objects) or ``md`` (a Markdown table); a CSV cell of text a spreadsheet would run
as a formula is written with a leading ``'`` (:func:`csv_cell`). The Admin API's exports add ``orgs``: one
org's id or ``*`` (every org) whose ``usage``, ``transactions`` or ``audit`` rows (the request
log) are read instead, each row with its ``org_id``; the file still lands in the job's org (the
admin's own), so it is fetched as every export is. Only the Admin API sets ``orgs``. Rows are read in keyset batches of
:data:`BATCH` and streamed to a temporary file, so memory stays flat; progress is rows
written of the rows counted at the start. The file lands in the org's files (kind
``export``) and the job's result names it, with its download path.

``statement`` writes an org's monthly statement (UTC month ``YYYY-MM``) as Markdown and
CSV: usage by project and model (from the hourly roll-ups, which outlive usage retention),
then the ledger's movements of the month by type (credits, debits, captures, refunds),
the opening and closing balance (each entry records the wallet after it).

Every query takes the job's org (or, for an admin's export, the ``orgs`` it names).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, select

from ..audit.models import AuditLog
from ..billing.models import Transaction, UsageRecord, UsageRollup
from ..billing.usage_query import parse_time
from ..conversations.models import Conversation, Message
from ..db.base import UTCDateTime
from ..files import store_local_file
from .errors import JobParamsError
from .kinds import JobKind

if TYPE_CHECKING:
    from .worker import JobContext

BATCH = 2000
FORMATS = {"csv": "text/csv", "json": "application/json", "md": "text/markdown"}
U, T, R = (cast(Table, m.__table__) for m in (UsageRecord, Transaction, UsageRollup))
C, MSG = cast(Table, Conversation.__table__), cast(Table, Message.__table__)
AUD = cast(Table, AuditLog.__table__)

USAGE_COLUMNS = ("id", "created_at", "request_id", "trace_id", "project_id", "api_key_id", "user_id", "model",
                 "prompt_tokens", "completion_tokens", "delivered_tokens", "cost_micros", "held_micros", "measured",
                 "status", "finish_reason", "error_code", "stream")
LEDGER_COLUMNS = ("id", "created_at", "type", "ref", "amount_micros", "balance_after_micros", "frozen_after_micros",
                  "hold_id", "refund_of", "reason", "trace_id", "request_id")
AUDIT_COLUMNS = ("id", "created_at", "trace_id", "request_id", "kind", "actor", "project_id", "user_id",
                 "api_key_id", "method", "path", "model", "status_code", "error_code", "latency_ms", "client_ip")
#: what an admin's export (``orgs``) may read
ADMIN_DATASETS = ("usage", "transactions", "audit")
MESSAGE_COLUMNS = ("id", "created_at", "conversation_id", "title", "project_id", "role", "content", "model", "tokens",
                   "trace_id", "request_id")


def _dataset(name: str, org_id: str, project_id: str | None, orgs: str | None = None,
             ) -> tuple[Table, Any, tuple[str, ...], list[Any]]:
    """(id column's table, select of the columns, column names, filters) of one dataset."""
    if orgs is not None:
        return _admin_dataset(name, None if orgs == "*" else orgs, project_id)
    if name == "usage":
        where = [U.c.org_id == org_id] + ([U.c.project_id == project_id] if project_id else [])
        return U, select(*[U.c[c] for c in USAGE_COLUMNS]), USAGE_COLUMNS, where
    if name == "transactions":
        return T, select(*[T.c[c] for c in LEDGER_COLUMNS]), LEDGER_COLUMNS, [T.c.org_id == org_id]
    where = [MSG.c.org_id == org_id, C.c.org_id == org_id] + ([C.c.project_id == project_id] if project_id else [])
    query = select(MSG.c.id, MSG.c.created_at, MSG.c.conversation_id, C.c.title, C.c.project_id, MSG.c.role,
                   MSG.c.content, MSG.c.model, MSG.c.tokens, MSG.c.trace_id, MSG.c.request_id
                   ).select_from(MSG.join(C, C.c.id == MSG.c.conversation_id))
    return MSG, query, MESSAGE_COLUMNS, where


def _admin_dataset(name: str, org_id: str | None, project_id: str | None,
                   ) -> tuple[Table, Any, tuple[str, ...], list[Any]]:
    """An admin's export: one org's rows or (``org_id`` None) every org's, with ``org_id``."""
    table, names = {"usage": (U, USAGE_COLUMNS), "transactions": (T, LEDGER_COLUMNS),
                    "audit": (AUD, AUDIT_COLUMNS)}[name]
    columns = (names[0], "org_id", *names[1:])
    where = ([table.c.org_id == org_id] if org_id is not None else []) + (
        [table.c.project_id == project_id] if project_id else [])
    return table, select(*[table.c[c] for c in columns]), columns, where


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


#: what a spreadsheet reads as the start of a formula (OWASP "CSV injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: text a spreadsheet would run as a formula (a message reading
    ``=HYPERLINK(…)``, opened by an admin in Excel) starts with ``'`` so it shows as text;
    numbers, and the JSON and Markdown formats, are left as they are."""
    value = _cell(value)
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _md(value: Any) -> str:
    text = "" if value is None else str(_cell(value))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


class _Writer:
    """Writes rows as CSV, JSON or Markdown to a binary file, hashing as it goes."""

    def __init__(self, handle: Any, fmt: str, columns: tuple[str, ...], title: str) -> None:
        self.handle, self.fmt, self.columns = handle, fmt, columns
        self.sha = hashlib.sha256()
        self.size = 0
        self.rows = 0
        if fmt == "csv":
            self._line(self._csv(columns))
        elif fmt == "json":
            self._write(b"[")
        else:
            self._line(f"# {title}\n\n| {' | '.join(columns)} |\n|{'---|' * len(columns)}")

    def _write(self, data: bytes) -> None:
        self.handle.write(data)
        self.sha.update(data)
        self.size += len(data)

    def _line(self, text: str) -> None:
        self._write((text + "\n").encode())

    @staticmethod
    def _csv(values: Any) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow([csv_cell(v) for v in values])
        return buffer.getvalue()

    def row(self, values: tuple[Any, ...]) -> None:
        if self.fmt == "csv":
            self._line(self._csv(values))
        elif self.fmt == "json":
            record = {c: _cell(v) for c, v in zip(self.columns, values, strict=True)}
            self._write((b"," if self.rows else b"") + b"\n" + json.dumps(record, ensure_ascii=False).encode())
        else:
            self._line("| " + " | ".join(_md(v) for v in values) + " |")
        self.rows += 1

    def close(self) -> None:
        if self.fmt == "json":
            self._write(b"\n]\n")


def _check_export(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"dataset", "format", "since", "until", "project_id", "orgs"}
    if unknown:
        raise JobParamsError(f"unknown params {sorted(unknown)}", param=sorted(unknown)[0])
    dataset, fmt = params.get("dataset"), params.get("format", "csv")
    orgs = params.get("orgs")
    if orgs is not None and (not isinstance(orgs, str) or not (orgs == "*" or _is_id(orgs))):
        raise JobParamsError("`orgs` is an org id or `*`", param="orgs")
    if orgs is not None and dataset not in ADMIN_DATASETS:
        raise JobParamsError(f"`dataset` must be one of {list(ADMIN_DATASETS)}", param="dataset")
    if orgs is None and dataset not in ("conversations", "usage", "transactions"):
        raise JobParamsError("`dataset` must be conversations, usage or transactions", param="dataset")
    if fmt not in FORMATS:
        raise JobParamsError(f"`format` must be one of {sorted(FORMATS)}", param="format")
    clean: dict[str, Any] = {"dataset": dataset, "format": fmt} | ({"orgs": orgs} if orgs is not None else {})
    for name in ("since", "until"):
        if params.get(name) is not None:
            if not isinstance(params[name], str):
                raise JobParamsError(f"`{name}` must be an ISO-8601 time", param=name)
            clean[name] = parse_time(params[name], param=name).isoformat()
    if "since" in clean and "until" in clean and clean["since"] >= clean["until"]:
        raise JobParamsError("`since` must be before `until`", param="until")
    project_id = params.get("project_id")
    if project_id is not None:
        if dataset == "transactions":
            raise JobParamsError("the ledger is per org: no `project_id` for transactions", param="project_id")
        if not isinstance(project_id, str) or not _is_id(project_id):
            raise JobParamsError("`project_id` is not an id", param="project_id")
        clean["project_id"] = project_id
    return clean


def _is_id(value: str) -> bool:
    return value.replace("_", "").isascii() and value.replace("_", "").isalnum() and 0 < len(value) <= 40


def _whose(org_id: str, orgs: str | None) -> str:
    return f"org {org_id}" if orgs is None else "every org" if orgs == "*" else f"org {orgs}"


async def _export(ctx: JobContext) -> dict[str, Any]:
    job, params = ctx.job, ctx.job.params
    if job.org_id is None:
        raise JobParamsError("an export belongs to an org")
    table, query, columns, where = _dataset(params["dataset"], job.org_id, params.get("project_id"), params.get("orgs"))
    created = table.c.created_at
    for name, op in (("since", created.__ge__), ("until", created.__lt__)):
        if name in params:
            where.append(op(bindparam(name, datetime.fromisoformat(params[name]), type_=UTCDateTime())))
    count_from = query.with_only_columns(func.count()).where(*where)
    async with ctx.engine.connect() as conn:
        total = int((await conn.execute(count_from)).scalar_one())
    ctx.progress(0, total)
    fmt = params["format"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{params['dataset']}-{stamp}.{fmt}"
    fd, path = tempfile.mkstemp(prefix="deepspace-export-", suffix="." + fmt)
    try:
        with os.fdopen(fd, "wb") as handle:
            title = f"{params['dataset'].capitalize()} of {_whose(job.org_id, params.get('orgs'))}"
            writer = _Writer(handle, fmt, columns, title)
            last_id: Any = None
            while True:
                page = query.where(*where)
                if last_id is not None:
                    page = page.where(table.c.id > last_id)
                async with ctx.engine.connect() as conn:
                    rows = (await conn.execute(page.order_by(table.c.id).limit(BATCH))).all()
                for row in rows:
                    writer.row(tuple(row))
                ctx.progress(writer.rows, max(total, writer.rows))
                if len(rows) < BATCH:
                    break
                last_id = rows[-1][0]
            writer.close()
        stored = await store_local_file(
            ctx.engine, ctx.storage, org_id=job.org_id,
            # an admin's export names a project of another org: its file stays in the admin's own
            project_id=job.project_id if "orgs" in params else params.get("project_id") or job.project_id,
            name=name, content_type=FORMATS[fmt], local_path=path, size_bytes=writer.size,
            sha256=writer.sha.hexdigest(), kind="export", created_by=job.created_by, job_id=job.id,
            trace_id=job.trace_id)
    finally:
        os.unlink(path)
    return {"file_id": stored.id, "name": stored.name, "rows": writer.rows, "size_bytes": stored.size_bytes,
            "download_path": f"/deepspace/api/files/{stored.id}/content"}


EXPORT = JobKind("export", _export, _check_export,
                "An org's conversations, usage or transactions as CSV, JSON or Markdown into its files.")
