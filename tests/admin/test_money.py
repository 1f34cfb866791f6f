"""The Admin API's money area on both backends: the catalog and its prices, wallets (read by
org admins for their own org; money moved by platform admins only, once per Idempotency-Key),
ledger entries with filters and keyset paging, every change audited with before and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..helpers import TENANT_CREDIT_MICROS, count
from .conftest import AdminWorld

ADMIN = "/deepspace/admin/api"


def _walk(w: AdminWorld, path: str, credential: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every item of a keyset-paged list, one small page at a time."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = w.call("GET", path, **credential, params={**params, "limit": 2, **({"cursor": cursor} if cursor
                                                                                       else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["data"]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            return items


def test_catalog_add_update_and_scheduled_prices(admin_world: AdminWorld) -> None:
    w = admin_world
    admin = {"key": w.platform.key}
    made = w.call("POST", ADMIN + "/models", **admin, json={
        "name": "acme-large", "upstream_name": "deepspace-simulated-chat", "context_window": 32000,
        "modalities": ["text", "image"]})
    assert made.status_code == 201, made.text
    model = made.json()
    assert (model["enabled"], model["modalities"]) == (True, ["text", "image"])
    assert w.call("POST", ADMIN + "/models", **admin, json={"name": "acme-large"}).json()["error"]["code"] == \
        "model_exists"
    bad = w.call("POST", ADMIN + "/models", **admin, json={"name": "x", "modalities": ["smell"]})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_modalities")
    assert w.call("PATCH", f"{ADMIN}/models/{model['id']}", **admin, json={"colour": "red"}).status_code == 400
    null = w.call("PATCH", f"{ADMIN}/models/{model['id']}", **admin, json={"upstream_name": None})
    assert (null.status_code, null.json()["error"]["code"]) == (400, "invalid_type")

    changed = w.call("PATCH", f"{ADMIN}/models/{model['id']}", **admin,
                     json={"enabled": False, "description": "off for now"})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    listed = {m["name"]: m for m in w.call("GET", ADMIN + "/models", **admin).json()["data"]}
    assert listed["acme-large"]["enabled"] is False  # the admin list shows disabled models too
    v1 = w.call("GET", "/deepspace/v1/models", key=w.a.people["member"].key).json()["data"]
    assert "acme-large" not in {m["id"] for m in v1}
    row = w.gw.audit_rows(kind="admin.models.update")[-1]
    assert row["detail"]["before"]["enabled"] is True and row["detail"]["after"]["enabled"] is False

    prices = f"{ADMIN}/models/{model['id']}/prices"
    now = datetime.now(UTC)
    first = w.call("POST", prices, **admin, json={"input_micros_per_mtok": 1000, "output_micros_per_mtok": 2000,
                                                  "effective_at": (now - timedelta(hours=1)).isoformat()})
    assert first.status_code == 201, first.text
    future = (now + timedelta(days=7)).isoformat()
    later = w.call("POST", prices, **admin, json={"input_micros_per_mtok": 3000, "output_micros_per_mtok": 4000,
                                                  "effective_at": future})
    assert later.status_code == 201 and later.json()["scheduled"] is True
    again = w.call("POST", prices, **admin, json={"input_micros_per_mtok": 3000, "output_micros_per_mtok": 4000,
                                                  "effective_at": future})
    assert again.status_code == 200 and again.json()["created"] is False  # a retried command
    clash = w.call("POST", prices, **admin, json={"input_micros_per_mtok": 1, "effective_at": future})
    assert clash.json()["error"]["code"] == "price_version_exists"
    history = w.call("GET", prices, **admin).json()["data"]
    assert [(p["input_micros_per_mtok"], p["in_force"], p["scheduled"]) for p in history] == [
        (3000, False, True), (1000, True, False)]
    audit = [r for r in w.gw.audit_rows(kind="admin.prices.set") if r["detail"] and r["detail"]["created"]]
    assert [(r["detail"]["before"], r["detail"]["after"]["input_micros_per_mtok"]) for r in audit][0] == (None, 1000)
    assert audit[-1]["detail"]["before"]["input_micros_per_mtok"] == 1000

    # platform only: org admins (signed in) and read-only keys may not touch the catalog
    org_admin = {"token": w.token(w.a.people["admin"])}
    assert w.call("GET", ADMIN + "/models", **org_admin).status_code == 403
    assert w.call("POST", prices, key=w.platform.read_key, json={"free": True}).status_code == 403


def test_credit_and_debit_move_money_once_per_idempotency_key(admin_world: AdminWorld) -> None:
    w = admin_world
    admin = {"key": w.platform.key}
    credit = f"{ADMIN}/wallets/{w.a.id}/credit"
    body = {"amount_micros": 5_000_000, "reason": "goodwill"}
    missing = w.call("POST", credit, **admin, json=body)
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "missing_idempotency_key")
    first = w.call("POST", credit, **admin, json=body, headers={"Idempotency-Key": "ticket-42"})
    assert first.status_code == 201, first.text
    double_click = w.call("POST", credit, **admin, json=body, headers={"Idempotency-Key": "ticket-42"})
    assert double_click.status_code == 200 and double_click.json()["replayed"] is True
    assert double_click.json()["entry"]["id"] == first.json()["entry"]["id"]
    assert first.json()["wallet"]["balance_micros"] == TENANT_CREDIT_MICROS + 5_000_000
    assert count(w.gw.db, "transactions", ref="ticket-42") == 1
    reused = w.call("POST", credit, **admin, json={**body, "amount_micros": 1},
                    headers={"Idempotency-Key": "ticket-42"})
    assert (reused.status_code, reused.json()["error"]["code"]) == (422, "ref_conflict")
    no_reason = w.call("POST", credit, **admin, json={"amount_micros": 1, "reason": " "},
                       headers={"Idempotency-Key": "t-1"})
    assert no_reason.json()["error"]["code"] == "invalid_reason"

    debit = w.call("POST", f"{ADMIN}/wallets/{w.a.id}/debit", **admin, json={
        "amount_micros": 2_000_000, "reason": "correction", "ref": "adj-7"})
    assert debit.status_code == 201 and debit.json()["entry"]["type"] == "debit"
    too_much = w.call("POST", f"{ADMIN}/wallets/{w.a.id}/debit", **admin, json={
        "amount_micros": 10 * TENANT_CREDIT_MICROS, "reason": "x", "ref": "adj-8"})
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (402, "insufficient_funds")
    row = [r for r in w.gw.audit_rows(kind="admin.wallets.debit") if r["detail"]][0]
    assert row["detail"]["before"]["balance_micros"] - row["detail"]["after"]["balance_micros"] == 2_000_000
    assert (row["user_id"], row["detail"]["reason"]) == (w.platform.user_id, "correction")

    overdraft = w.call("PUT", f"{ADMIN}/wallets/{w.b.id}/overdraft", **admin,
                       json={"limit_micros": 7_000_000, "reason": "trusted customer"})
    assert overdraft.status_code == 200 and overdraft.json()["overdraft_limit_micros"] == 7_000_000
    assert w.gw.audit_rows(kind="admin.wallets.overdraft")[-1]["detail"]["after"]["overdraft_limit_micros"] == \
        7_000_000
    assert w.call("POST", f"{ADMIN}/wallets/org_nope/credit", **admin, json=body,
                  headers={"Idempotency-Key": "k"}).status_code == 404

    # money changes are for platform admins only: not org admins, not read-only keys
    for credential in ({"token": w.token(w.a.people["admin"])}, {"token": w.token(w.a.people["owner"])},
                       {"key": w.platform.read_key}):
        refused = w.call("POST", credit, **credential, json=body, headers={"Idempotency-Key": "x"})
        assert refused.status_code == 403, refused.text
    assert count(w.gw.db, "transactions", ref="x") == 0


def test_org_admins_read_only_their_own_wallet_and_entries(admin_world: AdminWorld) -> None:
    w = admin_world
    admin = {"key": w.platform.key}
    w.call("POST", f"{ADMIN}/wallets/{w.b.id}/credit", **admin, json={"amount_micros": 9, "reason": "r"},
           headers={"Idempotency-Key": "b-1"})
    every = _walk(w, ADMIN + "/wallets", admin)
    assert {w.a.id, w.b.id} <= {x["org_id"] for x in every} and len(every) == len({x["org_id"] for x in every})
    assert w.call("GET", ADMIN + "/wallets", key=w.platform.read_key).status_code == 200

    a_admin = {"token": w.token(w.a.people["admin"])}
    own = _walk(w, ADMIN + "/wallets", a_admin)
    assert [x["org_id"] for x in own] == [w.a.id]
    assert w.call("GET", ADMIN + "/wallets", **a_admin, params={"org_id": w.b.id}).status_code == 404
    assert w.call("GET", f"{ADMIN}/wallets/{w.a.id}", **a_admin).json()["balance_micros"] == TENANT_CREDIT_MICROS
    assert w.call("GET", f"{ADMIN}/wallets/{w.b.id}", **a_admin).status_code == 404

    entries = _walk(w, ADMIN + "/transactions", a_admin)
    assert entries and {e["org_id"] for e in entries} == {w.a.id}
    assert w.call("GET", ADMIN + "/transactions", **a_admin, params={"org_id": w.b.id}).status_code == 404
    everything = _walk(w, ADMIN + "/transactions", admin)
    assert {w.a.id, w.b.id} <= {e["org_id"] for e in everything}
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first, no repeats

    by_ref = w.call("GET", ADMIN + "/transactions", **admin, params={"ref": "b-1"}).json()["data"]
    assert [(e["org_id"], e["amount_micros"]) for e in by_ref] == [(w.b.id, 9)]
    by_trace = w.call("GET", ADMIN + "/transactions", **admin, params={"trace_id": by_ref[0]["trace_id"]})
    assert [e["ref"] for e in by_trace.json()["data"]] == ["b-1"]
    debits = w.call("GET", ADMIN + "/transactions", **admin, params={"type": "debit"}).json()["data"]
    assert debits == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert w.call("GET", ADMIN + "/transactions", **admin, params={"since": future}).json()["data"] == []
    for bad in ({"type": "gift"}, {"since": "yesterday"}, {"colour": "red"}, {"limit": "0"}, {"cursor": "zz"}):
        assert w.call("GET", ADMIN + "/transactions", **admin, params=bad).status_code == 400, bad
