"""What a kernel gets from its Jupyter server (DESIGN §12.4): the Gateway URL and a
short-lived user token — never the database, Redis, upstream or signing secrets.

- **Single-user** (the extension hosts the Gateway): the token is minted here for the server's
  user (the admin made by ``init``) and the URL is this server's own.
- **Remote mode** (``DEEPSPACE_GATEWAY_URL`` set on the Jupyter server): the server holds no
  database or upstream secret and hosts no Gateway; it exchanges its user's JupyterHub API
  token (``JUPYTERHUB_API_TOKEN``, which JupyterHub gives every single-user server) at the
  shared Gateway's ``/deepspace/api/auth/jupyterhub`` for that user's own token.

The kernel environment has every ``DEEPSPACE_*`` server setting removed, then
``DEEPSPACE_GATEWAY_URL``, ``DEEPSPACE_TOKEN`` and ``DEEPSPACE_REFRESH_TOKEN`` added; the
client (``deepspace_lab.client``) picks them up and renews the access token with the refresh
token. A restarted kernel gets a fresh pair. A kernel started when no token can be made
(e.g. before ``init``) starts anyway, without one, and the failure is logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx

from deepspace_lab.auth import open_session
from deepspace_lab.auth.jupyter import single_user
from deepspace_lab.config import SETTINGS
from deepspace_lab.errors import AuthError, ServiceUnavailable
from deepspace_lab.runtime import Runtime

log = logging.getLogger("deepspace_lab.kernels")

URL_ENV, TOKEN_ENV, REFRESH_ENV = "DEEPSPACE_GATEWAY_URL", "DEEPSPACE_TOKEN", "DEEPSPACE_REFRESH_TOKEN"
#: Server settings (secrets among them) and credentials the server did not mint: never a kernel's.
STRIPPED = frozenset({spec.env for spec in SETTINGS} | {"DEEPSPACE_API_KEY", "DEEPSPACE_PROJECT", URL_ENV,
                                                        TOKEN_ENV, REFRESH_ENV})


class TokenSource(Protocol):
    async def tokens(self) -> dict[str, Any]:
        """A fresh token pair (``access_token``, ``refresh_token``, …) for the server's user."""


class LocalTokens:
    """Single-user mode: mint the pair in this process (the Gateway runs here)."""

    def __init__(self, runtime: Runtime, *, access_ttl: Any, refresh_ttl: Any) -> None:
        self.runtime, self.access_ttl, self.refresh_ttl = runtime, access_ttl, refresh_ttl

    async def tokens(self) -> dict[str, Any]:
        async with self.runtime.sessions() as session:
            user = await single_user(session)
            pair = await open_session(session, secret_key=self.runtime.settings.require_secret_key(),
                                      user_id=user.id, kind="kernel", access_ttl=self.access_ttl,
                                      refresh_ttl=self.refresh_ttl)
            await session.commit()
        return dict(pair.to_dict(), user_id=user.id)


class HubTokens:
    """Remote mode: exchange the user's JupyterHub API token at the shared Gateway."""

    def __init__(self, gateway_url: str, hub_token: str | None) -> None:
        self.gateway_url, self.hub_token = gateway_url.rstrip("/"), hub_token

    async def tokens(self) -> dict[str, Any]:
        if not self.hub_token:
            raise AuthError("remote mode needs JUPYTERHUB_API_TOKEN in the Jupyter server's environment",
                            code="missing_hub_token")
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(self.gateway_url + "/deepspace/api/auth/jupyterhub",
                                             json={"hub_token": self.hub_token})
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"the Gateway at {self.gateway_url} cannot be reached: {exc}",
                                     code="gateway_unreachable") from None
        if response.status_code != 200:
            raise AuthError(f"the Gateway refused the Hub token (HTTP {response.status_code}: "
                            f"{response.text[:200]})", code="hub_exchange_failed")
        return dict(response.json())


def kernel_env(base: Mapping[str, str], *, gateway_url: str, pair: Mapping[str, Any] | None) -> dict[str, str]:
    """``base`` without server settings or foreign credentials, plus the handoff."""
    env = {k: v for k, v in base.items() if k not in STRIPPED}
    env[URL_ENV] = gateway_url
    if pair is not None:
        env[TOKEN_ENV] = str(pair["access_token"])
        env[REFRESH_ENV] = str(pair["refresh_token"])
    return env


class KernelHandoff:
    """Wraps a Jupyter kernel manager's ``start_kernel`` / ``restart_kernel``."""

    def __init__(self, source: TokenSource, gateway_url: Callable[[], str]) -> None:
        self.source, self.gateway_url = source, gateway_url

    async def _pair(self) -> dict[str, Any] | None:
        try:
            return await self.source.tokens()
        except Exception as exc:
            log.warning("kernel starts without a DeepSpace token: %s", exc)
            return None

    async def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return kernel_env(base, gateway_url=self.gateway_url(), pair=await self._pair())

    def install(self, kernel_manager: Any) -> None:
        start: Callable[..., Awaitable[Any]] = kernel_manager.start_kernel
        restart: Callable[..., Awaitable[Any]] = kernel_manager.restart_kernel

        async def start_kernel(*args: Any, **kwargs: Any) -> Any:
            kwargs["env"] = await self.env(kwargs.get("env") or os.environ)
            return await start(*args, **kwargs)

        async def restart_kernel(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
            pair = await self._pair()
            if pair is not None:
                kernel_manager.get_kernel(kernel_id).update_env(
                    env={TOKEN_ENV: str(pair["access_token"]), REFRESH_ENV: str(pair["refresh_token"])})
            return await restart(kernel_id, *args, **kwargs)

        kernel_manager.start_kernel = start_kernel
        kernel_manager.restart_kernel = restart_kernel
