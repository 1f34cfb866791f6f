"""Admin API, risk & policy: IP rules, rate limits, model policies and budget caps — the data
the pipeline enforces, in force from the next request, refused with the same codes as the
``deepspace-lab policy`` / ``budget`` commands, audited with before and after."""

from __future__ import annotations

import httpx

from .conftest import AdminWorld, Cli
from .test_accounts import ADMIN, _all_pages, _code

MODEL = "deepspace-simulated-chat"


def chat(w: AdminWorld, key: str) -> httpx.Response:
    return w.call("POST", "/deepspace/v1/chat/completions", key=key,
                  json={"model": MODEL, "messages": [{"role": "user", "content": "hello"}]})


def test_an_ip_deny_rule_refuses_the_next_request_from_that_address(admin_world: AdminWorld) -> None:
    w = admin_world
    a, b = w.a.people["member"].key, w.b.people["member"].key
    assert w.call("GET", "/me", key=a).status_code == 200
    set_rule = w.call("POST", ADMIN + "/policies", key=w.platform.key, json={
        "kind": "ip_rule", "scope": "org", "scope_id": w.a.id, "cidr": "127.0.0.1", "spec": {"action": "deny"}})
    assert set_rule.status_code == 200, set_rule.text
    rule = set_rule.json()["policy"]
    assert (rule["subject"], rule["org_id"], set_rule.json()["changed"]) == ("127.0.0.1/32", w.a.id, True)
    assert _code(w.call("GET", "/me", key=a)) == (403, "ip_denied")
    assert chat(w, a).status_code == 403
    assert w.call("GET", "/me", key=b).status_code == 200

    listed = w.call("GET", ADMIN + "/policies", key=w.platform.read_key, params={"org_id": w.a.id}).json()["data"]
    assert [p["id"] for p in listed] == [rule["id"]]
    gone = w.call("DELETE", f"{ADMIN}/policies/{rule['id']}", key=w.platform.key)
    assert gone.status_code == 200 and gone.json()["deleted"]["id"] == rule["id"]
    assert w.call("GET", "/me", key=a).status_code == 200
    history = w.call("GET", ADMIN + "/policies", key=w.platform.key, params={"history": "true"}).json()["data"]
    assert [(p["id"], p["in_force"]) for p in history] == [(rule["id"], False)]
    rows = w.gw.audit_rows(kind="admin.policies.set") + w.gw.audit_rows(kind="admin.policies.delete")
    assert [(r["detail"]["before"], r["detail"]["after"]) for r in rows] == [(None, rule), (rule, None)]
    assert _code(w.call("DELETE", f"{ADMIN}/policies/{rule['id']}", key=w.platform.key)) == (404, "policy_not_found")
    assert _code(w.call("DELETE", f"{ADMIN}/policies/abc", key=w.platform.key)) == (404, "policy_not_found")


def test_a_global_rule_and_a_rate_limit_take_effect_on_the_next_request(admin_world: AdminWorld, cli: Cli) -> None:
    w = admin_world
    key = w.b.people["member"].key
    post = lambda body: w.call("POST", ADMIN + "/policies", key=w.platform.key, json=body)  # noqa: E731
    rule = post({"kind": "ip_rule", "scope": "global", "cidr": "10.0.0.0/8", "spec": {"action": "allow"}}).json()
    assert rule["policy"]["org_id"] is None
    # an allow list that leaves 127.0.0.1 out: everyone from there is refused, admins on admin routes too
    assert _code(w.call("GET", "/me", key=key)) == (403, "ip_denied")
    assert _code(w.call("GET", ADMIN + "/policies", key=w.platform.key)) == (403, "ip_denied")
    rc, _ = cli("policy", "set", "ip-rule", "--global", "--cidr", "127.0.0.0/8", "--action", "allow")
    assert rc == 0
    assert w.call("GET", "/me", key=key).status_code == 200

    limit = post({"kind": "rate_limit", "scope": "key", "scope_id": w.b.people["member"].key_id,
                  "spec": {"rpm": 1}}).json()["policy"]
    assert limit["spec"] == {"rpm": 1, "tpm": 0, "concurrency": 0}
    assert chat(w, key).status_code == 200
    assert chat(w, key).status_code == 429
    again = post({"kind": "rate_limit", "scope": "key", "scope_id": w.b.people["member"].key_id, "spec": {"rpm": 1}})
    assert again.json()["changed"] is False  # the same again changes nothing

    # org admins read their own org's policies (not the global rules) and change none
    owner_b = {"token": w.token(w.b.people["owner"])}
    assert [p["id"] for p in w.call("GET", ADMIN + "/policies", **owner_b).json()["data"]] == [limit["id"]]
    assert w.call("GET", ADMIN + "/policies", **owner_b, params={"org_id": w.a.id}).status_code == 404
    assert w.call("POST", ADMIN + "/policies", **owner_b, json={"kind": "rate_limit", "scope": "org",
                                                                "scope_id": w.b.id, "spec": {"rpm": 0}}
                  ).status_code == 403


