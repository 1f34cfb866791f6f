"""The model catalog and pricing rules (schedule a price, see its history): the Admin API's models
and prices routes. Until those routes exist on the Gateway the page says so."""

from __future__ import annotations

from .base import PlaceholderPage


class ModelsPage(PlaceholderPage):
    key = "models"
    what = "what_models"
