"""Webhooks (level 1): where the platform tells an org — or, for global ones, the operators —
about budget thresholds, low balances and anomalies.

This package keeps the subscriptions (CRUD, scoped by org; ``org_id`` None is a global hook)
and their signing secrets: generated on create and on rotation, shown once, stored encrypted
(Fernet under a key derived from ``DEEPSPACE_SECRET_KEY``) so that the Worker can later sign
each delivery with HMAC-SHA256 (:func:`signature`). Delivery itself is the Worker's (issue 10).
"""

from .errors import InvalidWebhookError, WebhookNotFoundError
from .models import WEBHOOK_EVENTS, Webhook
from .service import (
    WebhookView,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhooks,
    rotate_secret,
    update_webhook,
)
from .signing import open_secret, seal_secret, signature

__all__ = [
    "WEBHOOK_EVENTS", "InvalidWebhookError", "Webhook", "WebhookNotFoundError", "WebhookView", "create_webhook",
    "delete_webhook", "get_webhook", "list_webhooks", "open_secret", "rotate_secret", "seal_secret", "signature",
    "update_webhook",
]
