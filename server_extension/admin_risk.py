"""Admin API, risk & policy: rate limits, IP rules (global and per org) and model policies
(:mod:`deepspace_lab.policy.service`, versioned with history), and budget caps
(:mod:`deepspace_lab.billing.budgets`, with this period's spend) — the data the pipeline
enforces, checked by the same functions, with the same codes, as ``deepspace-lab policy`` and
``deepspace-lab budget``. A change takes effect on the next request in every process (the
policy epoch; budgets are read inside each hold).

Org admins may read their org's (no global rules); changes are the platform admins'.
"""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.billing import budget_scope_id, delete_budget, set_budget
from deepspace_lab.billing.budgets import BudgetNotFoundError, page_budgets
from deepspace_lab.billing.models import BUDGET_PERIODS, BUDGET_SCOPES, Budget
from deepspace_lab.db.paging import check_limit
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.policy.models import POLICY_KINDS, POLICY_SCOPES
from deepspace_lab.policy.service import PolicyNotFoundError, delete_policy, page_policies, set_policy
from deepspace_lab.runtime import Runtime

from .admin_accounts import BOOL, PATH_ID, admin_params, flag
from .admin_api import ADMIN, AdminHandler
from .api import field, json_body, principal_of, query_params
from .openapi import ID, NSTR, NTIME, PAGING, STR, TIME, listing, obj, op, path_id, ref

POLICY_FIELDS = ("kind", "scope", "scope_id", "cidr", "spec")
BUDGET_FIELDS = ("org_id", "scope", "scope_id", "period", "limit_micros")


class _Page(TypedDict):
    after_id: int | None
    limit: int


def _page(params: dict[str, str]) -> _Page:
    """``after_id`` and ``limit`` from ``cursor`` (the ``next_cursor`` of the page before: a row id)
    and ``limit``."""
    cursor = params.get("cursor")
    if cursor is not None and (not cursor.isdigit() or not cursor.isascii() or len(cursor) > 18):
        raise InvalidRequest("malformed cursor; pass back `next_cursor` as it was given", code="invalid_cursor",
                             param="cursor")
    return {"after_id": int(cursor) if cursor is not None else None, "limit": check_limit(params.get("limit"))}


def _next(after_id: int | None) -> str | None:
    return None if after_id is None else str(after_id)


def _int_id(text: str, error: type[Exception], name: str) -> int:
    """A path id that must be a row number; anything else names nothing."""
    if not text.isdigit() or len(text) > 18:
        raise error(f"no {name} {text!r}")
    return int(text)


class PoliciesHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("org_id", "kind", "history", "cursor", "limit"))
            kind = params.get("kind")
            if kind is not None and kind not in POLICY_KINDS:
                raise InvalidRequest(f"`kind` is one of {list(POLICY_KINDS)}", code="invalid_value", param="kind")
            scope = self.org_scope(ctx)
            policies, nxt = await page_policies(
                session, org_id=self.target_org(ctx, params.get("org_id")), kind=kind,
                history=bool(flag(params, "history")), include_global=scope is None, **_page(params))
            return 200, {"data": [p.to_dict() for p in policies], "next_cursor": _next(nxt)}

        await self.admin(kind="admin.policies.list", work=work)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("kind", "scope", "spec"), allowed=POLICY_FIELDS)
            after, before = await set_policy(
                session, kind=field(body, "kind", str), scope=field(body, "scope", str),
                scope_id=field(body, "scope_id", str, ""), spec=field(body, "spec", dict),
                subject=field(body, "cidr", str, ""), actor=principal_of(ctx).actor)
            changed = before is None or before.id != after.id
            ctx.detail.update(policy_id=after.id, target_org_id=after.org_id, changed=changed,
                              before=before.to_dict() if before else None, after=after.to_dict())
            return 200, {"policy": after.to_dict(), "before": before.to_dict() if before else None,
                         "changed": changed}

        await self.admin(kind="admin.policies.set", work=work, write=True, org_admins=False)


class PolicyHandler(AdminHandler):
    async def delete(self, policy_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            gone = await delete_policy(session, policy_id=_int_id(policy_id, PolicyNotFoundError, "policy"),
                                       actor=principal_of(ctx).actor)
            ctx.detail.update(policy_id=gone.id, target_org_id=gone.org_id, before=gone.to_dict(), after=None)
            return 200, {"deleted": gone.to_dict()}

        await self.admin(kind="admin.policies.delete", work=work, write=True, org_admins=False)


class BudgetsHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("org_id", "cursor", "limit"))
            budgets, nxt = await page_budgets(session, org_id=self.target_org(ctx, params.get("org_id")),
                                              **_page(params))
            return 200, {"data": [b.to_dict() for b in budgets], "next_cursor": _next(nxt)}

        await self.admin(kind="admin.budgets.list", work=work)

    async def put(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("org_id", "scope", "period", "limit_micros"), allowed=BUDGET_FIELDS)
            org_id, scope = field(body, "org_id", str), field(body, "scope", str)
            subject = await budget_scope_id(session, org_id=org_id, scope=scope,
                                            scope_id=field(body, "scope_id", str))
            after, before = await set_budget(session, org_id=org_id, scope=scope, scope_id=subject,
                                             period=field(body, "period", str),
                                             limit_micros=field(body, "limit_micros", int),
                                             actor=principal_of(ctx).actor)
            ctx.detail.update(budget_id=after.id, target_org_id=org_id,
                              before=before.to_dict() if before else None, after=after.to_dict())
            return 200, {"budget": after.to_dict(), "before": before.to_dict() if before else None}

        await self.admin(kind="admin.budgets.set", work=work, write=True, org_admins=False)


