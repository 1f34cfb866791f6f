"""The monthly statement of an org (job kind ``statement``): Markdown and CSV files.

Usage by project and model comes from the hourly roll-ups (they outlive usage retention);
the money from the ledger: the month's entries summed by type, and the balance before the
first and after the last entry (every entry records the wallet after it). Ledger entries
and statements are never purged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..billing.models import RollupMark, Transaction, UsageRollup
from ..db.base import UTCDateTime
from ..files import store_local_file
from .errors import JobParamsError
from .exports import csv_cell
from .kinds import JobKind

if TYPE_CHECKING:
    from .worker import JobContext

T, R, M = (cast(Table, m.__table__) for m in (Transaction, UsageRollup, RollupMark))
MONEY_TYPES = ("credit", "debit", "capture", "refund")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise JobParamsError("`month` must be YYYY-MM", param="month") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _check(params: dict[str, Any]) -> dict[str, Any]:
    if set(params) - {"month", "org_id"} or "month" not in params or not isinstance(params["month"], str):
        raise JobParamsError("a statement takes `month` (YYYY-MM) and, for an admin's statement, `org_id`; "
                             "nothing else", param="month")
    month_bounds(params["month"])
    org_id = params.get("org_id")
    if org_id is not None and not isinstance(org_id, str):
        raise JobParamsError("`org_id` is an org's id", param="org_id")
    return {"month": params["month"], **({"org_id": org_id} if org_id else {})}


def _t(value: datetime, name: str) -> Any:
    return bindparam(name, value, type_=UTCDateTime())


async def statement_data(conn: AsyncConnection, *, org_id: str, month: str) -> dict[str, Any]:
    """Everything a statement shows, as plain numbers (micro-credits)."""
    start, end = month_bounds(month)
    usage = (await conn.execute(
        select(R.c.project_id, R.c.model, func.sum(R.c.requests), func.sum(R.c.prompt_tokens),
               func.sum(R.c.completion_tokens), func.sum(R.c.cost_micros))
        .where(R.c.org_id == org_id, R.c.period == "hour", R.c.period_start >= _t(start, "s"),
               R.c.period_start < _t(end, "e"))
        .group_by(R.c.project_id, R.c.model).order_by(R.c.project_id, R.c.model))).all()
    sums = dict((await conn.execute(
        select(T.c.type, func.sum(T.c.amount_micros))
        .where(T.c.org_id == org_id, T.c.created_at >= _t(start, "s"), T.c.created_at < _t(end, "e"))
        .group_by(T.c.type))).all())
    before = (await conn.execute(
        select(T.c.balance_after_micros).where(T.c.org_id == org_id, T.c.created_at < _t(start, "s"))
        .order_by(T.c.id.desc()).limit(1))).scalar()
    rolled = (await conn.execute(select(M.c.rolled_until).where(M.c.period == "hour"))).scalar()
    closing = (await conn.execute(
        select(T.c.balance_after_micros, T.c.frozen_after_micros)
        .where(T.c.org_id == org_id, T.c.created_at < _t(end, "e")).order_by(T.c.id.desc()).limit(1))).first()
    return {
        "org_id": org_id, "month": month,
        "usage": [{"project_id": p, "model": m, "requests": int(n), "prompt_tokens": int(pt),
                   "completion_tokens": int(ct), "cost_micros": int(c)} for p, m, n, pt, ct, c in usage],
        "usage_cost_micros": sum(int(row[5]) for row in usage),
        "money": {t: int(sums.get(t) or 0) for t in MONEY_TYPES},
        "opening_balance_micros": int(before or 0),
        "closing_balance_micros": int(closing[0] or 0) if closing else int(before or 0),
        "closing_frozen_micros": int(closing[1] or 0) if closing else 0,
        "usage_rolled_until": rolled.isoformat() if rolled is not None else None,
    }


def _credits(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# Statement {data['month']} — org {data['org_id']}", "",
             "Amounts in credits (1 credit = 1,000,000 micro-credits).", "",
             f"Usage from the hourly roll-ups, built up to {data['usage_rolled_until'] or '(none yet)'}; "
             "the money from the ledger.", "", "## Usage by project and model", "",
             "| project | model | requests | prompt tokens | completion tokens | cost |", "|---|---|---|---|---|---|"]
    for row in data["usage"]:
        lines.append(f"| {row['project_id'] or '-'} | {row['model']} | {row['requests']} | {row['prompt_tokens']} | "
                     f"{row['completion_tokens']} | {_credits(row['cost_micros'])} |")
    money = data["money"]
    lines += ["", "## Money", "", "| | credits |", "|---|---|",
              f"| opening balance | {_credits(data['opening_balance_micros'])} |",
              f"| credits (top-ups, grants) | {_credits(money['credit'])} |",
              f"| debits (adjustments) | {_credits(money['debit'])} |",
              f"| captures (usage charged) | {_credits(money['capture'])} |",
              f"| refunds | {_credits(money['refund'])} |",
              f"| closing balance | {_credits(data['closing_balance_micros'])} |",
              f"| of which reserved by open requests at close | {_credits(data['closing_frozen_micros'])} |", ""]
    return "\n".join(lines)


def render_csv(data: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "project_id", "model", "requests", "prompt_tokens", "completion_tokens", "micros"])
    for row in data["usage"]:
        w.writerow(["usage", row["project_id"] or "", csv_cell(row["model"]), row["requests"], row["prompt_tokens"],
                    row["completion_tokens"], row["cost_micros"]])
    w.writerow(["opening_balance", "", "", "", "", "", data["opening_balance_micros"]])
    for kind in MONEY_TYPES:
        w.writerow([kind, "", "", "", "", "", data["money"][kind]])
    w.writerow(["closing_balance", "", "", "", "", "", data["closing_balance_micros"]])
    return out.getvalue()


async def _statement(ctx: JobContext) -> dict[str, Any]:
    job = ctx.job
    if job.org_id is None:
        raise JobParamsError("a statement belongs to an org")
    month = job.params["month"]
    # an admin's statement of another org (``org_id``) is written into the admin's own org's files
    org_id = job.params.get("org_id") or job.org_id
    name = f"statement-{month}" if org_id == job.org_id else f"statement-{month}-{org_id}"
    async with ctx.engine.connect() as conn:
        data = await statement_data(conn, org_id=org_id, month=month)
    ctx.progress(1, 3)
    files = []
    for fmt, text, content_type in (("md", render_markdown(data), "text/markdown"),
                                    ("csv", render_csv(data), "text/csv")):
        body = text.encode()
        fd, path = tempfile.mkstemp(prefix="deepspace-statement-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            stored = await store_local_file(
                ctx.engine, ctx.storage, org_id=job.org_id, project_id=None, name=f"{name}.{fmt}",
                content_type=content_type, local_path=path, size_bytes=len(body),
                sha256=hashlib.sha256(body).hexdigest(), kind="statement", created_by=job.created_by,
                job_id=job.id, trace_id=job.trace_id)
        finally:
            os.unlink(path)
        files.append({"file_id": stored.id, "name": stored.name, "format": fmt,
                      "download_path": f"/deepspace/api/files/{stored.id}/content"})
        ctx.progress(len(files) + 1, 3)
    return {"month": month, "org_id": org_id, "files": files, "closing_balance_micros": data["closing_balance_micros"]}


STATEMENT = JobKind("statement", _statement, _check,
                   "An org's monthly statement (`month`: YYYY-MM) as Markdown and CSV into its files.")
