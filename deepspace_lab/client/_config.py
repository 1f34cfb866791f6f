"""Where the Gateway is and who we are: explicit, or from the environment.

The environment (what the Jupyter server hands a kernel, DESIGN §12.4, or what a papermill job
is given):

- ``DEEPSPACE_GATEWAY_URL`` — the server root (``http://127.0.0.1:8888`` or
  ``https://hub/user/alice``); a URL ending in ``/deepspace/v1`` is accepted too.
- ``DEEPSPACE_API_KEY`` — an API key (``dsk_…``); wins over tokens.
- ``DEEPSPACE_TOKEN`` and ``DEEPSPACE_REFRESH_TOKEN`` — a short-lived access token and the
  refresh token that renews it (the kernel handoff).
- ``DEEPSPACE_PROJECT`` — the project to act in with a token (``X-DeepSpace-Project``).
- ``DEEPSPACE_TRACE_ID`` — a trace id (32 hex chars) every call joins through a W3C
  ``traceparent`` header (a workflow's notebook step sets it, so the notebook's model calls land
  on the run's trace); an invalid value is ignored.
- ``DEEPSPACE_IDEMPOTENCY_PREFIX`` — chat completions get ``Idempotency-Key: <prefix>:<n>``,
  ``n`` counting this process's chat calls from 0 (a workflow step sets ``wf:<run>:<step>``, so
  a retried step's calls, made in the same order with the same bodies, replay instead of
  billing again — DESIGN §12.8).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..tracing import trace_id_from_traceparent
from ._errors import DeepSpaceClientError

ENV_URL = "DEEPSPACE_GATEWAY_URL"
ENV_API_KEY = "DEEPSPACE_API_KEY"
ENV_TOKEN = "DEEPSPACE_TOKEN"
ENV_REFRESH = "DEEPSPACE_REFRESH_TOKEN"
ENV_PROJECT = "DEEPSPACE_PROJECT"
ENV_TRACE_ID = "DEEPSPACE_TRACE_ID"
ENV_IDEMPOTENCY_PREFIX = "DEEPSPACE_IDEMPOTENCY_PREFIX"
#: renew an access token this long before it expires
REFRESH_MARGIN_S = 60.0


def gateway_root(url: str) -> str:
    """The server root of a Gateway URL (``…/deepspace/v1`` and trailing slashes dropped)."""
    url = url.strip().rstrip("/")
    for suffix in ("/deepspace/v1", "/deepspace/api", "/deepspace"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def valid_trace_id(value: str | None) -> str | None:
    """``value`` when it is a usable trace id (32 lowercase hex chars, not all zero), else None."""
    if not value:
        return None
    return trace_id_from_traceparent(f"00-{value.strip().lower()}-{'1' * 16}-01")


def token_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT (epoch seconds), read without checking the signature: only to
    know when to renew it. None when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


class Credentials:
    """An API key, or an access token with the refresh token that renews it.

    Refresh tokens rotate and a reused one ends the whole login (the server's theft
    detection), so every client in a process that starts from the same refresh token shares
    one :class:`Credentials` (:func:`shared_credentials`) and one rotation."""

    def __init__(self, *, api_key: str | None = None, access_token: str | None = None,
                 refresh_token: str | None = None) -> None:
        self.api_key = api_key or None
        self.access_token = access_token or None
        self.refresh_token = refresh_token or None
        self.lock = threading.Lock()

    @property
    def kind(self) -> str:
        return "api_key" if self.api_key else ("token" if self.access_token or self.refresh_token else "none")

    def bearer(self) -> str | None:
        return self.api_key or self.access_token

    def needs_refresh(self, now: float | None = None) -> bool:
        if self.api_key or not self.refresh_token:
            return False
        if not self.access_token:
            return True
        exp = token_expiry(self.access_token)
        return exp is not None and exp - (now if now is not None else time.time()) < REFRESH_MARGIN_S

    def update(self, pair: Mapping[str, Any]) -> None:
        self.access_token = str(pair["access_token"])
        self.refresh_token = str(pair.get("refresh_token") or self.refresh_token or "") or None
        self.api_key = None


_SHARED: dict[str, Credentials] = {}
_SHARED_LOCK = threading.Lock()


def shared_credentials(*, access_token: str | None, refresh_token: str | None) -> Credentials:
    """One :class:`Credentials` per process for a given starting refresh token."""
    if not refresh_token:
        return Credentials(access_token=access_token)
    with _SHARED_LOCK:
        found = _SHARED.get(refresh_token)
        if found is None:
            found = _SHARED[refresh_token] = Credentials(access_token=access_token, refresh_token=refresh_token)
        return found


_CALLS: dict[str, itertools.count[int]] = {}


def next_idempotency_key(prefix: str) -> str:
    """``<prefix>:<n>``: the n-th chat call of this process under ``prefix`` (one count per
    process, whichever client makes the call)."""
    with _SHARED_LOCK:
        counter = _CALLS.setdefault(prefix, itertools.count())
        return f"{prefix}:{next(counter)}"


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Resolved client settings. ``timeout_s`` bounds connect and each read, not a whole stream."""

    base_url: str
    credentials: Credentials
    project_id: str | None = None
    timeout_s: float = 60.0
    #: sent on every call as a ``traceparent`` (the caller joins this trace)
    trace_id: str | None = None
    #: chat completions carry ``Idempotency-Key: <prefix>:<n>`` (:func:`next_idempotency_key`)
    idempotency_prefix: str | None = None

    @classmethod
    def resolve(cls, *, base_url: str | None = None, api_key: str | None = None, access_token: str | None = None,
                refresh_token: str | None = None, project_id: str | None = None, timeout_s: float = 60.0,
                trace_id: str | None = None, idempotency_prefix: str | None = None,
                environ: Mapping[str, str] | None = None) -> ClientConfig:
        """Explicit values win; what is not given comes from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        url = base_url or env.get(ENV_URL)
        if not url:
            raise DeepSpaceClientError(
                f"no Gateway URL: pass base_url=… or set {ENV_URL} (a kernel started by a Jupyter server with "
                "the DeepSpace extension gets it automatically)", code="client_not_configured")
        if api_key or access_token or refresh_token:
            credentials = (Credentials(api_key=api_key) if api_key
                           else shared_credentials(access_token=access_token, refresh_token=refresh_token))
        elif env.get(ENV_API_KEY):
            credentials = Credentials(api_key=env[ENV_API_KEY])
        else:
            credentials = shared_credentials(access_token=env.get(ENV_TOKEN), refresh_token=env.get(ENV_REFRESH))
        return cls(base_url=gateway_root(url), credentials=credentials,
                   project_id=project_id or env.get(ENV_PROJECT) or None, timeout_s=timeout_s,
                   trace_id=valid_trace_id(trace_id or env.get(ENV_TRACE_ID)),
                   idempotency_prefix=idempotency_prefix or env.get(ENV_IDEMPOTENCY_PREFIX) or None)
