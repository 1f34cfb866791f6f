"""Wallets (credit or adjust with a reason), transactions, usage records, credit codes and
statements: the Admin API's money routes; its tables are PagedTable s, credits an ApiForm,
statements a JobProgress. Until those routes exist on the Gateway the page says so."""

from __future__ import annotations

from .base import PlaceholderPage


class BillingPage(PlaceholderPage):
    key = "billing"
    what = "what_billing"
