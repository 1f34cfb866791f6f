"""Admin API, system area: API keys across orgs (list with filters, revoke — never a secret)
and webhooks (CRUD and secret rotation; delivery is the Worker's, issue 10).

Keys are platform-wide (platform admins only); webhooks are per org, and an org's admins
manage their own org's (global hooks are the platform admins').
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth.directory import revoke_any_api_key, search_api_keys
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime
from deepspace_lab.webhooks import (
    WEBHOOK_EVENTS,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhooks,
    rotate_secret,
    update_webhook,
)

from .admin_accounts import BOOL, PATH_ID, admin_params, flag
from .admin_api import ADMIN, AdminHandler
from .api import iso, json_body, principal_of, query_params
from .identity_handlers import _key_json
from .openapi import ID, NSTR, NTIME, PAGING, SCHEMAS, STR, TIME, listing, obj, op, path_id

KEY_FILTERS = ("org_id", "user_id", "project_id", "revoked", "cursor", "limit")


def admin_key_json(key: Any, email: str | None = None) -> dict[str, Any]:
    return dict(_key_json(key), org_id=key.org_id, **({"user_email": email} if email is not None else {}))


class AllKeysHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=KEY_FILTERS)
            keys, nxt = await search_api_keys(
                session, org_id=params.get("org_id"), user_id=params.get("user_id"),
                project_id=params.get("project_id"), revoked=flag(params, "revoked"), cursor=params.get("cursor"),
                limit=params.get("limit"))
            return 200, {"data": [admin_key_json(k, email) for k, email in keys], "next_cursor": nxt}

        await self.admin(kind="admin.keys.list", work=work, org_admins=False)


class AnyKeyHandler(AdminHandler):
    async def delete(self, key_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            key, was_live = await revoke_any_api_key(session, key_id=key_id)
            ctx.detail.update(key_id=key.id, key_prefix=key.prefix, target_org_id=key.org_id,
                              before={"revoked": not was_live}, after={"revoked": True})
            return 200, admin_key_json(key)

        await self.admin(kind="admin.keys.revoke", work=work, write=True, org_admins=False)


def _secret_key(handler: AdminHandler) -> str:
    return handler.runtime.settings.require_secret_key()


class WebhooksHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("org_id", "cursor", "limit"))
            hooks, nxt = await list_webhooks(session, org_scope=self.org_scope(ctx),
                                             org_id=self.target_org(ctx, params.get("org_id")),
                                             cursor=params.get("cursor"), limit=params.get("limit"))
            return 200, {"data": [h.to_dict() for h in hooks], "next_cursor": nxt}

        await self.admin(kind="admin.webhooks.list", work=work)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("url", "events"), allowed=("url", "events", "enabled", "org_id"))
            requested = body.get("org_id")
            if requested is not None and not isinstance(requested, str):
                raise InvalidRequest("`org_id` is an org id, or null for a global webhook", code="invalid_type",
                                     param="org_id")
            scope = self.org_scope(ctx)
            org_id = self.target_org(ctx, requested) if scope is not None else requested
            view, secret = await create_webhook(session, secret_key=_secret_key(self), org_id=org_id,
                                                url=body["url"], events=body["events"],
                                                enabled=body.get("enabled", True), actor=principal_of(ctx).actor)
            ctx.detail.update(webhook_id=view.id, target_org_id=view.org_id, before=None, after=view.to_dict())
            return 201, dict(view.to_dict(), secret=secret)

        await self.admin(kind="admin.webhooks.create", work=work, write=True)


class WebhookHandler(AdminHandler):
    async def get(self, webhook_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            return 200, (await get_webhook(session, webhook_id=webhook_id, org_scope=self.org_scope(ctx))).to_dict()

        await self.admin(kind="admin.webhooks.read", work=work)

    async def patch(self, webhook_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, allowed=("url", "events", "enabled"))
            after, before = await update_webhook(session, webhook_id=webhook_id, org_scope=self.org_scope(ctx),
                                                 changes=body)
            ctx.detail.update(webhook_id=webhook_id, target_org_id=after.org_id, before=before.to_dict(),
                              after=after.to_dict())
            return 200, after.to_dict()

        await self.admin(kind="admin.webhooks.update", work=work, write=True)

    async def delete(self, webhook_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            gone = await delete_webhook(session, webhook_id=webhook_id, org_scope=self.org_scope(ctx))
            ctx.detail.update(webhook_id=webhook_id, target_org_id=gone.org_id, before=gone.to_dict(), after=None)
            return 204, None

        await self.admin(kind="admin.webhooks.delete", work=work, write=True)


class WebhookSecretHandler(AdminHandler):
    async def post(self, webhook_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            json_body(ctx, allowed=())
            before = await get_webhook(session, webhook_id=webhook_id, org_scope=self.org_scope(ctx))
            view, secret = await rotate_secret(session, secret_key=_secret_key(self), webhook_id=webhook_id,
                                               org_scope=self.org_scope(ctx))
            ctx.detail.update(webhook_id=webhook_id, target_org_id=view.org_id,
                              before={"secret_rotated_at": iso(before.secret_rotated_at)},
                              after={"secret_rotated_at": iso(view.secret_rotated_at)})
            return 200, dict(view.to_dict(), secret=secret)

        await self.admin(kind="admin.webhooks.rotate", work=work, write=True)


_EVENTS = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(WEBHOOK_EVENTS)}}
_URL = {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": "^https?://"}
_HOOK = {"id": STR, "object": {"const": "webhook"}, "org_id": NSTR, "url": STR,
         "events": {"type": "array", "items": STR}, "enabled": {"type": "boolean"}, "created_by": NSTR,
         "created_at": TIME, "updated_at": NTIME, "secret_rotated_at": NTIME}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "AdminApiKey": obj({**{k: v for k, v in SCHEMAS["ApiKey"]["properties"].items() if k != "api_key"},
                        "org_id": STR, "user_email": STR}, ["id", "prefix", "org_id", "project_id", "user_id",
                                                            "scopes", "revoked_at"]),
    "AdminApiKeyPage": listing("AdminApiKey", paged=True),
    "Webhook": obj(_HOOK, list(_HOOK)),
    "WebhookWithSecret": obj({**_HOOK, "secret": {"type": "string", "description": "shown this once"}},
                             [*_HOOK, "secret"]),
    "WebhookPage": listing("Webhook", paged=True),
    "NewWebhook": obj({"url": _URL, "events": _EVENTS, "enabled": {"type": "boolean"},
                       "org_id": {"type": ["string", "null"], "pattern": ID["pattern"],
                                  "description": "platform admins: null or absent for a global webhook"}},
                      ["url", "events"]),
    "WebhookChange": {**obj({"url": _URL, "events": _EVENTS, "enabled": {"type": "boolean"}}), "minProperties": 1},
}


def openapi_paths() -> dict[str, Any]:
    hook = [path_id("webhook_id")]
    q = [{"name": name, "in": "query", "required": False, "schema": ID} for name in ("org_id", "user_id",
                                                                                     "project_id")]
    return {
        f"{ADMIN}/keys": {"get": op("API keys of every org, newest first (never their secrets)", "200",
                                    "AdminApiKeyPage", params=[
                                        *q, {"name": "revoked", "in": "query", "required": False, "schema": BOOL},
                                        *PAGING])},
        f"{ADMIN}/keys/{{key_id}}": {"delete": op("Revoke any org's key: refused from its next request on", "200",
                                                  "AdminApiKey", errors=("404",), params=[path_id("key_id")])},
        f"{ADMIN}/webhooks": {
            "get": op("Webhooks, newest first (org admins: their org's)", "200", "WebhookPage", errors=("404",),
                      params=[q[0], *PAGING]),
            "post": op("Add a webhook; its signing secret is in this answer only", "201", "WebhookWithSecret",
                       body="NewWebhook", errors=("404",))},
        f"{ADMIN}/webhooks/{{webhook_id}}": {
            "get": op("A webhook", "200", "Webhook", errors=("404",), params=hook),
            "patch": op("Change a webhook's URL, events or enabled", "200", "Webhook", body="WebhookChange",
                        errors=("404",), params=hook),
            "delete": op("Delete a webhook", "204", None, errors=("404",), params=hook)},
        f"{ADMIN}/webhooks/{{webhook_id}}/rotate-secret": {"post": op(
            "A new signing secret (the old one stops at once), in this answer only", "200", "WebhookWithSecret",
            body="AdminNoBody", body_required=False, errors=("404",), params=hook)},
    }


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (ADMIN + "/keys", AllKeysHandler, kwargs),
        (ADMIN + "/keys/" + PATH_ID, AnyKeyHandler, kwargs),
        (ADMIN + "/webhooks", WebhooksHandler, kwargs),
        (ADMIN + "/webhooks/" + PATH_ID, WebhookHandler, kwargs),
        (ADMIN + "/webhooks/" + PATH_ID + "/rotate-secret", WebhookSecretHandler, kwargs),
    ]
