"""Admin routes whose JSON body is optional (actions such as revoke, disable, rotate-secret) take
no body at all, but a body of whitespace alone is not JSON: 400 ``invalid_json`` before anything
is looked up or changed."""

from __future__ import annotations

import re

import pytest

from deepspace_lab.server_extension.openapi import openapi_document

from .conftest import AdminWorld

OPTIONAL_BODIES = sorted(
    path for path, ops in openapi_document()["paths"].items()
    if path.startswith("/deepspace/admin/") and "requestBody" in ops.get("post", {})
    and not ops["post"]["requestBody"]["required"])


def test_the_admin_optional_body_routes_are_found() -> None:
    assert len(OPTIONAL_BODIES) >= 5


@pytest.mark.parametrize("path", OPTIONAL_BODIES)
def test_a_whitespace_body_is_refused_before_the_lookup(admin_world: AdminWorld, path: str) -> None:
    w = admin_world
    url = re.sub(r"\{\w+\}", "x1", path)
    for raw in (b"\n\n", b" ", b"\t"):
        response = w.call("POST", url, key=w.platform.key, content=raw,
                          headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
        assert response.json()["error"]["code"] == "invalid_json"
    assert w.call("POST", url, key=w.platform.key).status_code == 404  # no body at all: then the lookup
