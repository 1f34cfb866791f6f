"""API keys: shown once, stored as a keyed hash, refused when revoked, expired or orphaned."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from deepspace_lab.auth import authenticate_api_key, create_api_key, generate_key, hash_key, key_prefix
from deepspace_lab.auth.models import ApiKey, User
from deepspace_lab.db import make_async_engine, make_sessionmaker, utcnow
from deepspace_lab.errors import AuthError, InvalidRequest

from ..helpers import TEST_SECRET, Gateway, make_tenant


def test_key_format_has_a_visible_prefix_and_256_random_bits() -> None:
    plaintext, prefix = generate_key()
    assert plaintext.startswith(prefix + "_") and prefix.startswith("dsk_") and len(prefix) == 16
    assert key_prefix(plaintext) == prefix
    assert len(plaintext[len(prefix) + 1:]) == 43  # token_urlsafe(32): 256 random bits
    assert key_prefix("sk-openai-style") is None and key_prefix(prefix) is None


def test_only_the_hmac_is_stored(settings_factory: Any) -> None:
    settings = settings_factory()
    tenant = make_tenant(settings, email="hash@example.org")
    from deepspace_lab.db import make_sync_engine

    engine = make_sync_engine(settings.database_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT prefix, key_hash FROM api_keys WHERE id = :i"),
                           {"i": tenant.api_key_id}).one()
    engine.dispose()
    assert row.key_hash == hash_key(TEST_SECRET, tenant.api_key)
    assert tenant.api_key.split("_", 2)[2] not in row.key_hash
    assert hash_key("another-secret", tenant.api_key) != row.key_hash


async def _auth(url: str, plaintext: str, *, now: Any = None) -> Any:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await authenticate_api_key(session, secret_key=TEST_SECRET, plaintext=plaintext, now=now)
    finally:
        await engine.dispose()


async def _change(url: str, statement: Any) -> None:
    engine = make_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
    finally:
        await engine.dispose()


def test_valid_key_resolves_to_its_principal(settings_factory: Any) -> None:
    settings = settings_factory()
    tenant = make_tenant(settings, email="ok@example.org", scopes=("chat", "knowledge"))
    principal = asyncio.run(_auth(settings.database_url, tenant.api_key))
    assert (principal.org_id, principal.project_id, principal.user_id) == (
        tenant.org_id, tenant.project_id, tenant.user_id)
    assert principal.scopes == ("chat", "knowledge") and not principal.is_platform_admin


@pytest.mark.parametrize("how", ["revoked", "expired", "owner_disabled"])
def test_refused_keys(settings_factory: Any, how: str) -> None:
    settings = settings_factory()
    tenant = make_tenant(settings, email=f"{how}@example.org")
    past = utcnow() - timedelta(seconds=1)
    statement = {
        "revoked": update(ApiKey).where(ApiKey.id == tenant.api_key_id).values(revoked_at=past),
        "expired": update(ApiKey).where(ApiKey.id == tenant.api_key_id).values(expires_at=past),
        "owner_disabled": update(User).where(User.id == tenant.user_id).values(status="disabled"),
    }[how]
    asyncio.run(_change(settings.database_url, statement))
    with pytest.raises(AuthError) as caught:
        asyncio.run(_auth(settings.database_url, tenant.api_key))
    assert caught.value.code == "invalid_api_key"


def test_importing_a_malformed_key_is_refused(settings_factory: Any) -> None:
    settings = settings_factory()
    tenant = make_tenant(settings, email="imp@example.org")

    async def run() -> None:
        engine = make_async_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                await create_api_key(session, secret_key=TEST_SECRET, org_id=tenant.org_id,
                                     project_id=tenant.project_id, user_id=tenant.user_id, plaintext="sk-nope")
        finally:
            await engine.dispose()

    with pytest.raises(InvalidRequest):
        asyncio.run(run())


def test_revocation_reaches_the_gateway_within_the_cache_ttl(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory(catalog_cache_ttl_s=0)  # no cache: the very next request sees it
    headers = {"Authorization": f"Bearer {gw.tenant.api_key}"}
    assert httpx.get(gw.base_url + "/models", headers=headers).status_code == 200
    asyncio.run(_change(gw.settings.database_url,
                        update(ApiKey).where(ApiKey.id == gw.tenant.api_key_id).values(revoked_at=utcnow())))
    assert httpx.get(gw.base_url + "/models", headers=headers).status_code == 401


def test_last_used_is_recorded(gateway: Gateway) -> None:
    httpx.get(gateway.base_url + "/models", headers={"Authorization": f"Bearer {gateway.tenant.api_key}"})
    with gateway.db.connect() as conn:
        used = conn.execute(text("SELECT last_used_at FROM api_keys WHERE id = :i"),
                            {"i": gateway.tenant.api_key_id}).scalar()
    assert used is not None
