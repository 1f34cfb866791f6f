"""Webhook delivery on the Worker: the ``webhook_delivery`` job kind and the queuing of events.

One job delivers one event to one hook. Each attempt signs the body afresh (timestamp and
HMAC, :func:`deepspace_lab.webhooks.deliveries.signed_headers`), POSTs it with a timeout
(``DEEPSPACE_WEBHOOK_TIMEOUT_S``, redirects not followed; a host that resolves to a
non-public address is refused unless ``DEEPSPACE_WEBHOOK_PRIVATE_NETWORKS`` allows it, and the
connection goes to the address checked, so a name cannot be rebound in between) and writes its row in
``webhook_deliveries``; a 2xx succeeds, anything else — an error, a timeout, another status —
fails the attempt, and the Worker tries again with exponential backoff (1, 2, 4, 8 … s, at
most 60) until ``DEEPSPACE_WEBHOOK_MAX_ATTEMPTS`` attempts are used. The jobs belong to the
deployment (no org sees them among its jobs); an org admin reads the delivery log instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..db import make_sessionmaker
from ..db.base import new_id
from ..policy.rules import parse_networks
from ..tracing import new_trace_id
from ..webhooks import open_secret
from ..webhooks.deliveries import event_body, get_delivery, ping_event, record_attempt, signed_headers
from ..webhooks.errors import WebhookDeliveryError
from ..webhooks.models import DELIVERY_TRIGGERS, PING, Webhook
from ..webhooks.service import webhook_row
from .errors import JobParamsError
from .kinds import JobKind
from .queue import JobQueue
from .service import JobView
from .submit import submit_job

if TYPE_CHECKING:
    from .worker import JobContext

KIND = "webhook_delivery"
PARAMS = ("webhook_id", "event", "event_id", "body", "trigger")


def _check(params: dict[str, Any]) -> dict[str, Any]:
    if set(params) != set(PARAMS) or not all(isinstance(params[name], str) and params[name] for name in PARAMS):
        raise JobParamsError(f"a webhook delivery takes the strings {list(PARAMS)}", param="params")
    if params["trigger"] not in DELIVERY_TRIGGERS:
        raise JobParamsError(f"`trigger` is one of {list(DELIVERY_TRIGGERS)}", param="trigger")
    return dict(params)


class Target(NamedTuple):
    """Where a delivery goes: the ``address`` checked and connected to, or why not (``refused``,
    a setting: final; ``error``, passing: retried)."""

    address: str | None = None
    refused: str | None = None
    error: str | None = None


async def resolve_target(url: str, allowed: str) -> Target:
    """Resolve ``url``'s host once: every address it resolves to must be public, or inside one of
    the ``allowed`` networks (``DEEPSPACE_WEBHOOK_PRIVATE_NETWORKS``), so a hook cannot make the
    Worker probe the deployment's own network. The POST then connects to the address checked
    here, never resolving again: a name that answers a public address to the check and a private
    one to the connection (DNS rebinding) still reaches only the public one."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return Target(error="could not resolve the receiver's host")  # retried: DNS may come back
    networks = parse_networks(allowed)
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not address.is_global and not any(address in n for n in networks):
            return Target(refused=f"the receiver's address {address} is not public; deliveries to it are refused "
                                  f"(allow its network with DEEPSPACE_WEBHOOK_PRIVATE_NETWORKS)")
    return Target(address=str(addresses[0])) if addresses else Target(error="the receiver's host has no address")


async def _post(url: str, address: str, body: bytes, headers: dict[str, str],
                timeout_s: float) -> tuple[int | None, str | None]:
    """POST to ``address`` as ``url`` (its Host header, and its name for TLS: SNI and the
    certificate check); (status code, error): error None for a 2xx."""
    named = httpx.URL(url)
    pinned = named.copy_with(host=address)
    extensions = {"sni_hostname": named.host} if named.scheme == "https" else {}
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            response = await client.post(pinned, content=body, headers={**headers, "Host": named.netloc.decode()},
                                         extensions=extensions)
    except httpx.TimeoutException:
        return None, f"timed out after {timeout_s:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: could not reach the receiver"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"the receiver answered {response.status_code}"


async def send(url: str, body: bytes, headers: dict[str, str], *, allowed: str,
               timeout_s: float) -> tuple[int | None, str | None, bool]:
    """One attempt: (status code, error, final); ``final`` when the address is refused."""
    target = await resolve_target(url, allowed)
    if target.address is None:
        return None, target.refused or target.error, target.refused is not None
    return (*await _post(url, target.address, body, headers, timeout_s), False)


