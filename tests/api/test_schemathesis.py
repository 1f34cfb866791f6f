"""schemathesis against the OpenAPI document on a live gateway: no 5xx, and every answer
conforms to the document (status codes, content types, bodies)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from deepspace_lab.server_extension.openapi import openapi_document

from ..helpers import make_tenant

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture
def live(gateway_factory: Any) -> dict[str, Any]:
    gw = gateway_factory()
    tenant = make_tenant(gw.settings, email="fuzz-owner@example.org",
                         scopes=("chat", "knowledge", "workflows", "account"))
    return {"url": gw.url, "headers": {"Authorization": f"Bearer {tenant.api_key}"}}


def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    """Leave out queries with a parameter whose value is an empty list: the HTTP client sends no
    such parameter at all, so a case made negative by that parameter alone (an unknown name,
    ``?=`` with ``[]``) reaches the gateway as a valid request and would fail the negative check
    for nothing (seen with schemathesis 4.32)."""
    return query is None or all(value != [] for value in query.values())


@pytest.mark.slow
@schema.hooks.apply(filter_query)
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case: Any, live: dict[str, Any]) -> None:
    # Not checked: that every schema-valid request succeeds. Several fields are valid only against
    # data, not the schema (a model in the catalog, a cursor we issued, an expiry in the future), and
    # those are refused with a documented 4xx. Every other check runs: no 5xx, negative data
    # rejected, status codes, content types, headers and bodies as documented.
    case.call_and_validate(base_url=live["url"], headers=live["headers"],
                           excluded_checks=[positive_data_acceptance])
