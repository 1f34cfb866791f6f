"""The billing steps: ``budget_hold`` before the call, ``usage_capture`` around it.

Both are core steps (fixed, never skipped). Every request that reaches ``budget_hold`` ends
with exactly one usage row and one terminal ledger entry (DESIGN §12.6):

- ``budget_hold`` pins the model's price in force, holds the worst case — the prompt's upper
  bound plus the output cap (the caller's ``max_tokens``, else ``default_max_output_tokens``,
  which is then sent upstream so the model never outruns its hold) — and reserves it on every
  budget of the org, project and key, in one short transaction with the request's pending
  usage row. No funds → 402 ``insufficient_funds``; a cap reached → 429 ``budget_exceeded``;
  nothing changes in either case. Whatever happens after (an extension step refusing, a
  crash in a later step), its ``finally`` releases a hold nobody settled.
- ``usage_capture`` keeps the hold's lease alive while the call runs and, when it ends,
  captures what was used — the upstream's usage (``upstream``), the usage learned by
  draining a stream the client left (``drained``), or an estimate (``estimated``) when none
  came — at the pinned price, or releases the whole hold when the upstream failed before
  producing anything (``none``). The usage row is completed in the capture's own statement.

No transaction is open across the upstream call: the hold commits before it, the capture
after it. A settlement that cannot be written (the database is down) leaves the hold open;
reconciliation releases it when its lease lapses and marks the usage row ``unknown``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from ..billing import (
    CaptureExceedsHoldError,
    HoldAlreadyResolvedError,
    HoldExpiredError,
    PriceVersion,
    UsageOutcome,
    UsageStart,
    capture_hold,
    cost_micros,
    in_force,
    place_hold,
    price_history,
    release_hold,
    renew_hold_lease,
    scopes_of,
    top_up_hold,
)
from ..cache import TTLCache
from ..db.base import utcnow
from ..errors import DeepSpaceError
from .context import Next, PipelineServices, RequestContext
from .metering import RequestBilling, estimate_tokens, prompt_token_estimate, worst_case_tokens
from .renewal import Renewal
from .steps import BaseStep

log = logging.getLogger("deepspace_lab.billing")
#: What a non-streaming request cost (micro-credits); streams carry ``usage.cost_micros``.
COST_HEADER = "X-DeepSpace-Cost-Micros"


class BudgetHoldStep(BaseStep):
    name = "budget_hold"

    def __init__(self, services: PipelineServices) -> None:
        super().__init__(services)
        self._prices: TTLCache[tuple[PriceVersion, ...]] = TTLCache(ttl_s=services.settings.catalog_cache_ttl_s)

    async def price(self, model_name: str) -> PriceVersion:
        """The version in force now. Versions are cached per model for ``catalog_cache_ttl_s``
        (the whole history, so a version scheduled ahead starts on time)."""
        history = self._prices.get(model_name)
        if history is None:
            async with self.services.sessions() as session:
                history = await price_history(session, model_name=model_name)
            self._prices.put(model_name, history)
        return in_force(history, model_name=model_name, at=utcnow())

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        chat, model, principal = ctx.chat, ctx.model, ctx.principal
        assert chat is not None and model is not None and principal is not None
        price = await self.price(model.name)
        settings = self.services.settings
        bound, out = worst_case_tokens(chat, context_window=model.context_window,
                                       default_cap=settings.default_max_output_tokens)
        amount = cost_micros(price, tokens_in=bound, tokens_out=out)
        ctx.billing = billing = RequestBilling(ref=ctx.request_id, price=price, held_micros=amount)
        usage = UsageStart(request_id=ctx.request_id, trace_id=ctx.trace_id, model=model.name,
                           project_id=principal.project_id, user_id=principal.user_id,
                           api_key_id=principal.api_key_id, stream=chat.stream)
        async with self.services.sessions() as session:
            await place_hold(session, org_id=principal.org_id, ref=billing.ref, amount_micros=amount,
                             lease_s=settings.hold_lease_s, price_id=price.id, trace_id=ctx.trace_id,
                             request_id=ctx.request_id, usage=usage,
                             budget_scopes=scopes_of(org_id=principal.org_id, project_id=principal.project_id,
                                                     api_key_id=principal.api_key_id))
        ctx.detail["held_micros"] = amount
        try:
            await call_next(ctx)
        except BaseException as exc:
            await self._release_unsettled(ctx, exc)
            raise
        await self._release_unsettled(ctx, None)

    async def _release_unsettled(self, ctx: RequestContext, error: BaseException | None) -> None:
        """A refusal or failure before the call (or a step that never called on): nothing was
        used. ``settle`` does nothing if usage_capture already settled the hold."""
        await settle(self.services, ctx, UsageOutcome(measured="none", error_code=_code(ctx, error) or "not_called"))


async def grow_hold(services: PipelineServices, ctx: RequestContext, *, extra_prompt_tokens: int) -> int:
    """For extension steps that add input after the hold (RAG context, tool results): top the
    hold up to cover ``extra_prompt_tokens`` more prompt tokens (an upper bound, like the hold's)
    before the upstream call. Raises ``InsufficientFundsError`` or ``BudgetExceededError`` —
    the request then ends and its hold is released. Returns the micro-credits added."""
    billing = ctx.billing
    if billing is None:
        raise RuntimeError("grow_hold runs inside the chat pipeline, after budget_hold")
    amount = cost_micros(billing.price, tokens_in=extra_prompt_tokens, tokens_out=0)
    if amount == 0:
        return 0
    billing.top_ups += 1
    async with services.sessions() as session:
        await top_up_hold(session, hold_ref=billing.ref, ref=f"{billing.ref}:top-up:{billing.top_ups}",
                          amount_micros=amount, trace_id=ctx.trace_id, request_id=ctx.request_id)
    billing.held_micros += amount
    return amount


class UsageCaptureStep(BaseStep):
    """Keeps the hold's lease alive while the call runs (reconciliation only ever releases
    holds whose request is gone), then captures or releases it."""

    name = "usage_capture"

    async def _renew(self, ref: str) -> None:
        async with self.services.sessions() as session:
            await renew_hold_lease(session, ref=ref, lease_s=self.services.settings.hold_lease_s)

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        billing = ctx.billing
        assert billing is not None
        renewer = Renewal(functools.partial(self._renew, billing.ref), lease_s=self.services.settings.hold_lease_s,
                          what=f"the lease of hold {billing.ref}")
        try:
            await call_next(ctx)
        except BaseException as exc:
            renewer.stop()
            await settle(self.services, ctx, outcome_of(ctx, exc))
            raise
        renewer.stop()
        await settle(self.services, ctx, outcome_of(ctx, None))
        if billing.cost_micros is not None and ctx.sink is not None and not ctx.chat.stream:  # type: ignore[union-attr]
            ctx.sink.set_header(COST_HEADER, str(billing.cost_micros))


def _code(ctx: RequestContext, error: BaseException | None) -> str | None:
    if ctx.error_code is not None or error is None:
        return ctx.error_code
    return error.code if isinstance(error, DeepSpaceError) else "internal_error"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def outcome_of(ctx: RequestContext, error: BaseException | None) -> UsageOutcome:
    """What the call used, and how we know."""
    billing = ctx.billing
    assert billing is not None and ctx.chat is not None
    error_code = _code(ctx, error)
    if billing.cut is not None:
        error_code = billing.cut
    elif billing.client_left and error_code is None:
        error_code = "client_disconnected"
    usage = ctx.usage or {}
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    generated = billing.output_events if ctx.chat.stream else estimate_tokens(len((ctx.reply_text or "").encode()))
    delivered = billing.delivered_events if billing.delivered_events is not None else billing.output_events
    common: dict[str, Any] = {"finish_reason": ctx.finish_reason, "upstream_response_id": ctx.upstream_response_id,
                              "error_code": error_code}
    if prompt is not None and completion is not None:
        if not ctx.chat.stream:
            delivered = completion if ctx.reply_text is not None else 0
        elif error_code is None:
            delivered = completion
        return UsageOutcome(measured="drained" if billing.drained else "upstream", prompt_tokens=prompt,
                            completion_tokens=completion, delivered_tokens=min(delivered, completion), **common)
    if generated == 0:
        # No usage and no content (an error or a cut before the first token, an empty stream):
        # nothing is billed, not even the prompt — never a synthetic usage.
        return UsageOutcome(measured="none", **common)
    return UsageOutcome(measured="estimated", prompt_tokens=prompt_token_estimate(ctx.chat),
                        completion_tokens=generated, delivered_tokens=min(delivered, generated), **common)


async def settle(services: PipelineServices, ctx: RequestContext, outcome: UsageOutcome) -> None:
    """Capture (or release, when nothing was produced) the request's hold, once."""
    billing = ctx.billing
    assert billing is not None
    if billing.settled:
        return
    billing.settled = True
    billing.outcome = outcome
    cost = 0
    try:
        async with services.sessions() as session:
            if outcome.measured == "none":
                await release_hold(session, ref=billing.ref, outcome=outcome, reason="nothing was generated")
            else:
                cost = cost_micros(billing.price, tokens_in=outcome.prompt_tokens,
                                   tokens_out=outcome.completion_tokens)
                cost = await _capture(session, billing, cost, outcome)
    except HoldAlreadyResolvedError:
        # Only reconciliation resolves a request's hold besides us: its lease lapsed first.
        log.error("hold %s was already resolved (lease lapsed?); the request is not billed", billing.ref)
        return
    except Exception:
        log.exception("could not settle hold %s; reconciliation releases it when its lease lapses", billing.ref)
        return
    billing.cost_micros = cost
    billing.tokens_used = (outcome.prompt_tokens or 0) + (outcome.completion_tokens or 0)
    ctx.detail["cost_micros"] = cost
    ctx.detail["usage_measured"] = outcome.measured


async def _capture(session: Any, billing: RequestBilling, cost: int, outcome: UsageOutcome) -> int:
    try:
        await capture_hold(session, ref=billing.ref, amount_micros=cost, outcome=outcome)
        return cost
    except CaptureExceedsHoldError:
        # The upstream counted more than our upper bound and the balance cannot cover the
        # difference: charge what was held (the most the caller agreed to) and say so.
        log.error("hold %s: cost %d exceeds the hold %d and the balance; capturing the hold",
                  billing.ref, cost, billing.held_micros)
        capped = UsageOutcome(**{**_fields(outcome), "error_code": "cost_exceeds_hold"})
        await capture_hold(session, ref=billing.ref, amount_micros=billing.held_micros, outcome=capped)
        return billing.held_micros
    except HoldExpiredError:
        # The lease lapsed under us (a stalled process): the hold can only be released now.
        log.error("hold %s lapsed before its capture; releasing it", billing.ref)
        await release_hold(session, ref=billing.ref, reason="lease lapsed before capture",
                           outcome=UsageOutcome(**{**_fields(outcome), "error_code": "lease_expired"}))
        return 0


def _fields(outcome: UsageOutcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in UsageOutcome.__dataclass_fields__}