async def _deliver(ctx: JobContext) -> dict[str, Any]:
    p, job, settings = ctx.job.params, ctx.job, ctx.settings
    async with make_sessionmaker(ctx.engine)() as session:
        hook = await session.get(Webhook, p["webhook_id"])
        if hook is None:
            return {"skipped": "webhook_deleted"}
        if not hook.enabled and p["trigger"] == "event":
            return {"skipped": "webhook_disabled"}
        url, org_id = hook.url, hook.org_id
        secret = open_secret(settings.require_secret_key(), hook.secret_encrypted)
    delivery_id = new_id("dlv")
    body = p["body"].encode()
    headers = signed_headers(secret, body=body, event=p["event"], event_id=p["event_id"], delivery_id=delivery_id)
    started = time.monotonic()
    code, error, refused = await send(url, body, headers, allowed=settings.webhook_private_networks,
                                      timeout_s=settings.webhook_timeout_s)
    latency_ms = int((time.monotonic() - started) * 1000)
    final = refused or job.attempts >= job.max_attempts
    status = "succeeded" if error is None else "failed" if final else "retrying"
    async with make_sessionmaker(ctx.engine)() as session:
        record_attempt(session, delivery_id=delivery_id, webhook_id=p["webhook_id"], org_id=org_id,
                       event_id=p["event_id"], event=p["event"], trigger=p["trigger"], job_id=job.id,
                       attempt=job.attempts, status=status, body=p["body"], response_code=code,
                       latency_ms=latency_ms, error=error, trace_id=job.trace_id)
        await session.commit()
    if refused:  # a setting, not a passing failure: no retry
        return {"delivery_id": delivery_id, "status": status, "error": error, "attempts": job.attempts}
    if error is not None:
        raise WebhookDeliveryError(f"attempt {job.attempts} of {job.max_attempts}: {error}")
    return {"delivery_id": delivery_id, "status": status, "response_code": code, "attempts": job.attempts}


WEBHOOK_DELIVERY = JobKind(KIND, _deliver, _check,
                           "POSTs one signed event to one webhook; retried with backoff on any failure.")


async def queue_delivery(engine: AsyncEngine, queue: JobQueue, *, webhook_id: str, event: str, event_id: str,
                         body: str, trigger: str, trace_id: str | None = None,
                         created_by: str | None = None) -> JobView:
    """Record and enqueue the job that delivers ``body`` to one hook."""
    return await submit_job(engine, queue, kind=KIND, trace_id=trace_id or new_trace_id(), org_id=None,
                            created_by=created_by, max_attempts=queue.settings.webhook_max_attempts,
                            params={"webhook_id": webhook_id, "event": event, "event_id": event_id, "body": body,
                                    "trigger": trigger})


class Queued(NamedTuple):
    """A test or redelivery queued for the Worker: its job, and the event it delivers."""

    job: JobView
    webhook_id: str
    event: str
    event_id: str
    org_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"object": "webhook_delivery_job", "webhook_id": self.webhook_id, "event": self.event,
                "event_id": self.event_id, "job_id": self.job.id, "state": self.job.state,
                "max_attempts": self.job.max_attempts}


async def queue_test(session: AsyncSession, engine: AsyncEngine, queue: JobQueue, *, webhook_id: str,
                     org_scope: str | None, actor: str, trace_id: str | None = None) -> Queued:
    """Queue a signed ``ping`` to a hook (``org_scope``: only that org's hooks; 404 otherwise)."""
    hook = await webhook_row(session, webhook_id, org_scope)
    event_id, body = ping_event(webhook_id=hook.id, org_id=hook.org_id, sent_by=actor)
    job = await queue_delivery(engine, queue, webhook_id=hook.id, event=PING, event_id=event_id, body=body,
                               trigger="test", trace_id=trace_id, created_by=actor)
    return Queued(job, hook.id, PING, event_id, hook.org_id)


async def queue_redelivery(session: AsyncSession, engine: AsyncEngine, queue: JobQueue, *, webhook_id: str,
                           delivery_id: str, org_scope: str | None, actor: str,
                           trace_id: str | None = None) -> Queued:
    """Queue an earlier delivery's event again: the same body and event id, a fresh signature."""
    earlier = await get_delivery(session, webhook_id=webhook_id, delivery_id=delivery_id, org_scope=org_scope)
    job = await queue_delivery(engine, queue, webhook_id=webhook_id, event=earlier.event, event_id=earlier.event_id,
                               body=earlier.body, trigger="redeliver", trace_id=trace_id, created_by=actor)
    return Queued(job, webhook_id, earlier.event, earlier.event_id, earlier.org_id)


async def hooks_for(session: AsyncSession, *, event: str, org_id: str | None) -> list[str]:
    """The ids of the enabled hooks that asked for ``event`` about ``org_id``: that org's own
    and the global ones (an event of no org goes to the global hooks only)."""
    whose = Webhook.org_id.is_(None) if org_id is None else or_(Webhook.org_id == org_id, Webhook.org_id.is_(None))
    rows = (await session.execute(select(Webhook.id, Webhook.events)
                                  .where(Webhook.enabled.is_(True), whose).order_by(Webhook.id))).all()
    return [r.id for r in rows if event in (r.events or ())]


async def publish_event(engine: AsyncEngine, queue: JobQueue, *, event: str, org_id: str | None,
                        data: dict[str, Any]) -> list[JobView]:
    """Queue ``event`` to every hook that asked for it; one job and one event id per hook."""
    async with make_sessionmaker(engine)() as session:
        targets = await hooks_for(session, event=event, org_id=org_id)
    jobs = []
    for hook_id in targets:
        eid = new_id("evt")
        body = event_body(event, event_id=eid, org_id=org_id, data=data)
        jobs.append(await queue_delivery(engine, queue, webhook_id=hook_id, event=event, event_id=eid, body=body,
                                         trigger="event"))
    return jobs
