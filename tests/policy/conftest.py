"""The billing tests' gateway fixtures, so policy tests also check that every hold ends in
exactly one capture or release and that every ledger invariant holds after each test."""

from ..billing_pipeline.conftest import billed_gateways, gw

__all__ = ["billed_gateways", "gw"]
