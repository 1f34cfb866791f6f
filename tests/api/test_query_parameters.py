"""Every route that takes query parameters refuses one given twice and one it does not know,
with a 400 naming the parameter — never silently the last value, never a typo ignored."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from deepspace_lab.server_extension.openapi import openapi_document

from ..helpers import Gateway, make_tenant


def _query_routes() -> list[tuple[str, str]]:
    """(path, first query parameter) of every documented GET that takes query parameters."""
    routes = []
    for path, ops in openapi_document()["paths"].items():
        if path.startswith("/deepspace/admin/"):  # they need an admin: tests/admin/test_query_parameters.py
            continue
        names = [p["name"] for p in ops.get("get", {}).get("parameters", []) if p["in"] == "query"]
        if names:
            routes.append((path, names[0]))
    return routes


ROUTES = _query_routes()


@pytest.fixture
def gateway(gateway_factory: Any) -> Gateway:
    """A gateway whose tenant's key has every non-admin scope (jobs and files need ``workflows``)."""
    gw = gateway_factory()
    gw.tenant = make_tenant(gw.settings, email="every-scope@example.org",
                            scopes=("chat", "knowledge", "workflows", "account"))
    return gw


def test_the_list_routes_are_all_found() -> None:
    assert {path for path, _ in ROUTES} >= {
        "/deepspace/api/conversations", "/deepspace/api/wallet/transactions", "/deepspace/api/usage"}


def _concrete(path: str) -> str:
    """A path template with a well-formed id that names nothing: parameters are checked before
    the lookup, so the 400s below come first; with good parameters it is a 404."""
    return re.sub(r"\{\w+\}", "x1", path)


def _get(gw: Gateway, path: str, params: Any) -> httpx.Response:
    return httpx.get(gw.url + _concrete(path), params=params,
                     headers={"Authorization": f"Bearer {gw.tenant.api_key}"})


def _assert_400(response: httpx.Response, code: str, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (code, param, "invalid_request_error")
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(("path", "name"), ROUTES)
def test_a_parameter_given_twice_is_refused(gateway: Gateway, path: str, name: str) -> None:
    values = {"limit": ("5", "7"), "cursor": ("a", "b")}.get(name, ("x", "y"))
    _assert_400(_get(gateway, path, [(name, values[0]), (name, values[1])]), "repeated_parameter", name)
    (row,) = gateway.audit_rows(trace_id=_get(gateway, path, [(name, "1"), (name, "1")]).headers["X-Trace-Id"])
    assert (row["status_code"], row["error_code"]) == (400, "repeated_parameter")


@pytest.mark.parametrize(("path", "name"), ROUTES)
def test_an_unknown_parameter_is_refused(gateway: Gateway, path: str, name: str) -> None:
    _assert_400(_get(gateway, path, {"limt": "5"}), "unknown_parameter", "limt")
    _assert_400(_get(gateway, path, {"": "x"}), "unknown_parameter", "")
    _assert_400(_get(gateway, path, {"é": "x"}), "unknown_parameter", "é")
    assert _get(gateway, path, {}).status_code == (404 if "{" in path else 200)


@pytest.mark.parametrize(("path", "name"), ROUTES)
def test_a_value_that_is_not_utf8_is_refused(gateway: Gateway, path: str, name: str) -> None:
    response = httpx.get(f"{gateway.url}{_concrete(path)}?{name}=%FF",
                         headers={"Authorization": f"Bearer {gateway.tenant.api_key}"})
    _assert_400(response, "invalid_value", name)
    (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert row["status_code"] == 400
