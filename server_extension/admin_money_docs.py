"""The OpenAPI fragment of the Admin API's money area (:mod:`.admin_money`) and of the product
route that redeems a credit code."""

from __future__ import annotations

from typing import Any

from .admin_api import ADMIN
from .openapi import ID, NSTR, NTIME, PAGING, STR, TIME, obj, op, path_id, ref

INT = {"type": "integer"}
MICROS = {"type": "integer", "minimum": 1, "maximum": 2**53}
MODALITIES = {"type": "array", "minItems": 1, "uniqueItems": True,
              "items": {"enum": ["text", "image", "audio", "video", "file"]}}
ENTRY_TYPES = ["credit", "debit", "hold", "capture", "release", "refund"]
CODE_STATES = ["active", "redeemed", "revoked", "expired"]


def _paged(item: str) -> dict[str, Any]:
    return obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref(item)},
                "has_more": {"type": "boolean"}, "next_cursor": NSTR}, ["object", "data", "has_more", "next_cursor"])


def _q(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    return param | ({"description": description} if description else {})


_WALLET = {"org_id": STR, "wallet_id": NSTR, "balance_micros": INT, "frozen_micros": INT,
           "overdraft_limit_micros": INT, "available_micros": INT}
_ENTRY = {"id": INT, "type": {"enum": ENTRY_TYPES}, "ref": STR, "org_id": STR, "wallet_id": STR, "hold_id": NSTR,
          "amount_micros": INT, "balance_after_micros": {"type": ["integer", "null"]},
          "frozen_after_micros": {"type": ["integer", "null"]}, "refund_of": {"type": ["integer", "null"]},
          "reason": NSTR, "actor": NSTR, "trace_id": NSTR, "request_id": NSTR, "created_at": TIME,
          "replayed": {"type": "boolean"}}
_MODEL_FIELDS = {"upstream_name": {"type": "string", "minLength": 1, "maxLength": 200}, "enabled": {"type": "boolean"},
                 "context_window": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                 "modalities": MODALITIES, "description": {"type": "string", "maxLength": 500}}
_PRICE = {"id": INT, "object": {"const": "price"}, "model": STR, "input_micros_per_mtok": INT,
          "output_micros_per_mtok": INT, "effective_at": TIME, "free": {"type": "boolean"}}
_BATCH = {"id": STR, "object": {"const": "credit_code_batch"}, "amount_micros": INT, "count": INT,
          "expires_at": NTIME, "org_id": NSTR, "note": STR, "created_by": NSTR, "created_at": TIME,
          "revoked_at": NTIME, "states": obj({s: INT for s in CODE_STATES}, CODE_STATES)}
_CODE = {"id": STR, "object": {"const": "credit_code"}, "batch_id": STR, "prefix": STR, "state": {"enum": CODE_STATES},
         "redeemed_org_id": NSTR, "redeemed_by": NSTR, "redeemed_at": NTIME,
         "transaction_id": {"type": ["integer", "null"]}, "revoked_at": NTIME, "created_at": TIME}

SCHEMAS: dict[str, Any] = {
    "AdminCatalogModel": obj({"id": STR, "object": {"const": "catalog_model"}, "name": STR, **_MODEL_FIELDS,
                              "upstream_name": STR, "description": STR, "owned_by": STR, "created": INT},
                             ["id", "name", "upstream_name", "enabled", "context_window", "modalities"]),
    "AdminCatalogModelList": obj({"object": {"const": "list"},
                                  "data": {"type": "array", "items": ref("AdminCatalogModel")}}, ["object", "data"]),
    "AdminNewCatalogModel": obj({"name": {"type": "string", "minLength": 1, "maxLength": 200}, **_MODEL_FIELDS},
                                ["name"]),
    "AdminCatalogModelChange": obj(_MODEL_FIELDS),
    "AdminPrice": obj({**_PRICE, "created": {"type": "boolean"}, "scheduled": {"type": "boolean"}},
                      ["id", "model", "effective_at", "free"]),
    "AdminPriceHistory": obj({"object": {"const": "list"}, "model": STR, "data": {"type": "array", "items": obj({
        **_PRICE, "in_force": {"type": "boolean"}, "scheduled": {"type": "boolean"}, "actor": NSTR},
        ["id", "model", "effective_at", "in_force", "scheduled"])}}, ["object", "model", "data"]),
    "AdminNewPrice": obj({"input_micros_per_mtok": {"type": "integer", "minimum": 0, "maximum": 2**40},
                          "output_micros_per_mtok": {"type": "integer", "minimum": 0, "maximum": 2**40},
                          "effective_at": {**TIME, "description": "when it starts (default now); a future time "
                                                                  "schedules it"},
                          "free": {"type": "boolean"}}),
    "AdminWallet": obj({"object": {"const": "wallet"}, **_WALLET},
                       ["org_id", "balance_micros", "frozen_micros", "overdraft_limit_micros"]),
    "AdminWalletListItem": obj({**_WALLET, "org_name": STR},
                               ["org_id", "org_name", "balance_micros", "frozen_micros", "overdraft_limit_micros"]),
    "AdminWalletPage": _paged("AdminWalletListItem"),
    "AdminMoneyChange": obj({"amount_micros": MICROS,
                             "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                             "ref": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,120}$",
                                     "description": "the entry's ref, instead of the Idempotency-Key header"}},
                            ["amount_micros", "reason"]),
    "AdminLedgerEntry": obj(_ENTRY, ["id", "type", "ref", "org_id", "amount_micros", "created_at"]),
    "AdminLedgerOperation": obj({"object": {"const": "ledger_operation"}, "entry": ref("AdminLedgerEntry"),
                                 "wallet": obj(_WALLET, list(_WALLET)), "replayed": {"type": "boolean"}},
                                ["object", "entry", "wallet", "replayed"]),
    "AdminLedgerPage": _paged("AdminLedgerEntry"),
    "AdminOverdraft": obj({"limit_micros": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1},
                           "reason": {"type": "string", "minLength": 1, "maxLength": 500}},
                          ["limit_micros", "reason"]),
    "AdminCodeBatch": obj(_BATCH, ["id", "amount_micros", "count", "expires_at", "org_id", "states"]),
    "AdminCodeBatchPage": _paged("AdminCodeBatch"),
    "AdminNewCodeBatch": obj({"count": {"type": "integer", "minimum": 1, "maximum": 1000}, "amount_micros": MICROS,
                              "expires_at": {**TIME, "description": "a future time; none: never"},
                              "org_id": {**ID, "description": "only this org may redeem them"},
                              "note": {"type": "string", "maxLength": 500}}, ["count", "amount_micros"]),
    "AdminNewCodeBatchResult": obj({"batch": ref("AdminCodeBatch"), "codes": {"type": "array", "items": STR,
                                                                              "description": "shown this once"}},
                                   ["batch", "codes"]),
    "AdminCreditCode": obj(_CODE, ["id", "batch_id", "prefix", "state"]),
    "AdminCreditCodePage": _paged("AdminCreditCode"),
    "AdminNoBody": obj({}),
    "Redeem": obj({"code": {"type": "string", "minLength": 1, "maxLength": 64}}, ["code"]),
    "Redemption": obj({"object": {"const": "redemption"}, "amount_micros": INT, "batch_id": STR, "prefix": STR,
                       "entry_id": INT, "balance_micros": INT},
                      ["object", "amount_micros", "batch_id", "prefix", "entry_id", "balance_micros"]),
}

