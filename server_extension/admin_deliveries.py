"""Admin API, webhook deliveries: a hook's delivery log (every attempt, newest first, keyset
paged), a ``ping`` test event, and a redelivery of an earlier event — both queued for the
Worker (202 with the job; the log shows the attempts as they happen). Org admins on their own
org's hooks, platform admins on every hook (global ones too); another org's hook is 404."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.jobs.webhooks import queue_redelivery, queue_test
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime
from deepspace_lab.webhooks.deliveries import list_deliveries
from deepspace_lab.webhooks.models import DELIVERY_STATUSES, DELIVERY_TRIGGERS

from .admin_accounts import PATH_ID, admin_params
from .admin_api import ADMIN, AdminHandler
from .api import json_body, principal_of
from .openapi import NSTR, PAGING, STR, TIME, listing, obj, op, path_id


class DeliveriesHandler(AdminHandler):
    async def get(self, webhook_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("cursor", "limit"))
            page, nxt = await list_deliveries(session, webhook_id=webhook_id, org_scope=self.org_scope(ctx),
                                              cursor=params.get("cursor"), limit=params.get("limit"))
            return 200, {"data": [d.to_dict() for d in page], "next_cursor": nxt}

        await self.admin(kind="admin.webhooks.deliveries", work=work)


class WebhookTestHandler(AdminHandler):
    async def post(self, webhook_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            json_body(ctx, allowed=())
            queued = await queue_test(session, self.runtime.engine, self.runtime.job_queue, webhook_id=webhook_id,
                                      org_scope=self.org_scope(ctx), actor=principal_of(ctx).actor,
                                      trace_id=ctx.trace_id)
            ctx.detail.update(webhook_id=queued.webhook_id, target_org_id=queued.org_id, event_id=queued.event_id,
                              job_id=queued.job.id)
            return 202, queued.to_dict()

        await self.admin(kind="admin.webhooks.test", work=work, write=True)


class RedeliverHandler(AdminHandler):
    async def post(self, webhook_id: str, delivery_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            json_body(ctx, allowed=())
            queued = await queue_redelivery(session, self.runtime.engine, self.runtime.job_queue,
                                            webhook_id=webhook_id, delivery_id=delivery_id,
                                            org_scope=self.org_scope(ctx), actor=principal_of(ctx).actor,
                                            trace_id=ctx.trace_id)
            ctx.detail.update(webhook_id=webhook_id, target_org_id=queued.org_id, event_id=queued.event_id,
                              redelivery_of=delivery_id, job_id=queued.job.id)
            return 202, queued.to_dict()

        await self.admin(kind="admin.webhooks.redeliver", work=work, write=True)


_DELIVERY = {"object": {"const": "webhook_delivery"}, "id": STR, "webhook_id": STR, "org_id": NSTR,
             "event_id": STR, "event": STR, "trigger": {"enum": list(DELIVERY_TRIGGERS)}, "job_id": NSTR,
             "attempt": {"type": "integer", "minimum": 1}, "status": {"enum": list(DELIVERY_STATUSES)},
             "response_code": {"type": ["integer", "null"]}, "latency_ms": {"type": ["integer", "null"]},
             "error": NSTR, "body": {"type": "string", "description": "the JSON text sent, as signed"},
             "trace_id": NSTR, "created_at": TIME}
_QUEUED = {"object": {"const": "webhook_delivery_job"}, "webhook_id": STR, "event": STR, "event_id": STR,
           "job_id": STR, "state": STR, "max_attempts": {"type": "integer"}}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "WebhookDelivery": obj(_DELIVERY, list(_DELIVERY)),
    "WebhookDeliveryPage": listing("WebhookDelivery", paged=True),
    "WebhookDeliveryJob": obj(_QUEUED, list(_QUEUED)),
}


def openapi_paths() -> dict[str, Any]:
    hook = [path_id("webhook_id")]
    return {
        f"{ADMIN}/webhooks/{{webhook_id}}/deliveries": {"get": op(
            "A webhook's delivery attempts, newest first (status, attempt, response code, latency, error, body)",
            "200", "WebhookDeliveryPage", errors=("404",), params=[*hook, *PAGING])},
        f"{ADMIN}/webhooks/{{webhook_id}}/test": {"post": op(
            "Queue a signed `ping` event to this webhook (delivered by the Worker)", "202", "WebhookDeliveryJob",
            body="AdminNoBody", body_required=False, errors=("404",), params=hook)},
        f"{ADMIN}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver": {"post": op(
            "Send an earlier delivery's event again (same body and event id, a fresh signature)", "202",
            "WebhookDeliveryJob", body="AdminNoBody", body_required=False, errors=("404",),
            params=[*hook, path_id("delivery_id")])},
    }


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    hook = ADMIN + "/webhooks/" + PATH_ID
    return [
        (hook + "/deliveries", DeliveriesHandler, kwargs),
        (hook + "/test", WebhookTestHandler, kwargs),
        (hook + "/deliveries/" + PATH_ID + "/redeliver", RedeliverHandler, kwargs),
    ]
