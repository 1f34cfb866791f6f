"""Usage and cost trends (by day, model, org), top spenders and anomalies (spend and error-rate
spikes, holds stuck open, reconciliation drift, low balances), each linking to where to act: the
Admin API's overview, usage and metrics routes. Until those routes exist on the Gateway the page
says so."""

from __future__ import annotations

from .base import PlaceholderPage


class DashboardPage(PlaceholderPage):
    key = "dashboard"
    what = "what_dashboard"
