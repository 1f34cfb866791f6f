"""Product API for the caller's org: its wallet and its ledger entries (newest first, paged).

Thin: the org comes from the credential (never from the request), the billing service does
the rest. Both are the ``billing.read`` action (see ``deepspace_lab.auth.permissions``).
"""

from __future__ import annotations

from typing import Any

import orjson

from deepspace_lab.billing import LedgerEntry, get_wallet, list_entries
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .base import DeepSpaceHandler

API_PREFIX = "/deepspace/api"
DEFAULT_PAGE = 50


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
        raw_limit = self.get_query_argument("limit", str(DEFAULT_PAGE))
        if not raw_limit.isdigit():
            raise InvalidRequest("`limit` must be a whole number", code="invalid_limit", param="limit")
        cursor = self.get_query_argument("cursor", None) or None
        async with self.runtime.sessions() as session:
            page = await list_entries(session, org_id=_org_id(ctx), limit=int(raw_limit), cursor=cursor)
        ctx.sink.set_json(orjson.dumps({  # type: ignore[union-attr]
            "object": "list", "data": [entry_json(e) for e in page.entries],
            "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor}))


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API_PREFIX + "/wallet", WalletHandler, kwargs),
        (API_PREFIX + "/wallet/transactions", WalletTransactionsHandler, kwargs),
    ]
