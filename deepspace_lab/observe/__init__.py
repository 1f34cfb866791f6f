"""Observability for the Admin API (level 2): usage records and the request log across orgs,
trace lookup, the overview and its anomaly numbers. Plain queries over the tables the
pipeline, the ledger and the Worker write; the HTTP layer and the CLI share them.

Each function takes ``org_id``: ``None`` reads every org (platform admins), an id limits every
row to that org (org admins). Lists are keyset paged over ``(created_at, id)``, newest first.
"""

from ._query import Page
from .overview import overview
from .records import AUDIT_FILTERS, USAGE_FILTERS, search_audit, search_usage
from .trace import ITEM_TYPES, trace_items

__all__ = ["AUDIT_FILTERS", "ITEM_TYPES", "USAGE_FILTERS", "Page", "overview", "search_audit", "search_usage",
           "trace_items"]
