"""The money calls — the Admin API's models catalog, prices, wallets, ledger entries and credit
codes, and the product API's code redemption and statements — shared by the
sync and the async client.

:class:`MoneyCalls` is a mixin over the client's ``_send``: on :class:`DeepSpaceClient` each
method returns the answer, on :class:`AsyncDeepSpaceClient` an awaitable of it. Answers are the
Admin API's JSON (see its OpenAPI document); money is integer micro-credits.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._base import API, Call

ADMIN = "/deepspace/admin/api"
R = TypeVar("R")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class MoneyCalls(Generic[R]):
    def _send(self, call: Call) -> R:  # provided by the client
        raise NotImplementedError

    # -- product API ----------------------------------------------------------------------
    def redeem_code(self, code: str) -> R:
        """Redeem a credit code into your org's wallet: ``{amount_micros, balance_micros, …}``."""
        return self._send(Call("POST", API + "/wallet/redeem", json={"code": code}))

    def request_statement(self, month: str) -> R:
        """Queue your org's monthly statement (``YYYY-MM``): the Worker job (poll ``job(id)``); when
        done its ``result["files"]`` name the Markdown and CSV files (read them with
        ``file_content(file_id)``)."""
        return self._send(Call("POST", API + "/statements", json={"month": month}))

    # -- Admin API: models and prices -----------------------------------------------------
    def admin_models(self) -> R:
        return self._send(Call("GET", ADMIN + "/models"))

    def admin_add_model(self, name: str, **fields: Any) -> R:
        """Fields: upstream_name, context_window, modalities, description, enabled."""
        return self._send(Call("POST", ADMIN + "/models", json={"name": name, **fields}))

    def admin_model(self, model_id: str) -> R:
        return self._send(Call("GET", f"{ADMIN}/models/{model_id}"))

    def admin_update_model(self, model_id: str, **changes: Any) -> R:
        """Changes: enabled, upstream_name, context_window, modalities, description."""
        return self._send(Call("PATCH", f"{ADMIN}/models/{model_id}", json=changes))

    def admin_prices(self, model_id: str) -> R:
        """The model's price history, newest first; ``in_force`` marks the version used now."""
        return self._send(Call("GET", f"{ADMIN}/models/{model_id}/prices"))

    def admin_set_price(self, model_id: str, *, input_micros_per_mtok: int = 0, output_micros_per_mtok: int = 0,
                        effective_at: str | None = None, free: bool = False) -> R:
        body = _params(input_micros_per_mtok=input_micros_per_mtok, output_micros_per_mtok=output_micros_per_mtok,
                       effective_at=effective_at, free=free)
        return self._send(Call("POST", f"{ADMIN}/models/{model_id}/prices", json=body))

    # -- Admin API: wallets and ledger entries --------------------------------------------
    def admin_wallets(self, *, org_id: str | None = None, limit: int | None = None, cursor: str | None = None) -> R:
        return self._send(Call("GET", ADMIN + "/wallets", params=_params(org_id=org_id, limit=limit, cursor=cursor)))

    def admin_wallet(self, org_id: str) -> R:
        return self._send(Call("GET", f"{ADMIN}/wallets/{org_id}"))

    def admin_credit(self, org_id: str, *, amount_micros: int, reason: str, idempotency_key: str) -> R:
        """Credit a wallet; the same ``idempotency_key`` again replays the first entry."""
        return self._money(org_id, "credit", amount_micros, reason, idempotency_key)

    def admin_debit(self, org_id: str, *, amount_micros: int, reason: str, idempotency_key: str) -> R:
        return self._money(org_id, "debit", amount_micros, reason, idempotency_key)

    def _money(self, org_id: str, verb: str, amount_micros: int, reason: str, idempotency_key: str) -> R:
        return self._send(Call("POST", f"{ADMIN}/wallets/{org_id}/{verb}",
                               json={"amount_micros": amount_micros, "reason": reason},
                               headers={"Idempotency-Key": idempotency_key}))

    def admin_set_overdraft(self, org_id: str, *, limit_micros: int, reason: str) -> R:
        return self._send(Call("PUT", f"{ADMIN}/wallets/{org_id}/overdraft",
                               json={"limit_micros": limit_micros, "reason": reason}))

    def admin_transactions(self, **filters: Any) -> R:
        """Filters: org_id, type, since, until, ref, trace_id, limit, cursor."""
        return self._send(Call("GET", ADMIN + "/transactions", params=_params(**filters)))

    # -- Admin API: credit codes ----------------------------------------------------------
    def admin_create_codes(self, *, count: int, amount_micros: int, expires_at: str | None = None,
                           org_id: str | None = None, note: str | None = None) -> R:
        """A batch of codes: ``{"batch": …, "codes": [...]}`` — the codes are in this answer only."""
        body = _params(count=count, amount_micros=amount_micros, expires_at=expires_at, org_id=org_id, note=note)
        return self._send(Call("POST", ADMIN + "/credit-code-batches", json=body))

    def admin_code_batches(self, *, limit: int | None = None, cursor: str | None = None) -> R:
        return self._send(Call("GET", ADMIN + "/credit-code-batches", params=_params(limit=limit, cursor=cursor)))

    def admin_code_batch(self, batch_id: str) -> R:
        return self._send(Call("GET", f"{ADMIN}/credit-code-batches/{batch_id}"))

    def admin_codes(self, batch_id: str, *, state: str | None = None, limit: int | None = None,
                    cursor: str | None = None) -> R:
        return self._send(Call("GET", f"{ADMIN}/credit-code-batches/{batch_id}/codes",
                               params=_params(state=state, limit=limit, cursor=cursor)))

    def admin_revoke_batch(self, batch_id: str) -> R:
        return self._send(Call("POST", f"{ADMIN}/credit-code-batches/{batch_id}/revoke"))

    def admin_revoke_code(self, code_id: str) -> R:
        return self._send(Call("POST", f"{ADMIN}/credit-codes/{code_id}/revoke"))
