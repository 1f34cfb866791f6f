"""schemathesis against the observe routes as a platform admin (the document-wide fuzz runs
as a tenant, who only ever gets 403 here): no 5xx, bad input refused, answers as documented."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from deepspace_lab.server_extension.openapi import openapi_document

from ..api.test_schemathesis import filter_query

schema = schemathesis.openapi.from_dict(openapi_document()).include(
    path_regex="^/deepspace/admin/api/(usage|audit|traces|overview|exports|statements|metrics)")



@pytest.mark.slow
@schema.hooks.apply(filter_query)
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_observe_routes_conform_as_an_admin(case: Any, admin_live: dict[str, Any]) -> None:
    case.call_and_validate(base_url=admin_live["url"], headers=admin_live["headers"],
                           excluded_checks=[positive_data_acceptance])
