"""The OpenAPI document describes exactly the routes the handlers serve."""

from __future__ import annotations

import re

import httpx

from deepspace_lab.server_extension.openapi import openapi_document
from deepspace_lab.server_extension.routes import UnknownRouteHandler, all_handlers

from ..helpers import Gateway

METHODS = ("get", "post", "put", "patch", "delete")


def _served() -> set[tuple[str, str]]:
    """(spec-style path, method) for every method a route's handler class defines itself."""
    served = set()
    for pattern, handler, _ in all_handlers(runtime=None):  # type: ignore[arg-type]
        if handler is UnknownRouteHandler:
            continue
        names = iter(re.findall(r"\{(\w+)\}", _template_for(pattern)))
        path = re.sub(r"\([^)]*\)", lambda _, names=names: "{" + next(names) + "}", pattern)
        served |= {(path, method) for method in METHODS if method in vars(handler)}
    return served


def _template_for(pattern: str) -> str:
    """The spec path that documents a route pattern with capture groups: the same path with
    each group where the spec names a parameter."""
    shape = re.sub(r"\([^)]*\)", "{}", pattern)
    for path in openapi_document()["paths"]:
        if re.sub(r"\{\w+\}", "{}", path) == shape:
            return path
    return pattern


def test_every_route_and_method_is_documented_and_nothing_else() -> None:
    documented = {(path, method) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert _served() == documented


def test_the_document_is_served_without_credentials(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + "/deepspace/api/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi_document()
