"""API keys and webhooks (create, test, delivery log): the Admin API's keys and webhooks routes.
Until those routes exist on the Gateway the page says so."""

from __future__ import annotations

from .base import PlaceholderPage


class SystemPage(PlaceholderPage):
    key = "system"
    what = "what_system"
