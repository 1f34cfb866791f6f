"""A route whose JSON body is optional takes no body at all, but a body of whitespace alone is
not JSON: 400 ``invalid_json``, nothing stored."""

from __future__ import annotations

import httpx
import pytest

from deepspace_lab.server_extension.openapi import openapi_document

from ..helpers import Gateway, count, make_tenant

OPTIONAL_BODIES = sorted(
    path for path, ops in openapi_document()["paths"].items()
    if "requestBody" in ops.get("post", {}) and not ops["post"]["requestBody"]["required"]
    and not path.startswith("/deepspace/admin/"))  # they need an admin: tests/admin/test_request_bodies.py
TABLES = {"/deepspace/api/conversations": "conversations", "/deepspace/api/keys": "api_keys"}


def test_the_optional_body_routes_are_all_found() -> None:
    assert OPTIONAL_BODIES == sorted(TABLES)


@pytest.mark.parametrize("path", OPTIONAL_BODIES)
def test_an_optional_body_may_be_absent_but_not_whitespace(gateway: Gateway, path: str) -> None:
    key = make_tenant(gateway.settings, email="bodies@example.org", scopes=("chat", "account")).api_key
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    before = count(gateway.db, TABLES[path])
    for raw in (b"\n\n", b" ", b"\t"):
        response = httpx.post(gateway.url + path, content=raw, headers=headers)
        assert response.status_code == 400, (raw, response.text)
        assert response.json()["error"]["code"] == "invalid_json"
    assert count(gateway.db, TABLES[path]) == before
    assert httpx.post(gateway.url + path, content=b"", headers=headers).status_code == 201
