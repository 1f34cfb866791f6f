"""Redeemable credit codes on both backends: a batch's codes are shown once and stored as HMACs;
a member redeems one into their org's wallet exactly once — also when many try the same code at
the same moment; revoked, expired, foreign and unknown codes are refused with clear codes, and
failures are rate limited."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from deepspace_lab.billing import (
    CodeExpiredError,
    check_invariants,
    create_batch,
    get_batch,
    list_codes,
    redeem_code,
)
from deepspace_lab.db import make_async_engine, make_sessionmaker

from ..helpers import TENANT_CREDIT_MICROS, TEST_SECRET, count
from .conftest import AdminWorld

ADMIN = "/deepspace/admin/api"
REDEEM = "/deepspace/api/wallet/redeem"


def _batch(w: AdminWorld, **body: Any) -> dict[str, Any]:
    response = w.call("POST", ADMIN + "/credit-code-batches", key=w.platform.key,
                      json={"count": 3, "amount_micros": 2_000_000, "note": "conference", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _balance(w: AdminWorld, org_id: str) -> int:
    return int(w.call("GET", f"{ADMIN}/wallets/{org_id}", key=w.platform.key).json()["balance_micros"])


def test_codes_are_shown_once_kept_hashed_and_credit_once(admin_world: AdminWorld) -> None:
    w = admin_world
    made = _batch(w)
    batch, codes = made["batch"], made["codes"]
    assert len(set(codes)) == 3 and all(c.startswith("DSC-") and len(c) == 23 for c in codes)
    assert batch["states"] == {"active": 3, "redeemed": 0, "revoked": 0, "expired": 0}
    with w.gw.db.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(text("SELECT * FROM credit_codes")) for v in row)
    audit = str(w.gw.audit_rows(kind="admin.codes.create"))
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored and code[9:] not in audit

    member = {"token": w.token(w.a.people["member"])}
    typed = codes[0].lower().replace("-", " ")  # case, spaces and dashes do not matter
    done = w.call("POST", REDEEM, **member, json={"code": typed})
    assert done.status_code == 200, done.text
    assert done.json()["amount_micros"] == 2_000_000 and done.json()["batch_id"] == batch["id"]
    assert _balance(w, w.a.id) == TENANT_CREDIT_MICROS + 2_000_000
    again = w.call("POST", REDEEM, **member, json={"code": codes[0]})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "code_redeemed")
    assert _balance(w, w.a.id) == TENANT_CREDIT_MICROS + 2_000_000

    entry = w.call("GET", ADMIN + "/transactions", key=w.platform.key,
                   params={"org_id": w.a.id, "type": "credit"}).json()["data"][0]
    assert batch["id"] in entry["reason"] and entry["ref"].startswith("code:")
    listed = w.call("GET", f"{ADMIN}/credit-code-batches/{batch['id']}/codes", key=w.platform.key,
                    params={"state": "redeemed"}).json()["data"]
    assert [(c["prefix"], c["redeemed_org_id"], c["redeemed_by"]) for c in listed] == [
        (codes[0][:8], w.a.id, w.a.people["member"].user_id)]
    assert listed[0]["redeemed_at"] is not None and listed[0]["transaction_id"] == entry["id"]
    batches = w.call("GET", ADMIN + "/credit-code-batches", key=w.platform.key).json()["data"]
    assert batches[0]["states"] == {"active": 2, "redeemed": 1, "revoked": 0, "expired": 0}
    redeemed_row = w.gw.audit_rows(kind="api.wallet.redeem")[0]
    assert redeemed_row["detail"]["batch_id"] == batch["id"] and codes[0] not in str(redeemed_row)


def test_revoked_foreign_and_unknown_codes_are_refused(admin_world: AdminWorld) -> None:
    w = admin_world
    admin = {"key": w.platform.key}
    codes = _batch(w)["codes"]
    only_b = _batch(w, org_id=w.b.id, count=1)
    member_a = {"token": w.token(w.a.people["member"])}

    refused = w.call("POST", REDEEM, **member_a, json={"code": only_b["codes"][0]})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_code")
    assert w.call("POST", REDEEM, key=w.b.people["member"].key, json={"code": only_b["codes"][0]}).status_code == 200
    for junk in ("DSC-0000-0000-0000-0000", "hello", ""):
        assert w.call("POST", REDEEM, **member_a, json={"code": junk}).json()["error"]["code"] == "invalid_code"
    assert w.call("POST", REDEEM, **member_a, json={"code": "x", "org_id": w.b.id}).status_code == 400

    batch_id = w.call("GET", ADMIN + "/credit-code-batches", **admin).json()["data"][1]["id"]
    code_rows = w.call("GET", f"{ADMIN}/credit-code-batches/{batch_id}/codes", **admin).json()["data"]
    first = next(c for c in code_rows if c["prefix"] == codes[0][:8])
    revoked = w.call("POST", f"{ADMIN}/credit-codes/{first['id']}/revoke", **admin)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    row = w.gw.audit_rows(kind="admin.codes.revoke")[-1]["detail"]
    assert (row["before"]["state"], row["after"]["state"]) == ("active", "revoked")
    answer = w.call("POST", REDEEM, **member_a, json={"code": codes[0]})
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "code_revoked")

    assert w.call("POST", REDEEM, **member_a, json={"code": codes[1]}).status_code == 200
    whole = w.call("POST", f"{ADMIN}/credit-code-batches/{batch_id}/revoke", **admin)
    assert whole.json()["states"] == {"active": 0, "redeemed": 1, "revoked": 2, "expired": 0}
    assert whole.json()["revoked_at"] is not None
    gone = w.call("POST", REDEEM, **member_a, json={"code": codes[2]})
    assert gone.json()["error"]["code"] == "code_revoked"
    redeemed_id = next(c["id"] for c in code_rows if c["prefix"] == codes[1][:8])
    assert w.call("POST", f"{ADMIN}/credit-codes/{redeemed_id}/revoke", **admin).json()["error"]["code"] == \
        "code_redeemed"

    # who may redeem: members and up, signed in or with an `account` key; not viewers, not chat-only keys
    viewer = w.call("POST", REDEEM, token=w.token(w.a.people["viewer"]), json={"code": codes[2]})
    assert viewer.status_code == 403
    chat_key = w.call("POST", "/deepspace/api/keys", key=w.a.people["member"].key,
                      json={"scopes": ["chat"]}).json()["api_key"]
    assert w.call("POST", REDEEM, key=chat_key, json={"code": codes[2]}).status_code == 403
    # only platform admins manage codes
    for credential in ({"token": w.token(w.a.people["owner"])}, {"key": w.platform.read_key}):
        assert w.call("POST", ADMIN + "/credit-code-batches", **credential,
                      json={"count": 1, "amount_micros": 1}).status_code == 403
    bad = w.call("POST", ADMIN + "/credit-code-batches", **admin, json={"count": 0, "amount_micros": 1})
    assert bad.json()["error"]["code"] == "invalid_count"
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert w.call("POST", ADMIN + "/credit-code-batches", **admin,
                  json={"count": 1, "amount_micros": 1, "expires_at": past}).json()["error"]["code"] == "invalid_time"


def test_failed_redeems_are_rate_limited(admin_world: AdminWorld) -> None:
    w = admin_world
    code = _batch(w, count=1)["codes"][0]
    member = {"key": w.a.people["member"].key}
    for _ in range(10):
        assert w.call("POST", REDEEM, **member, json={"code": "DSC-AAAA-BBBB-CCCC-DDDD"}).status_code == 400
    limited = w.call("POST", REDEEM, **member, json={"code": code})
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "redeem_rate_limited")
    assert "Retry-After" in limited.headers
    assert w.call("POST", REDEEM, key=w.a.people["owner"].key, json={"code": code}).status_code == 200  # per user


def test_concurrent_redeems_of_one_code_credit_once(admin_world: AdminWorld) -> None:
    w = admin_world
    code = _batch(w, count=1)["codes"][0]
    callers = [p.key for org in (w.a, w.b) for p in org.people.values() if p.role != "viewer"]
    start = threading.Barrier(len(callers))

    def redeem(key: str) -> httpx.Response:
        start.wait()
        return w.call("POST", REDEEM, key=key, json={"code": code})

    with ThreadPoolExecutor(len(callers)) as pool:
        answers = list(pool.map(redeem, callers))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * (len(callers) - 1), [r.text for r in answers]
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"code_redeemed"}
    with w.gw.db.connect() as conn:
        refs = conn.execute(text("SELECT COUNT(*) FROM transactions WHERE ref LIKE 'code:%'")).scalar_one()
    assert refs == 1
    winner = next(r for r in answers if r.status_code == 200).json()
    assert winner["amount_micros"] == 2_000_000
    assert count(w.gw.db, "credit_codes", state="redeemed") == 1


def test_an_expired_code_is_refused_and_listed_as_expired(admin_world: AdminWorld) -> None:
    w = admin_world
    url = w.gw.settings.database_url
    soon = datetime.now(UTC) + timedelta(hours=1)

    async def scenario() -> None:
        engine = make_async_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                batch, codes = await create_batch(session, secret_key=TEST_SECRET, count=2, amount_micros=5,
                                                  expires_at=soon, actor="tests")
                await session.commit()
                later = soon + timedelta(seconds=1)
                with pytest.raises(CodeExpiredError):
                    await redeem_code(session, secret_key=TEST_SECRET, code=codes[0], org_id=w.a.id,
                                      user_id=w.a.people["member"].user_id, actor="tests", now=later)
                done = await redeem_code(session, secret_key=TEST_SECRET, code=codes[1], org_id=w.a.id,
                                         user_id=w.a.people["member"].user_id, actor="tests",
                                         now=soon - timedelta(seconds=1))
                assert done.entry.amount_micros == 5
                page = await list_codes(session, batch_id=batch.id, now=later)
                assert sorted(c.state for c in page.data) == ["expired", "redeemed"]
                expired = await list_codes(session, batch_id=batch.id, state="expired", now=later)
                assert [c.prefix for c in expired.data] == [codes[0][:8]]
                assert (await get_batch(session, batch.id, now=later)).states["expired"] == 1
                await session.rollback()
                report = await check_invariants(session)
                assert report.ok, report.to_dict()
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    batch = w.call("GET", ADMIN + "/credit-code-batches", key=w.platform.key).json()["data"][0]
    assert batch["states"] == {"active": 1, "redeemed": 1, "revoked": 0, "expired": 0}  # not yet expired now
