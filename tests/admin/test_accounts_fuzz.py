"""schemathesis on the accounts area's admin routes with a platform admin's key (the document's
own fuzz test calls as a tenant, which every admin route refuses): no 5xx, and every answer —
lists, validation errors, not-founds — conforms to the document."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from deepspace_lab.server_extension.openapi import openapi_document

from ..api.test_schemathesis import filter_query

AREA = ("/users", "/orgs", "/keys", "/webhooks", "/policies", "/budgets")
schema = schemathesis.openapi.from_dict(openapi_document()).include(
    path_regex="^/deepspace/admin/api(" + "|".join(AREA) + ")")



@pytest.mark.slow
@schema.hooks.apply(filter_query)
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_accounts_area_conforms_for_a_platform_admin(case: Any, admin_live: dict[str, Any]) -> None:
    # Schema-valid requests may still be refused against data (ids that name nothing, a model not in
    # the catalog, an IP allow rule shutting the caller out): documented 4xx, so positive acceptance is off.
    case.call_and_validate(base_url=admin_live["url"], headers=admin_live["headers"],
                           excluded_checks=[positive_data_acceptance])
