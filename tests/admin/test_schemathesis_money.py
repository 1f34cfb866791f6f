"""schemathesis on the money area as a platform admin (the document-wide run is a member's, who
gets 403 here): no 5xx, every answer as documented, bad input refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from deepspace_lab.server_extension.openapi import openapi_document

from .conftest import _make_platform_admin

MONEY = r"^/deepspace/admin/api/(models|wallets|transactions|credit-code)"
schema = schemathesis.openapi.from_dict(openapi_document()).include(path_regex=MONEY)


@pytest.fixture
def live(gateway_factory: Any) -> dict[str, Any]:
    gw = gateway_factory()
    platform = asyncio.run(_make_platform_admin(gw.settings.database_url))
    return {"url": gw.url, "headers": {"Authorization": f"Bearer {platform.key}"}}


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_money_routes_conform_to_their_document(case: Any, live: dict[str, Any]) -> None:
    # As in tests/api/test_schemathesis.py: schema-valid requests may still be refused against data
    # (an id that does not exist, a used Idempotency-Key with other parameters) with a documented 4xx.
    case.call_and_validate(base_url=live["url"], headers=live["headers"],
                           excluded_checks=[positive_data_acceptance])
