"""Webhook errors (stable codes).

    DeepSpaceError
    ├── InvalidRequest
    │   └── InvalidWebhookError      400  invalid_webhook (invalid_url, unknown_event, …)
    └── NotFound
        └── WebhookNotFoundError     404  webhook_not_found
"""

from __future__ import annotations

from ..errors import InvalidRequest, NotFound


class InvalidWebhookError(InvalidRequest):
    default_code = "invalid_webhook"


class WebhookNotFoundError(NotFound):
    default_code = "webhook_not_found"