def test_policy_input_is_refused_with_the_clis_codes(admin_world: AdminWorld, cli: Cli) -> None:
    w = admin_world
    a, b_project = w.a.id, w.b.project_id
    cases = [
        ({"kind": "rate_limit", "scope": "org", "scope_id": a, "spec": {"rpm": -1}},
         ("policy", "set", "rate-limit", "--org", a, "--rpm", "-1")),
        ({"kind": "ip_rule", "scope": "org", "scope_id": a, "cidr": "nope", "spec": {"action": "deny"}},
         ("policy", "set", "ip-rule", "--org", a, "--cidr", "nope", "--action", "deny")),
        ({"kind": "model_policy", "scope": "org", "scope_id": a, "spec": {"allow": ["no-such-model"]}},
         ("policy", "set", "models", "--org", a, "--allow", "no-such-model")),
        ({"kind": "model_policy", "scope": "project", "scope_id": "prj_nothere", "spec": {"allow": [MODEL]}},
         ("policy", "set", "models", "--org", a, "--project", "prj_nothere", "--allow", MODEL)),
    ]
    for body, argv in cases:
        response = w.call("POST", ADMIN + "/policies", key=w.platform.key, json=body)
        rc, out = cli(*argv)
        assert rc == 2 and (response.status_code, response.json()["error"]["code"]) == (
            {"invalid_policy": 400, "invalid_cidr": 400, "unknown_model": 400}.get(out["error"]["code"], 404),
            out["error"]["code"]), (body, response.text, out)
    budget_cases = [
        ({"org_id": a, "scope": "project", "scope_id": b_project, "period": "day", "limit_micros": 5},
         ("budget", "set", "--org", a, "--scope", "project", "--id", b_project, "--period", "day", "--micros", "5")),
        ({"org_id": a, "scope": "org", "period": "day", "limit_micros": -1},
         ("budget", "set", "--org", a, "--scope", "org", "--period", "day", "--micros", "-1")),
        ({"org_id": "org_nothere", "scope": "org", "period": "day", "limit_micros": 1},
         ("budget", "set", "--org", "org_nothere", "--scope", "org", "--period", "day", "--micros", "1")),
    ]
    for body, argv in budget_cases:
        response = w.call("PUT", ADMIN + "/budgets", key=w.platform.key, json=body)
        rc, out = cli(*argv)
        assert rc == 2 and response.json()["error"]["code"] == out["error"]["code"], (body, response.text, out)
    for body, code in (({"kind": "rate_limit", "scope": "org", "scope_id": a, "spec": {"rpm": 1}, "x": 1},
                        "unknown_field"),
                       ({"kind": "rate_limit", "scope": "org", "scope_id": a, "spec": "rpm=1"}, "invalid_type"),
                       ({"kind": "ip_rule", "scope": "org", "spec": {"action": "deny"}}, "missing_field")):
        assert _code(w.call("POST", ADMIN + "/policies", key=w.platform.key, json=body))[1] == code, body
    assert w.call("GET", ADMIN + "/policies", key=w.platform.key).json()["data"] == []


def test_budget_caps_apply_to_the_next_request_and_show_this_periods_spend(admin_world: AdminWorld) -> None:
    w = admin_world
    key = w.a.people["member"].key
    put = lambda micros: w.call("PUT", ADMIN + "/budgets", key=w.platform.key, json={  # noqa: E731
        "org_id": w.a.id, "scope": "org", "period": "month", "limit_micros": micros})
    first = put(1)
    assert first.status_code == 200 and first.json()["before"] is None
    assert _code(chat(w, key)) == (429, "budget_exceeded")
    raised = put(10**12).json()
    assert (raised["before"]["limit_micros"], raised["budget"]["limit_micros"]) == (1, 10**12)
    assert chat(w, key).status_code == 200
    [budget] = w.call("GET", ADMIN + "/budgets", key=w.platform.read_key, params={"org_id": w.a.id}).json()["data"]
    assert budget["spent_micros"] > 0 and budget["reserved_micros"] == 0 and budget["period_start"]

    admin_a, admin_b = {"token": w.token(w.a.people["admin"])}, {"token": w.token(w.b.people["admin"])}
    assert [x["id"] for x in w.call("GET", ADMIN + "/budgets", **admin_a).json()["data"]] == [budget["id"]]
    assert w.call("GET", ADMIN + "/budgets", **admin_b).json()["data"] == []
    assert w.call("GET", ADMIN + "/budgets", **admin_b, params={"org_id": w.a.id}).status_code == 404
    assert w.call("DELETE", f"{ADMIN}/budgets/{budget['id']}", **admin_a).status_code == 403

    assert w.call("DELETE", f"{ADMIN}/budgets/{budget['id']}", key=w.platform.key).json()["deleted"]["id"] == \
        budget["id"]
    assert w.call("GET", ADMIN + "/budgets", key=w.platform.key).json()["data"] == []
    assert _code(w.call("DELETE", f"{ADMIN}/budgets/{budget['id']}", key=w.platform.key)) == (404, "budget_not_found")
    rows = [r["detail"] for k in ("set", "delete") for r in w.gw.audit_rows(kind=f"admin.budgets.{k}", status_code=200)]
    assert [(r["before"] and r["before"]["limit_micros"], r["after"] and r["after"]["limit_micros"]) for r in rows
            ] == [(None, 1), (1, 10**12), (10**12, None)]


def test_policies_and_budgets_page_by_keyset(admin_world: AdminWorld) -> None:
    w = admin_world
    for org in (w.a, w.b):
        for scope, scope_id in (("org", org.id), ("project", org.project_id)):
            assert w.call("POST", ADMIN + "/policies", key=w.platform.key, json={
                "kind": "rate_limit", "scope": scope, "scope_id": scope_id, "spec": {"rpm": 9}}).status_code == 200
            assert w.call("PUT", ADMIN + "/budgets", key=w.platform.key, json={
                "org_id": org.id, "scope": scope, "scope_id": scope_id, "period": "day", "limit_micros": 9}
            ).status_code == 200
    for path in ("/policies", "/budgets"):
        everything = _all_pages(w, path, {"key": w.platform.read_key}, limit=3)
        assert len(everything) == 4 and len({x["id"] for x in everything}) == 4
        assert len(_all_pages(w, path, {"token": w.token(w.b.people["admin"])}, limit=1)) == 2
        assert _code(w.call("GET", ADMIN + path, key=w.platform.key, params={"cursor": "x1"})) == (
            400, "invalid_cursor")
