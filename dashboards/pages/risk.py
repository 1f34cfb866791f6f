"""Rate limits, budget caps, IP allow/deny and model policies, edited with validation (ApiForm):
the Admin API's policy routes. Until those routes exist on the Gateway the page says so."""

from __future__ import annotations

from .base import PlaceholderPage


class RiskPage(PlaceholderPage):
    key = "risk"
    what = "what_risk"
