"""Webhooks (level 1): where the platform tells an org — or, for global ones, the operators —
about budget thresholds, low balances and anomalies.

This package keeps the subscriptions (CRUD, scoped by org; ``org_id`` None is a global hook)
and their signing secrets: generated on create and on rotation, shown once, stored encrypted
(Fernet under a key derived from ``DEEPSPACE_SECRET_KEY``) so that the Worker can sign each
delivery with HMAC-SHA256 (:func:`signature`); and the delivery log (:mod:`.deliveries`: the
event body, the signed headers a receiver checks with :func:`verify_signature`, one row per
attempt). Finding the events and delivering them is the Worker's (``deepspace_lab.jobs.alerts``
and ``deepspace_lab.jobs.webhooks``, level 2).
"""

from .deliveries import DeliveryView, event_body, get_delivery, list_deliveries, signed_headers, verify_signature
from .errors import InvalidWebhookError, WebhookDeliveryError, WebhookNotFoundError
from .models import PING, WEBHOOK_EVENTS, Webhook, WebhookAlert, WebhookDelivery
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
    "PING", "WEBHOOK_EVENTS", "DeliveryView", "InvalidWebhookError", "Webhook", "WebhookAlert",
    "WebhookDelivery", "WebhookDeliveryError", "WebhookNotFoundError", "WebhookView", "create_webhook",
    "delete_webhook", "event_body", "get_delivery", "get_webhook", "list_deliveries", "list_webhooks",
    "open_secret", "rotate_secret", "seal_secret", "signature", "signed_headers", "update_webhook",
    "verify_signature",
]
