"""Who may use the Admin API: platform admins (JWT, or a key with an admin scope) on every
route; an org's admins and owners, signed in, on the routes open to them and for their own org
only; nobody else. The walk covers every admin route in the OpenAPI document."""

from __future__ import annotations

import re

import pytest

from deepspace_lab.auth import Principal, admin_org_scope, authorize
from deepspace_lab.errors import PermissionDenied
from deepspace_lab.server_extension.openapi import openapi_document

from .conftest import AdminWorld

ADMIN = "/deepspace/admin/api"


def admin_operations() -> list[tuple[str, str]]:
    ops = [(path, method) for path, methods in openapi_document()["paths"].items() if path.startswith(ADMIN)
           for method in methods]
    assert ops, "the document has no admin routes"
    return sorted(ops)


def _concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", "x1", path)


def test_every_admin_route_refuses_anyone_but_admins(admin_world: AdminWorld) -> None:
    w = admin_world
    refused_callers = {
        "member key": {"key": w.a.people["member"].key},
        "viewer key": {"key": w.a.people["viewer"].key},
        "org owner's key (keys carry admin rights only through admin scopes)": {"key": w.a.people["owner"].key},
        "member signed in": {"token": w.token(w.a.people["member"])},
    }
    for path, method in admin_operations():
        url = _concrete(path)
        body = {"json": {}} if method in ("post", "put", "patch") else {}
        anonymous = w.call(method.upper(), url, **body)
        assert anonymous.status_code == 401, (path, method, anonymous.text)
        for who, credential in refused_callers.items():
            response = w.call(method.upper(), url, **credential, **body)
            assert response.status_code == 403, (path, method, who, response.text)
            assert response.json()["error"]["code"] in ("admin_required", "permission_denied"), (who, response.text)


def test_refusals_are_audited(admin_world: AdminWorld) -> None:
    w = admin_world
    assert w.call("GET", ADMIN + "/permissions", key=w.a.people["member"].key).status_code == 403
    rows = w.gw.audit_rows(kind="admin.permissions.read")
    assert [(r["status_code"], r["error_code"], r["org_id"]) for r in rows] == [(403, "admin_required", w.a.id)]


def test_audit_rows_record_the_status_the_caller_got(admin_world: AdminWorld) -> None:
    w = admin_world
    created = w.call("POST", "/projects", key=w.a.people["owner"].key, json={"name": "audited"})
    deleted = w.call("DELETE", f"/projects/{created.json()['id']}", key=w.a.people["owner"].key)
    assert (created.status_code, deleted.status_code) == (201, 204)
    rows = {r["kind"]: r["status_code"] for r in w.gw.audit_rows(org_id=w.a.id)
            if r["kind"] in ("api.projects.create", "api.projects.delete")}
    assert rows == {"api.projects.create": 201, "api.projects.delete": 204}


def test_the_permission_matrix_is_what_authorize_decides(admin_world: AdminWorld) -> None:
    w = admin_world
    for credential in ({"key": w.platform.key}, {"key": w.platform.read_key}, {"token": w.token(w.platform.email)},
                       {"token": w.token(w.a.people["admin"])}, {"token": w.token(w.a.people["owner"])}):
        response = w.call("GET", ADMIN + "/permissions", **credential)
        assert response.status_code == 200, (credential, response.text)
    matrix = response.json()
    assert matrix["roles"] == ["viewer", "member", "admin", "owner"]
    for row in matrix["actions"]:
        for role in matrix["roles"]:
            p = Principal(user_id="u", org_id="o", project_id="p", role=role)
            try:
                authorize(p, row["action"])
                allowed = True
            except PermissionDenied:
                allowed = False
            assert allowed == (role in row["roles"]), (row, role)


@pytest.mark.parametrize("principal, action, scope", [
    (Principal(user_id="u", org_id="o", project_id="p", role="viewer", is_platform_admin=True), "org_admin.write",
     None),
    (Principal(user_id="u", org_id="o", project_id="p", role="admin"), "org_admin.write", "o"),
    (Principal(user_id="u", org_id="o", project_id="p", role="owner"), "org_admin.read", "o"),
    (Principal(user_id="u", org_id="o", project_id="p", role="owner", is_platform_admin=True, api_key_id="k",
               scopes=("admin-read",)), "org_admin.read", None),
])
def test_admin_org_scope(principal: Principal, action: str, scope: str | None) -> None:
    assert admin_org_scope(principal, action) == scope


@pytest.mark.parametrize("principal, action", [
    (Principal(user_id="u", org_id="o", project_id="p", role="member"), "org_admin.read"),
    (Principal(user_id="u", org_id="o", project_id="p", role="owner", api_key_id="k", scopes=("account",)),
     "org_admin.read"),
    (Principal(user_id="u", org_id="o", project_id="p", role="owner", is_platform_admin=True, api_key_id="k",
               scopes=("admin-read",)), "org_admin.write"),
])
def test_admin_org_scope_refuses(principal: Principal, action: str) -> None:
    with pytest.raises(PermissionDenied):
        admin_org_scope(principal, action)
    with pytest.raises(PermissionDenied):
        authorize(principal, action)
