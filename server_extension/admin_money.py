"""The Admin API's money area: the models catalog and its prices, wallets, ledger entries and
redeemable credit codes (``/deepspace/admin/api/…``).

Thin: the billing and catalog services validate and do the work. The catalog, prices, money
changes and credit codes are for platform admins; org admins may read their own org's wallet
and ledger entries. A credit or debit is idempotent by its ``Idempotency-Key`` header (or
``ref`` in the body), used as the ledger entry's ref: a double click replays the first entry.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth.models import Org
from deepspace_lab.billing import (
    ENTRY_FILTERS,
    OrgNotFoundError,
    create_batch,
    credit_wallet,
    debit_wallet,
    get_batch,
    get_wallet,
    list_batches,
    list_codes,
    list_entries,
    list_wallets,
    parse_time,
    price_history,
    revoke_batch,
    revoke_code,
    set_overdraft_limit,
    set_price,
)
from deepspace_lab.catalog import MODEL_FIELDS, add_model, get_model, list_models, update_model
from deepspace_lab.db.base import utcnow
from deepspace_lab.db.paging import check_limit
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from . import admin_money_docs
from .admin_api import ADMIN, AdminHandler
from .api import field, json_body, principal_of, query_params

Result = tuple[int, Any]
_REF = re.compile(r"[\x21-\x7e]{1,120}")
PAGE = ("limit", "cursor")


def actor_of(ctx: RequestContext) -> str:
    p = principal_of(ctx)
    return f"user:{p.user_id}" + (f" key:{p.api_key_id}" if p.api_key_id else "")


def model_json(info: Any) -> dict[str, Any]:
    return {"id": info.id, "object": "catalog_model", "name": info.name, "upstream_name": info.upstream_name,
            "enabled": info.enabled, "context_window": info.context_window, "modalities": list(info.modalities),
            "description": info.description, "owned_by": info.owned_by, "created": info.created}


def _time(body: dict[str, Any], name: str) -> Any:
    raw = field(body, name, str)
    return parse_time(raw, param=name) if raw is not None else None


def _page(handler: AdminHandler, *extra: str) -> tuple[dict[str, str], int, str | None]:
    params = query_params(handler, allowed=PAGE + extra)
    return params, check_limit(params.get("limit")), params.get("cursor") or None


def _no_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """A body whose optional fields, when given, are not null (absent means "leave as is")."""
    for name, value in body.items():
        if value is None:
            raise InvalidRequest(f"`{name}` cannot be null; leave it out instead", code="invalid_type", param=name)
    return body


async def _org_exists(session: AsyncSession, org_id: str) -> None:
    if await session.get(Org, org_id) is None:
        raise OrgNotFoundError(f"no org {org_id!r}", param="org_id")


# -- models and prices ------------------------------------------------------------------------
class ModelsHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            query_params(self, allowed=())
            return 200, {"object": "list", "data": [model_json(m) for m in await list_models(
                session, enabled_only=False)]}

        await self.admin(kind="admin.models.list", work=work, org_admins=False)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            body = _no_nulls(json_body(ctx, required=("name",), allowed=("name", *MODEL_FIELDS)))
            info = await add_model(session, **body)
            ctx.detail.update(before=None, after=model_json(info))
            return 201, model_json(info)

        await self.admin(kind="admin.models.create", work=work, write=True, org_admins=False)


class ModelHandler(AdminHandler):
    async def get(self, model_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            query_params(self, allowed=())
            return 200, model_json(await get_model(session, model_id))

        await self.admin(kind="admin.models.read", work=work, org_admins=False)

    async def patch(self, model_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            body = _no_nulls(json_body(ctx, allowed=MODEL_FIELDS))
            before, after = await update_model(session, model_id=model_id, **body)
            ctx.detail.update(model_id=model_id, before=model_json(before), after=model_json(after))
            return 200, model_json(after)

        await self.admin(kind="admin.models.update", work=work, write=True, org_admins=False)


class ModelPricesHandler(AdminHandler):
    async def get(self, model_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            query_params(self, allowed=())
            model = await get_model(session, model_id)
            history = await price_history(session, model_name=model.name)
            now = utcnow()
            current = next((v.id for v in history if v.effective_at <= now), None)
            return 200, {"object": "list", "model": model.name, "data": [
                dict(v.to_dict(), object="price", in_force=v.id == current, scheduled=v.effective_at > now,
                     actor=v.actor) for v in history]}

        await self.admin(kind="admin.prices.list", work=work, org_admins=False)

    async def post(self, model_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            body = json_body(ctx, allowed=("input_micros_per_mtok", "output_micros_per_mtok", "effective_at",
                                           "free"))
            model = await get_model(session, model_id)
            history = await price_history(session, model_name=model.name)
            version, created = await set_price(
                session, model_name=model.name, input_micros_per_mtok=field(body, "input_micros_per_mtok", int, 0),
                output_micros_per_mtok=field(body, "output_micros_per_mtok", int, 0),
                effective_at=_time(body, "effective_at"), free=field(body, "free", bool, False),
                actor=actor_of(ctx))
            before = next((v.to_dict() for v in history if v.effective_at <= version.effective_at), None)
            ctx.detail.update(model=model.name, before=before, after=version.to_dict(), created=created)
            return (201 if created else 200), dict(version.to_dict(), object="price", created=created,
                                                   scheduled=version.effective_at > utcnow())

        await self.admin(kind="admin.prices.set", work=work, write=True, org_admins=False)


# -- wallets and ledger entries ---------------------------------------------------------------
class WalletsHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            params, limit, cursor = _page(self, "org_id")
            org_id = self.target_org(ctx, params.get("org_id"))
            return 200, (await list_wallets(session, org_id=org_id, limit=limit, cursor=cursor)).to_dict()

        await self.admin(kind="admin.wallets.list", work=work)


class WalletHandler(AdminHandler):
    async def get(self, org_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            query_params(self, allowed=())
            org_id_ = self.target_org(ctx, org_id)
            assert org_id_ is not None
            await _org_exists(session, org_id_)
            return 200, dict((await get_wallet(session, org_id_)).to_dict(), object="wallet")

        await self.admin(kind="admin.wallets.read", work=work)


class WalletMoneyHandler(AdminHandler):
    """``POST …/wallets/{org_id}/credit|debit``: a ledger entry with a reason, once per ref."""

    async def post(self, org_id: str) -> None:
        await self._move(org_id, "credit")

    async def _move(self, org_id: str, verb: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            body = json_body(ctx, required=("amount_micros", "reason"), allowed=("amount_micros", "reason", "ref"))
            ref = self._ref(ctx, body)
            await _org_exists(session, org_id)
            before = await get_wallet(session, org_id)
            await session.rollback()  # ledger operations run their own transaction
            op = credit_wallet if verb == "credit" else debit_wallet
            entry = await op(session, org_id=org_id, amount_micros=body["amount_micros"], reason=body["reason"],
                             actor=actor_of(ctx), ref=ref, trace_id=ctx.trace_id, request_id=ctx.request_id)
            after = await get_wallet(session, org_id)
            ctx.detail.update(org_id=org_id, ref=entry.ref, entry_id=entry.id, replayed=entry.replayed,
                              amount_micros=entry.amount_micros, reason=entry.reason,
                              before=before.to_dict(), after=after.to_dict())
            return (200 if entry.replayed else 201), {"object": "ledger_operation", "entry": entry.to_dict(),
                                                      "wallet": after.to_dict(), "replayed": entry.replayed}

        await self.admin(kind=f"admin.wallets.{verb}", work=work, write=True, org_admins=False)

    def _ref(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        header = self.request.headers.get("Idempotency-Key")
        ref = field(body, "ref", str)
        if header is not None and ref is not None and header != ref:
            raise InvalidRequest("`ref` and the Idempotency-Key header differ; send one", code="ref_mismatch",
                                 param="ref")
        chosen = ref if ref is not None else header
        if chosen is None:
            raise InvalidRequest("send an Idempotency-Key header (or `ref`) so that a retry cannot move money "
                                 "twice", code="missing_idempotency_key", param="Idempotency-Key")
        if not _REF.fullmatch(chosen):
            raise InvalidRequest("the Idempotency-Key (or `ref`) is 1-120 printable ASCII characters, no spaces",
                                 code="invalid_idempotency_key", param="Idempotency-Key")
        return chosen


class WalletDebitHandler(WalletMoneyHandler):
    async def post(self, org_id: str) -> None:
        await self._move(org_id, "debit")


class OverdraftHandler(AdminHandler):
    async def put(self, org_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            body = json_body(ctx, required=("limit_micros", "reason"), allowed=("limit_micros", "reason"))
            reason = field(body, "reason", str)
            if not reason.strip() or len(reason) > 500:
                raise InvalidRequest("`reason` is a text of 1 to 500 characters", code="invalid_reason",
                                     param="reason")
            await _org_exists(session, org_id)
            await session.rollback()
            before, after = await set_overdraft_limit(session, org_id=org_id, limit_micros=body["limit_micros"])
            ctx.detail.update(org_id=org_id, reason=reason, before=before.to_dict(), after=after.to_dict())
            return 200, dict(after.to_dict(), object="wallet")

        await self.admin(kind="admin.wallets.overdraft", work=work, write=True, org_admins=False)


class TransactionsHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            params, limit, cursor = _page(self, "org_id", *ENTRY_FILTERS)
            org_id = self.target_org(ctx, params.get("org_id"))
            times = {n: parse_time(params[n], param=n) for n in ("since", "until") if n in params}
            page = await list_entries(session, org_id=org_id, limit=limit, cursor=cursor, type=params.get("type"),
                                      ref=params.get("ref"), trace_id=params.get("trace_id"), **times)
            return 200, {"object": "list", **page.to_dict()}

        await self.admin(kind="admin.transactions.list", work=work)


# -- credit codes -----------------------------------------------------------------------------
class CodeBatchesHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            _, limit, cursor = _page(self)
            return 200, (await list_batches(session, limit=limit, cursor=cursor)).to_dict()

        await self.admin(kind="admin.codes.list", work=work, org_admins=False)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            body = json_body(ctx, required=("count", "amount_micros"),
                             allowed=("count", "amount_micros", "expires_at", "org_id", "note"))
            batch, codes = await create_batch(
                session, secret_key=self.runtime.settings.require_secret_key(), count=body["count"],
                amount_micros=body["amount_micros"], expires_at=_time(body, "expires_at"),
                org_id=field(body, "org_id", str), note=field(body, "note", str, ""), actor=actor_of(ctx))
            ctx.detail.update(before=None, after=batch.to_dict())  # never the codes
            return 201, {"batch": batch.to_dict(), "codes": codes}

        await self.admin(kind="admin.codes.create", work=work, write=True, org_admins=False)


class CodeBatchHandler(AdminHandler):
    async def get(self, batch_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            query_params(self, allowed=())
            return 200, (await get_batch(session, batch_id)).to_dict()

        await self.admin(kind="admin.codes.read", work=work, org_admins=False)


class CodeBatchCodesHandler(AdminHandler):
    async def get(self, batch_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            params, limit, cursor = _page(self, "state")
            page = await list_codes(session, batch_id=batch_id, state=params.get("state"), limit=limit,
                                    cursor=cursor)
            return 200, page.to_dict()

        await self.admin(kind="admin.codes.codes", work=work, org_admins=False)


class RevokeBatchHandler(AdminHandler):
    async def post(self, batch_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            json_body(ctx, allowed=())
            before, after = await revoke_batch(session, batch_id=batch_id)
            ctx.detail.update(batch_id=batch_id, before=before.to_dict(), after=after.to_dict())
            return 200, after.to_dict()

        await self.admin(kind="admin.codes.revoke_batch", work=work, write=True, org_admins=False)


class RevokeCodeHandler(AdminHandler):
    async def post(self, code_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> Result:
            json_body(ctx, allowed=())
            before, after = await revoke_code(session, code_id=code_id)
            ctx.detail.update(code_id=code_id, before=before.to_dict(), after=after.to_dict())
            return 200, after.to_dict()

        await self.admin(kind="admin.codes.revoke", work=work, write=True, org_admins=False)


OPENAPI_SCHEMAS = admin_money_docs.SCHEMAS


def openapi_paths() -> dict[str, Any]:
    return admin_money_docs.paths()


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kw = {"runtime": runtime}
    seg = r"([A-Za-z0-9_]{1,40})"
    return [
        (ADMIN + "/models", ModelsHandler, kw),
        (ADMIN + f"/models/{seg}", ModelHandler, kw),
        (ADMIN + f"/models/{seg}/prices", ModelPricesHandler, kw),
        (ADMIN + "/wallets", WalletsHandler, kw),
        (ADMIN + f"/wallets/{seg}", WalletHandler, kw),
        (ADMIN + f"/wallets/{seg}/credit", WalletMoneyHandler, kw),
        (ADMIN + f"/wallets/{seg}/debit", WalletDebitHandler, kw),
        (ADMIN + f"/wallets/{seg}/overdraft", OverdraftHandler, kw),
        (ADMIN + "/transactions", TransactionsHandler, kw),
        (ADMIN + "/credit-code-batches", CodeBatchesHandler, kw),
        (ADMIN + f"/credit-code-batches/{seg}", CodeBatchHandler, kw),
        (ADMIN + f"/credit-code-batches/{seg}/codes", CodeBatchCodesHandler, kw),
        (ADMIN + f"/credit-code-batches/{seg}/revoke", RevokeBatchHandler, kw),
        (ADMIN + f"/credit-codes/{seg}/revoke", RevokeCodeHandler, kw),
    ]
