"""Product API for the caller's org: its wallet, its ledger entries and its usage records
(both newest first, paged).

Thin: the org comes from the credential (never from the request), the billing service does
the rest. All are the ``billing.read`` action (see ``deepspace_lab.auth.permissions``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from deepspace_lab.billing import (
    CodeExpiredError,
    CodeRedeemedError,
    CodeRevokedError,
    InvalidCodeError,
    LedgerEntry,
    get_wallet,
    list_entries,
    list_usage,
    parse_time,
    redeem_code,
)
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, field, json_body, principal_of, query_params
from .base import DeepSpaceHandler

API_PREFIX = "/deepspace/api"
DEFAULT_PAGE = 50
USAGE_PARAMS = ("limit", "cursor", "project_id", "api_key_id", "model", "since", "until")


def _org_id(ctx: RequestContext) -> str:
    assert ctx.principal is not None
    return ctx.principal.org_id


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    """What a caller sees of an entry (not the operator's actor name)."""
    return {"id": entry.id, "object": "ledger_entry", "type": entry.type, "ref": entry.ref,
            "amount_micros": entry.amount_micros, "balance_after_micros": entry.balance_after_micros,
            "frozen_after_micros": entry.frozen_after_micros, "hold_id": entry.hold_id,
            "refund_of": entry.refund_of, "reason": entry.reason, "trace_id": entry.trace_id,
            "request_id": entry.request_id, "created_at": entry.created_at.isoformat()}


def usage_json(record: dict[str, Any]) -> dict[str, Any]:
    """Every column of a usage record (new ones included, so that the pipeline can add columns
    without touching this), times as ISO-8601."""
    out: dict[str, Any] = {"object": "usage_record"}
    for name, value in record.items():
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _page_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidRequest("`limit` must be a whole number", code="invalid_limit", param="limit")
    return int(raw)


class WalletHandler(DeepSpaceHandler):
    async def get(self) -> None:
        await self.runtime.pipeline.run(self.context(kind="api.wallet.read", action="billing.read"), self._show)
        self.finish_sink()

    async def _show(self, ctx: RequestContext) -> None:
        async with self.runtime.sessions() as session:
            wallet = await get_wallet(session, _org_id(ctx))
        body = {"object": "wallet", **wallet.to_dict()}
        del body["wallet_id"]
        ctx.sink.set_json(orjson.dumps(body))  # type: ignore[union-attr]


class WalletTransactionsHandler(DeepSpaceHandler):
    async def get(self) -> None:
        await self.runtime.pipeline.run(self.context(kind="api.wallet.transactions", action="billing.read"), self._list)
        self.finish_sink()

    async def _list(self, ctx: RequestContext) -> None:
        params = query_params(self, allowed=("limit", "cursor"))
        limit = _page_limit(params.get("limit"))
        cursor = params.get("cursor") or None
        async with self.runtime.sessions() as session:
            page = await list_entries(session, org_id=_org_id(ctx), limit=limit, cursor=cursor)
        ctx.sink.set_json(orjson.dumps({  # type: ignore[union-attr]
            "object": "list", "data": [entry_json(e) for e in page.entries],
            "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor}))


class UsageHandler(DeepSpaceHandler):
    async def get(self) -> None:
        await self.runtime.pipeline.run(self.context(kind="api.usage.list", action="billing.read"), self._list)
        self.finish_sink()

    async def _list(self, ctx: RequestContext) -> None:
        arg = query_params(self, allowed=USAGE_PARAMS).get
        times = {name: parse_time(raw, param=name) for name in ("since", "until") if (raw := arg(name)) is not None}
        limit = _page_limit(arg("limit"))
        async with self.runtime.sessions() as session:
            page = await list_usage(session, org_id=_org_id(ctx), project_id=arg("project_id"),
                                    api_key_id=arg("api_key_id"), model=arg("model"), limit=limit,
                                    cursor=arg("cursor") or None, **times)
        ctx.sink.set_json(orjson.dumps({  # type: ignore[union-attr]
            "object": "list", "data": [usage_json(r) for r in page.records],
            "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor}, default=str))


class RedeemHandler(ApiHandler):
    """``POST /deepspace/api/wallet/redeem {"code"}``: a credit code into the caller's org's wallet
    (``billing.redeem``). Failures count against the caller (10 an hour, then 429)."""

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: Any) -> tuple[int, Any]:
            body = json_body(ctx, required=("code",), allowed=("code",))
            code = field(body, "code", str)
            p = principal_of(ctx)
            failures = (InvalidCodeError, CodeRedeemedError, CodeExpiredError, CodeRevokedError)
            async with self.runtime.redeem_limiter.attempt(p.user_id, failures=failures):
                done = await redeem_code(session, secret_key=self.runtime.settings.require_secret_key(), code=code,
                                         org_id=p.org_id, user_id=p.user_id, actor=f"user:{p.user_id}",
                                         trace_id=ctx.trace_id, request_id=ctx.request_id)
            ctx.detail.update(code_id=done.code.id, batch_id=done.batch_id, entry_id=done.entry.id,
                              amount_micros=done.entry.amount_micros)  # never the code
            return 200, {"object": "redemption", "amount_micros": done.entry.amount_micros,
                         "batch_id": done.batch_id, "prefix": done.code.prefix, "entry_id": done.entry.id,
                         "balance_micros": done.entry.balance_after_micros}

        await self.api(action="billing.redeem", kind="api.wallet.redeem", work=work)


def openapi_paths() -> dict[str, Any]:
    from .admin_money_docs import redeem_paths

    return redeem_paths()


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API_PREFIX + "/wallet/redeem", RedeemHandler, kwargs),
        (API_PREFIX + "/wallet", WalletHandler, kwargs),
        (API_PREFIX + "/wallet/transactions", WalletTransactionsHandler, kwargs),
        (API_PREFIX + "/usage", UsageHandler, kwargs),
    ]
