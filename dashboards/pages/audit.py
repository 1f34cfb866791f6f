"""Trace lookup drawn as a timeline of one request, and request-log search: the Admin API's audit
and trace routes (a PagedTable with filters). Until those routes exist on the Gateway the page
says so."""

from __future__ import annotations

from .base import PlaceholderPage


class AuditPage(PlaceholderPage):
    key = "audit"
    what = "what_audit"
