"""Webhook errors (stable codes).

    DeepSpaceError
    ├── InvalidRequest
    │   └── InvalidWebhookError      400  invalid_webhook (invalid_url, unknown_event, …)
    ├── NotFound
    │   └── WebhookNotFoundError     404  webhook_not_found, delivery_not_found
    └── WebhookDeliveryError              webhook_delivery_failed (one Worker attempt; retried)
"""

from __future__ import annotations

from ..errors import DeepSpaceError, InvalidRequest, NotFound


class InvalidWebhookError(InvalidRequest):
    default_code = "invalid_webhook"


class WebhookNotFoundError(NotFound):
    default_code = "webhook_not_found"


class WebhookDeliveryError(DeepSpaceError):
    """An attempt failed (the Worker tries again); its message says how, never the secret."""

    default_code = "webhook_delivery_failed"
