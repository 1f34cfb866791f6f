"""The caller, as every later step sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, resolved from a credential. Every query is scoped by ``org_id``.

    ``api_key_id`` is set for API keys (rights = ``scopes`` ∩ ``role``); ``session_id`` for JWTs
    (rights = ``role``).
    """

    user_id: str
    org_id: str
    project_id: str
    role: str
    api_key_id: str | None = None
    session_id: str | None = None
    scopes: tuple[str, ...] = ()
    is_platform_admin: bool = False

    @property
    def via(self) -> str:
        return "api_key" if self.api_key_id else "jwt"

    @property
    def actor(self) -> str:
        """The audit actor: ``key:<id>`` or ``user:<id>``."""
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"
