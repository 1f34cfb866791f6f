"""The risk and policy steps: ``ip_rules`` at the door, ``rate_limit`` before the hold,
``policy`` (the model policy) after it. All three are core steps: fixed, never skipped.

- ``ip_rules`` reads the policies in force (one small read; see :mod:`deepspace_lab.policy.cache`)
  and refuses a globally denied address before the credential is looked up; the auth step
  then applies the caller's org rules as soon as the credential names the org.
- ``rate_limit`` applies the org's, project's and key's limits — requests and tokens per
  minute over a sliding window, requests in flight — all or nothing, atomically across
  processes (:mod:`deepspace_lab.policy.limiter`): a request refused by one limit consumes
  none of the others. Tokens count at the hold's worst case and are corrected to what the
  capture counted. A request that a later limit refuses (no funds, a budget cap, the model
  policy) gets its consumption back. While Redis cannot be reached the deployment's
  ``rate_limit_failure_mode`` decides: ``open`` admits (logged, and noted in the audit row),
  ``closed`` answers 503 ``rate_limiter_unavailable``; both recover by themselves.
- ``policy`` refuses a model the org or project may not use, after the hold, which
  ``budget_hold`` then releases: nothing is billed, and the refusal is audited.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..billing import list_budgets
from ..errors import DeepSpaceError, RateLimited, ServiceUnavailable
from ..policy.limiter import Limit, Limiter, LimiterUnavailable, Refusal
from ..policy.rules import PolicySnapshot
from .context import Next, PipelineServices, RequestContext
from .metering import worst_case_tokens
from .renewal import Renewal
from .steps import BaseStep

log = logging.getLogger("deepspace_lab.policy")

WINDOW_S = 60.0
#: Refusals by later steps that give the request's rate-limit consumption back.
REFUNDED = frozenset({"insufficient_funds", "budget_exceeded", "model_not_allowed"})
_WHAT = {"rpm": ("requests per minute", "requests"), "tpm": ("tokens per minute", "tokens"),
         "conc": ("concurrent requests", "requests in flight")}


class RateLimitExceededError(RateLimited):
    """429 ``rate_limited`` with ``Retry-After``."""

    default_code = "rate_limited"


class RequestOverLimitError(RateLimited):
    """429 ``rate_limited`` that no wait can fix: the request alone needs more than the limit."""

    default_code = "rate_limited"
    retryable = False


async def snapshot(services: PipelineServices, ctx: RequestContext) -> PolicySnapshot:
    if ctx.policies is None:
        assert services.policies is not None
        ctx.policies = await services.policies.current()
    return ctx.policies


class IpRulesStep(BaseStep):
    name = "ip_rules"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        if self.services.policies is not None:
            (await snapshot(self.services, ctx)).check_global_ip(ctx.client_address)
        await call_next(ctx)


def _refusal_error(refusal: Refusal) -> RateLimited:
    limit = refusal.limit
    kind, scope, _ = limit.key.split(":", 2)
    what, unit = _WHAT[kind]
    if math.isinf(refusal.retry_after_s):
        return RequestOverLimitError(
            f"this request alone needs {limit.cost} {unit}, more than this {scope}'s limit of {limit.limit} "
            f"{what}; ask for fewer tokens (max_tokens) or a higher limit")
    return RateLimitExceededError(
        f"this {scope}'s limit of {limit.limit} {what} is reached ({refusal.used} {unit} counted); "
        f"retry after {max(1, math.ceil(refusal.retry_after_s))} s", retry_after_s=max(refusal.retry_after_s, 1.0))


def caller_limits(snap: PolicySnapshot, ctx: RequestContext, *, lease_s: float,
                  tokens: Callable[[], int] = lambda: 1) -> list[Limit]:
    """The limits of the caller's org, project and key, in that order (rpm, tpm, in flight for
    each); ``tokens()``, the request's token count, is only worked out when a tpm limit applies."""
    principal = ctx.principal
    assert principal is not None
    return scope_limits(snap, org_id=principal.org_id, project_id=principal.project_id,
                        api_key_id=principal.api_key_id, lease_s=lease_s, tokens=tokens)


def scope_limits(snap: PolicySnapshot, *, org_id: str, project_id: str | None, api_key_id: str | None,
                 lease_s: float, tokens: Callable[[], int] = lambda: 1) -> list[Limit]:
    """The limits of an org, a project and a key, in that order (rpm, tpm, in flight for each)."""
    limits: list[Limit] = []
    cost: int | None = None
    for scope, scope_id, spec in snap.rate_specs(org_id=org_id, project_id=project_id, api_key_id=api_key_id):
        if spec.rpm:
            limits.append(Limit(f"rpm:{scope}:{scope_id}", "window", spec.rpm, WINDOW_S, 1))
        if spec.tpm:
            cost = tokens() if cost is None else cost
            limits.append(Limit(f"tpm:{scope}:{scope_id}", "window", spec.tpm, WINDOW_S, cost))
        if spec.concurrency:
            limits.append(Limit(f"conc:{scope}:{scope_id}", "concurrency", spec.concurrency, lease_s))
    return limits


