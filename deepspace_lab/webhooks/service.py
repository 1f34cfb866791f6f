"""Webhook subscriptions: create (its secret shown once), list, read, update, delete and
rotate the secret. Every function takes the org it is limited to (``org_scope``; ``None``:
every org and the global hooks, for platform admins); another org's hook is not found.

Services only ``flush()``; the caller commits, with its audit row (never the secret).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.models import Org
from ..db.base import new_id, utcnow
from ..db.paging import check_limit, encode_cursor, newest_first
from .errors import InvalidWebhookError, WebhookNotFoundError
from .models import WEBHOOK_EVENTS, Webhook
from .signing import new_secret, seal_secret

MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class WebhookView:
    id: str
    org_id: str | None
    url: str
    events: list[str]
    enabled: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime | None
    secret_rotated_at: datetime | None

    @classmethod
    def of(cls, row: Webhook) -> WebhookView:
        return cls(id=row.id, org_id=row.org_id, url=row.url, events=list(row.events or ()), enabled=row.enabled,
                   created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at,
                   secret_rotated_at=row.secret_rotated_at)

    def to_dict(self) -> dict[str, Any]:
        """What callers and audit rows see: everything but the secret."""
        return {"id": self.id, "object": "webhook", "org_id": self.org_id, "url": self.url, "events": self.events,
                "enabled": self.enabled, "created_by": self.created_by, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "secret_rotated_at": self.secret_rotated_at.isoformat() if self.secret_rotated_at else None}


def check_url(url: object) -> str:
    """An absolute http(s) URL with a host and no credentials in it."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise InvalidWebhookError(f"`url` must be an http(s) URL of at most {MAX_URL} characters, no spaces",
                                  code="invalid_url", param="url")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # a bad port raises here
    except ValueError:
        raise InvalidWebhookError("`url` is not a valid URL", code="invalid_url", param="url") from None
    if not url.startswith(("http://", "https://")) or not host:
        raise InvalidWebhookError("`url` must start with http:// or https:// and name a host", code="invalid_url",
                                  param="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookError("`url` must not carry credentials; receivers check the signature instead",
                                  code="invalid_url", param="url")
    return url


def check_events(events: object) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidWebhookError(f"`events` is a non-empty list of {list(WEBHOOK_EVENTS)}", code="invalid_events",
                                  param="events")
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown:
        raise InvalidWebhookError(f"unknown events {unknown}; known: {list(WEBHOOK_EVENTS)}", code="unknown_event",
                                  param="events")
    return sorted(set(events))


def _check_enabled(enabled: object) -> bool:
    if not isinstance(enabled, bool):
        raise InvalidWebhookError("`enabled` is true or false", code="invalid_type", param="enabled")
    return enabled


async def webhook_row(session: AsyncSession, webhook_id: str, org_scope: str | None) -> Webhook:
    """The hook's row; another org's (or, for an org, a global one) is not found."""
    query = select(Webhook).where(Webhook.id == webhook_id)
    if org_scope is not None:
        query = query.where(Webhook.org_id == org_scope)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise WebhookNotFoundError(f"no webhook {webhook_id!r}", param="webhook_id")
    return row


async def create_webhook(session: AsyncSession, *, secret_key: str, org_id: str | None, url: object,
                         events: object, enabled: object = True, actor: str) -> tuple[WebhookView, str]:
    """A new hook (``org_id`` None: global); returns (view, plaintext secret — shown once)."""
    clean_url, clean_events, on = check_url(url), check_events(events), _check_enabled(enabled)
    if org_id is not None and await session.get(Org, org_id) is None:
        raise WebhookNotFoundError(f"no org {org_id!r}", code="org_not_found", param="org_id")
    secret = new_secret()
    row = Webhook(id=new_id("whk"), org_id=org_id, url=clean_url, events=clean_events, enabled=on,
                  secret_encrypted=seal_secret(secret_key, secret), created_by=actor)
    session.add(row)
    await session.flush()
    return WebhookView.of(row), secret


async def get_webhook(session: AsyncSession, *, webhook_id: str, org_scope: str | None) -> WebhookView:
    return WebhookView.of(await webhook_row(session, webhook_id, org_scope))


async def list_webhooks(session: AsyncSession, *, org_scope: str | None, org_id: str | None = None,
                        cursor: str | None = None,
                        limit: int | str | None = None) -> tuple[list[WebhookView], str | None]:
    """Hooks newest first, a page at a time: an org's (``org_scope``), or every one (``None``),
    optionally only ``org_id``'s. Returns (page, next cursor)."""
    size = check_limit(limit)
    query = select(Webhook)
    for org in {org_scope, org_id} - {None}:
        query = query.where(Webhook.org_id == org)
    rows = list((await session.execute(newest_first(query, Webhook.created_at, Webhook.id, cursor=cursor,
                                                    limit=size))).scalars())
    page = [WebhookView.of(r) for r in rows[:size]]
    return page, encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > size else None


async def update_webhook(session: AsyncSession, *, webhook_id: str, org_scope: str | None,
                         changes: dict[str, Any]) -> tuple[WebhookView, WebhookView]:
    """Change ``url``, ``events`` and/or ``enabled``; returns (after, before)."""
    unknown = sorted(set(changes) - {"url", "events", "enabled"})
    if unknown or not changes:
        raise InvalidWebhookError("change one or more of `url`, `events`, `enabled`", code="invalid_webhook",
                                  param=unknown[0] if unknown else None)
    row = await webhook_row(session, webhook_id, org_scope)
    before = WebhookView.of(row)
    if "url" in changes:
        row.url = check_url(changes["url"])
    if "events" in changes:
        row.events = check_events(changes["events"])
    if "enabled" in changes:
        row.enabled = _check_enabled(changes["enabled"])
    row.updated_at = utcnow()
    await session.flush()
    return WebhookView.of(row), before


async def delete_webhook(session: AsyncSession, *, webhook_id: str, org_scope: str | None) -> WebhookView:
    row = await webhook_row(session, webhook_id, org_scope)
    before = WebhookView.of(row)
    await session.delete(row)
    await session.flush()
    return before


async def rotate_secret(session: AsyncSession, *, secret_key: str, webhook_id: str,
                        org_scope: str | None) -> tuple[WebhookView, str]:
    """A new signing secret (the old one stops at once); returns (view, plaintext — shown once)."""
    row = await webhook_row(session, webhook_id, org_scope)
    secret = new_secret()
    row.secret_encrypted = seal_secret(secret_key, secret)
    row.secret_rotated_at = row.updated_at = utcnow()
    await session.flush()
    return WebhookView.of(row), secret


def events_of(values: Sequence[str]) -> list[str]:
    """``events`` given as a comma-separated string list (the CLI's form), checked."""
    return check_events([e.strip() for v in values for e in v.split(",") if e.strip()])