_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,120}$"},
                "description": "the ledger entry's ref (or send `ref`; one of them is required): the same key again "
                               "replays the first entry (200, `replayed: true`), with other parameters it is 422 "
                               "`ref_conflict`"}


def paths() -> dict[str, Any]:
    M = f"{ADMIN}/models/{{model_id}}"
    W = f"{ADMIN}/wallets/{{org_id}}"
    B = f"{ADMIN}/credit-code-batches/{{batch_id}}"
    return {
        f"{ADMIN}/models": {
            "get": op("The models catalog, disabled models too (platform admins)", "200", "AdminCatalogModelList"),
            "post": op("Add a model to the catalog (platform admins)", "201", "AdminCatalogModel",
                       body="AdminNewCatalogModel", errors=("409",))},
        M: {"get": op("A catalog model", "200", "AdminCatalogModel", errors=("404",), params=[path_id("model_id")]),
            "patch": op("Change a catalog model: enable / disable, upstream name, context window, modalities, "
                        "description", "200", "AdminCatalogModel", body="AdminCatalogModelChange", errors=("404",),
                        params=[path_id("model_id")])},
        f"{M}/prices": {
            "get": op("A model's price history, newest first, with the version in force now", "200",
                      "AdminPriceHistory", errors=("404",), params=[path_id("model_id")]),
            "post": op("Add a price version (a future `effective_at` schedules it; history is never rewritten)",
                       "201", "AdminPrice", body="AdminNewPrice", body_required=False, errors=("404", "409"),
                       params=[path_id("model_id")])},
        f"{ADMIN}/wallets": {"get": op(
            "Wallets: every org's (platform admins) or your org's (org admins)", "200", "AdminWalletPage",
            params=PAGING + [_q("org_id", ID)], errors=("404",))},
        W: {"get": op("One org's wallet", "200", "AdminWallet", errors=("404",), params=[path_id("org_id")])},
        f"{W}/credit": {"post": op("Credit a wallet (a ledger entry with a reason; platform admins)", "201",
                                   "AdminLedgerOperation", body="AdminMoneyChange", errors=("404", "422"),
                                   params=[path_id("org_id"), _IDEMPOTENCY])},
        f"{W}/debit": {"post": op("Debit a wallet (a downward adjustment with a reason; never below minus the "
                                  "overdraft limit; platform admins)", "201", "AdminLedgerOperation",
                                  body="AdminMoneyChange", errors=("402", "404", "422"),
                                  params=[path_id("org_id"), _IDEMPOTENCY])},
        f"{W}/overdraft": {"put": op("Set how far below zero an org's balance may go (platform admins)", "200",
                                     "AdminWallet", body="AdminOverdraft", errors=("404", "409"),
                                     params=[path_id("org_id")])},
        f"{ADMIN}/transactions": {"get": op(
            "Ledger entries, newest first: every org's (platform admins) or your org's (org admins)", "200",
            "AdminLedgerPage", errors=("404",), params=PAGING + [
                _q("org_id", ID), _q("type", {"enum": ENTRY_TYPES}), _q("ref", {"type": "string", "minLength": 1}),
                _q("trace_id", {"type": "string", "minLength": 1}),
                _q("since", TIME, "inclusive; ISO-8601, UTC when no offset is given"),
                _q("until", TIME, "exclusive; ISO-8601, UTC when no offset is given")])},
        f"{ADMIN}/credit-code-batches": {
            "get": op("Credit code batches, newest first, with their codes' states", "200", "AdminCodeBatchPage",
                      params=PAGING),
            "post": op("Create a batch of credit codes (shown once, in this answer)", "201",
                       "AdminNewCodeBatchResult", body="AdminNewCodeBatch", errors=("404",))},
        B: {"get": op("A credit code batch", "200", "AdminCodeBatch", errors=("404",), params=[path_id("batch_id")])},
        f"{B}/codes": {"get": op("A batch's codes (prefix, state, who redeemed when), newest first", "200",
                                 "AdminCreditCodePage", errors=("404",),
                                 params=[path_id("batch_id"), *PAGING, _q("state", {"enum": CODE_STATES})])},
        f"{B}/revoke": {"post": op("Revoke every code of a batch not yet redeemed", "200", "AdminCodeBatch",
                                   body="AdminNoBody", body_required=False, errors=("404",),
                                   params=[path_id("batch_id")])},
        f"{ADMIN}/credit-codes/{{code_id}}/revoke": {"post": op(
            "Revoke one credit code (a redeemed code: 409 `code_redeemed`)", "200", "AdminCreditCode",
            body="AdminNoBody", body_required=False, errors=("404", "409"), params=[path_id("code_id")])},
    }


def redeem_paths() -> dict[str, Any]:
    return {"/deepspace/api/wallet/redeem": {"post": op(
        "Redeem a credit code into your org's wallet (members and up; a key needs the `account` scope). Errors: "
        "400 `invalid_code`, 409 `code_redeemed` / `code_expired` / `code_revoked`, 429 `redeem_rate_limited` "
        "after 10 failures in an hour", "200", "Redemption", body="Redeem", errors=("409", "429"))}}