class RateLimitStep(BaseStep):
    name = "rate_limit"

    def __init__(self, services: PipelineServices) -> None:
        super().__init__(services)
        self._warned_at = -math.inf

    def limits_for(self, ctx: RequestContext, snap: PolicySnapshot) -> list[Limit]:
        chat, model = ctx.chat, ctx.model
        assert chat is not None and model is not None
        settings = self.services.settings

        def tokens() -> int:
            bound, out = worst_case_tokens(chat, context_window=model.context_window,
                                           default_cap=settings.default_max_output_tokens)
            return bound + out

        return caller_limits(snap, ctx, lease_s=settings.hold_lease_s, tokens=tokens)

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        limiter = self.services.limiter
        limits = self.limits_for(ctx, await snapshot(self.services, ctx)) if limiter is not None else []
        if not limits or limiter is None:
            await call_next(ctx)
            return
        try:
            refusal = await limiter.acquire(ctx.request_id, limits)
        except LimiterUnavailable:
            self._unavailable(ctx)
            await call_next(ctx)
            return
        if refusal is not None:
            ctx.detail["rate_limited_by"] = refusal.limit.key  # e.g. "rpm:key:<id>", for the risk views
            raise _refusal_error(refusal)
        slots = [lim for lim in limits if lim.kind == "concurrency"]
        renewer = Renewal(functools.partial(limiter.renew, ctx.request_id, slots), lease_s=slots[0].window_s,
                          what=f"the slots of {ctx.request_id}") if slots else None
        code: str | None = None
        try:
            await call_next(ctx)
        except BaseException as exc:
            code = exc.code if isinstance(exc, DeepSpaceError) else "internal_error"
            raise
        finally:
            if renewer is not None:
                renewer.stop()
            await self._finish(limiter, ctx, limits, code or ctx.error_code)

    def _unavailable(self, ctx: RequestContext) -> None:
        if self.services.settings.rate_limit_failure_mode == "closed":
            raise ServiceUnavailable("rate limits cannot be checked right now (the limiter's Redis is unreachable); "
                                     "retry shortly", code="rate_limiter_unavailable", retry_after_s=2)
        ctx.detail["rate_limit"] = "unavailable"
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning("rate limiter unavailable (Redis unreachable): admitting requests without limits "
                        "(DEEPSPACE_RATE_LIMIT_FAILURE_MODE=open)")

    async def _finish(self, limiter: Limiter, ctx: RequestContext, limits: list[Limit], code: str | None) -> None:
        """Free the request's slots; give everything back if a later limit refused it, else
        correct its tokens to what the capture counted."""
        refund = code in REFUNDED
        used = ctx.billing.tokens_used if ctx.billing is not None else 0
        tokens = {lim.key: used for lim in limits if lim.key.startswith("tpm:") and lim.cost != used}
        try:
            await limiter.release(ctx.request_id, limits, refund=refund, final_costs=tokens)
        except LimiterUnavailable:
            log.warning("could not settle rate-limit counters of %s (Redis unreachable); its slots lapse "
                        "with their lease", ctx.request_id)


class ModelPolicyStep(BaseStep):
    name = "policy"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        principal, model = ctx.principal, ctx.model
        assert principal is not None and model is not None
        if self.services.policies is not None:
            (await snapshot(self.services, ctx)).check_model(model.name, org_id=principal.org_id,
                                                             project_id=principal.project_id)
        await call_next(ctx)


async def limits_view(services: PipelineServices, ctx: RequestContext) -> dict[str, Any]:
    """What limits the caller is under, and how much of each it is using now: rate limits of
    its org, project and key (current window or requests in flight), budget caps with this
    period's spend, and the models it may use (None: any enabled model)."""
    principal = ctx.principal
    assert principal is not None
    snap = await snapshot(services, ctx)
    rates = await rate_usage(services, snap, org_id=principal.org_id, project_id=principal.project_id,
                             api_key_id=principal.api_key_id)
    scopes = [s for s in (principal.org_id, principal.project_id, principal.api_key_id) if s]
    async with services.sessions() as session:
        budgets = await list_budgets(session, org_id=principal.org_id, scopes=scopes)
    return {"object": "limits", "rate_limits": rates, "budgets": [b.to_dict() for b in budgets],
            "allowed_models": snap.allowed_models(org_id=principal.org_id, project_id=principal.project_id),
            "rate_limiter": "redis" if services.settings.redis_url else "in-process"}


async def rate_usage(services: PipelineServices, snap: PolicySnapshot, *, org_id: str, project_id: str | None,
                     api_key_id: str | None) -> list[dict[str, Any]]:
    """The rate limits of an org, a project and a key, each with how much of it is used now
    (``used``: the current window's count, or the requests in flight; null when the limiter
    cannot be read) — what the caller's next request is checked against."""
    limits = scope_limits(snap, org_id=org_id, project_id=project_id, api_key_id=api_key_id,
                          lease_s=services.settings.hold_lease_s)
    rates: list[dict[str, Any]] = []
    for limit in limits:
        kind, scope, scope_id = limit.key.split(":", 2)
        rates.append({"scope": scope, "scope_id": scope_id, "limit": _NAMES[kind], "max": limit.limit,
                      "window_s": WINDOW_S if limit.kind == "window" else None})
    usage: list[int | None] = [None] * len(limits)
    if limits and services.limiter is not None:
        try:
            usage = list(await services.limiter.usage(limits))
        except LimiterUnavailable:
            pass  # shown as null: the limiter cannot be read right now
    for row, used in zip(rates, usage, strict=True):
        row["used"] = used
    return rates


_NAMES = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute", "conc": "concurrent_requests"}
