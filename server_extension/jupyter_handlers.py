"""Jupyter users → DeepSpace tokens (DESIGN §12.4).

- :class:`KernelTokenHandler` lives only on the Jupyter server (single-user mode): a
  Jupyter-authenticated request (token or cookie + XSRF, Jupyter's own rules) gets a
  short-lived DeepSpace access token for the server's user — the admin made by ``init``.
- :class:`HubExchangeHandler` lives on the gateway (remote mode): a Jupyter server presents
  its user's JupyterHub API token; the gateway checks it against the Hub, maps the Hub user
  name to a DeepSpace user (made on first use in the configured org and role) and answers
  with that user's tokens. No shared secret sits in the Jupyter server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import tornado.web
from jupyter_server.base.handlers import APIHandler
from sqlalchemy.ext.asyncio import AsyncSession
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from deepspace_lab.auth import open_session
from deepspace_lab.auth.jupyter import map_jupyter_user
from deepspace_lab.errors import AuthError, DeepSpaceError, NotFound, ServiceUnavailable
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, field, json_body
from .kernels import TokenSource

KERNEL_TOKEN_PATH = "/deepspace/api/jupyter/token"
KERNEL_ACCESS_TTL = timedelta(minutes=15)
KERNEL_REFRESH_TTL = timedelta(hours=12)


class KernelTokenHandler(APIHandler):
    """The Jupyter user's DeepSpace token pair (what kernels get at start, DESIGN §12.4), for a
    frontend or a kernel that needs a new one; in remote mode it comes from the shared Gateway."""

    auth_resource = "deepspace"

    def initialize(self, source: TokenSource) -> None:
        self.source = source

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            pair = await self.source.tokens()
        except DeepSpaceError as exc:
            self.set_status(exc.http_status)
            self.finish(orjson.dumps(exc.to_dict()))
            return
        self.finish(orjson.dumps(pair))


class HubExchangeHandler(ApiHandler):
    async def post(self) -> None:
        await self.api(action="", kind="auth.jupyterhub", work=self._exchange, public=True)

    async def _exchange(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        settings = self.runtime.settings
        if not settings.jupyterhub_api_url or not settings.jupyter_user_org:
            raise NotFound("this gateway does not take JupyterHub tokens (set DEEPSPACE_JUPYTERHUB_API_URL "
                           "and DEEPSPACE_JUPYTER_USER_ORG)", code="jupyterhub_not_configured")
        hub_token = field(json_body(ctx, required=("hub_token",), allowed=("hub_token",)), "hub_token", str)
        name = await hub_user_name(settings.jupyterhub_api_url, hub_token)
        user = await map_jupyter_user(session, name=name, org_id=settings.jupyter_user_org,
                                      role=settings.jupyter_user_role)
        pair = await open_session(session, secret_key=settings.require_secret_key(), user_id=user.id, kind="kernel",
                                  access_ttl=KERNEL_ACCESS_TTL, refresh_ttl=KERNEL_REFRESH_TTL)
        ctx.detail.update(jupyter_user=name, user_id=user.id)
        return 200, pair.to_dict()


async def hub_user_name(api_url: str, hub_token: str) -> str:
    """The Hub user that owns ``hub_token`` (JupyterHub's ``GET /user``), or AuthError."""
    request = HTTPRequest(api_url.rstrip("/") + "/user", headers={"Authorization": f"token {hub_token}"},
                          connect_timeout=5, request_timeout=10)
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except Exception:  # a Hub that cannot be reached is our problem, not the caller's
        raise ServiceUnavailable("JupyterHub cannot be reached to check the token", code="jupyterhub_unreachable",
                                 retry_after_s=5) from None
    if response.code in (401, 403, 404):
        raise AuthError("JupyterHub does not know this token", code="invalid_hub_token")
    if response.code != 200:
        raise ServiceUnavailable(f"JupyterHub answered HTTP {response.code}", code="jupyterhub_error",
                                 retry_after_s=5)
    name = orjson.loads(response.body).get("name")
    if not isinstance(name, str) or not name:
        raise AuthError("JupyterHub token has no user", code="invalid_hub_token")
    return name


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    return [("/deepspace/api/auth/jupyterhub", HubExchangeHandler, {"runtime": runtime})]
