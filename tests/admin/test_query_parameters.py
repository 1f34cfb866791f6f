"""Every Admin API route that takes query parameters refuses, for a platform admin, one given
twice, one it does not know and a bad ``limit``, with a 400 naming it — before it looks
anything up (``tests/api/test_query_parameters.py`` does the same for the product routes)."""

from __future__ import annotations

import re

from deepspace_lab.server_extension.openapi import openapi_document

from .conftest import AdminWorld

ROUTES = sorted((re.sub(r"\{\w+\}", "x1", path), params[0]["name"])
                for path, ops in openapi_document()["paths"].items() if path.startswith("/deepspace/admin/")
                if (params := [p for p in ops.get("get", {}).get("parameters", []) if p["in"] == "query"]))


def test_there_are_admin_routes_with_query_parameters() -> None:
    assert ("/deepspace/admin/api/transactions", "cursor") in ROUTES


def test_unknown_repeated_and_bad_limit_parameters_are_refused(admin_world: AdminWorld) -> None:
    w = admin_world
    for path, name in ROUTES:
        for params, code, param in (([("limt", "5")], "unknown_parameter", "limt"),
                                    ([(name, "1"), (name, "1")], "repeated_parameter", name)):
            response = w.call("GET", path, key=w.platform.key, params=params)
            assert response.status_code == 400, (path, params, response.text)
            assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)
        if "x1" not in path:
            for value in ("0", "201", "x"):
                response = w.call("GET", path, key=w.platform.key, params={"limit": value})
                assert response.status_code == 400 and response.json()["error"]["param"] == "limit", (path, value)