class BudgetHandler(AdminHandler):
    async def delete(self, budget_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            row = await session.get(Budget, _int_id(budget_id, BudgetNotFoundError, "budget"))
            if row is None:
                raise BudgetNotFoundError(f"no budget {budget_id!r}")
            gone = await delete_budget(session, org_id=row.org_id, scope=row.scope, scope_id=row.scope_id,
                                       period=row.period)
            ctx.detail.update(budget_id=gone.id, target_org_id=gone.org_id, before=gone.to_dict(), after=None)
            return 200, {"deleted": gone.to_dict()}

        await self.admin(kind="admin.budgets.delete", work=work, write=True, org_admins=False)


_POLICY = {"id": {"type": "integer"}, "kind": {"enum": list(POLICY_KINDS)}, "org_id": NSTR,
           "scope": {"enum": list(POLICY_SCOPES)}, "scope_id": STR, "subject": NSTR, "spec": {"type": "object"},
           "actor": NSTR, "created_at": TIME, "ended_at": NTIME, "ended_by": NSTR, "in_force": {"type": "boolean"}}
_BUDGET = {"id": {"type": "integer"}, "org_id": STR, "scope": {"enum": list(BUDGET_SCOPES)}, "scope_id": STR,
           "period": {"enum": list(BUDGET_PERIODS)}, "limit_micros": {"type": "integer"},
           "spent_micros": {"type": "integer"}, "reserved_micros": {"type": "integer"},
           "remaining_micros": {"type": "integer"}, "period_start": NTIME}
_MAYBE_POLICY = {"oneOf": [ref("Policy"), {"type": "null"}]}
_MAYBE_BUDGET = {"oneOf": [ref("Budget"), {"type": "null"}]}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "Policy": obj(_POLICY, list(_POLICY)),
    "PolicyPage": listing("Policy", paged=True),
    "NewPolicy": obj({
        "kind": {"enum": list(POLICY_KINDS)}, "scope": {"enum": list(POLICY_SCOPES)},
        "scope_id": {"type": "string", "maxLength": 40, "description": "the org, project or key (not for global)"},
        "cidr": {"type": "string", "maxLength": 64, "description": "ip_rule: an address or CIDR"},
        "spec": {"type": "object", "description": "rate_limit {rpm, tpm, concurrency}; ip_rule {action: allow|deny};"
                                                  " model_policy {allow: [model, ...]}"}},
        ["kind", "scope", "spec"]),
    "PolicyChange": obj({"policy": ref("Policy"), "before": _MAYBE_POLICY, "changed": {"type": "boolean"}},
                        ["policy", "before", "changed"]),
    "PolicyDeleted": obj({"deleted": ref("Policy")}, ["deleted"]),
    "Budget": obj(_BUDGET, list(_BUDGET)),
    "BudgetPage": listing("Budget", paged=True),
    "BudgetCap": obj({"org_id": ID, "scope": {"enum": list(BUDGET_SCOPES)},
                      "scope_id": {**ID, "description": "the project or key (an org budget: the org, or leave out)"},
                      "period": {"enum": list(BUDGET_PERIODS)},
                      "limit_micros": {"type": "integer", "minimum": 0, "maximum": 2**53}},
                     ["org_id", "scope", "period", "limit_micros"]),
    "BudgetChange": obj({"budget": ref("Budget"), "before": _MAYBE_BUDGET}, ["budget", "before"]),
    "BudgetDeleted": obj({"deleted": ref("Budget")}, ["deleted"]),
}


def openapi_paths() -> dict[str, Any]:
    org = {"name": "org_id", "in": "query", "required": False, "schema": ID}
    return {
        f"{ADMIN}/policies": {
            "get": op("Rate limits, IP rules and model policies in force (with history=true, every version; org "
                      "admins: their org's)", "200", "PolicyPage", errors=("404",), params=[*PAGING,
                          org, {"name": "kind", "in": "query", "required": False, "schema": {
                              "enum": list(POLICY_KINDS)}},
                          {"name": "history", "in": "query", "required": False, "schema": BOOL}]),
            "post": op("Put a policy in force (the version it replaces goes to history); the next request sees it",
                       "200", "PolicyChange", body="NewPolicy", errors=("404", "409"))},
        f"{ADMIN}/policies/{{policy_id}}": {"delete": op(
            "End a policy (kept in history)", "200", "PolicyDeleted", errors=("404",),
            params=[path_id("policy_id")])},
        f"{ADMIN}/budgets": {
            "get": op("Budget caps with this period's spend (org admins: their org's)", "200", "BudgetPage",
                      errors=("404",), params=[org, *PAGING]),
            "put": op("Create or change a budget cap", "200", "BudgetChange", body="BudgetCap", errors=("404",))},
        f"{ADMIN}/budgets/{{budget_id}}": {"delete": op(
            "Remove a budget cap", "200", "BudgetDeleted", errors=("404",), params=[path_id("budget_id")])},
    }


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (ADMIN + "/policies", PoliciesHandler, kwargs),
        (ADMIN + "/policies/" + PATH_ID, PolicyHandler, kwargs),
        (ADMIN + "/budgets", BudgetsHandler, kwargs),
        (ADMIN + "/budgets/" + PATH_ID, BudgetHandler, kwargs),
    ]
