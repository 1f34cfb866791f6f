"""The client against a real in-process gateway (SQLite and PostgreSQL), streams included."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from deepspace_lab.auth import open_session
from deepspace_lab.client import (
    AsyncDeepSpaceClient,
    AuthenticationError,
    DeepSpaceClient,
    InsufficientFundsError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
)
from deepspace_lab.db import make_async_engine, make_sessionmaker

from ..helpers import TEST_SECRET, Gateway, make_tenant

MODEL = "deepspace-simulated-chat"
HELLO = [{"role": "user", "content": "hello [sim:tokens=5]"}]


@pytest.fixture
def client(gateway: Gateway) -> DeepSpaceClient:
    return DeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key, timeout_s=20)


def account_client(gateway: Gateway) -> DeepSpaceClient:
    tenant = make_tenant(gateway.settings, email="owner@example.org", scopes=("chat", "account"))
    return DeepSpaceClient(base_url=gateway.url, api_key=tenant.api_key, timeout_s=20)


def test_openai_chat_stream_and_not(client: DeepSpaceClient) -> None:
    reply = client.chat(MODEL, HELLO)
    text = reply["choices"][0]["message"]["content"]
    assert text.startswith("[simulated]") and reply["usage"]["completion_tokens"] == 5
    with client.chat_stream(MODEL, HELLO, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == text
    assert chunks[-1]["usage"]["cost_micros"] > 0


def test_the_product_api(gateway: Gateway) -> None:
    client = account_client(gateway)
    me = client.me()
    assert me["user"]["email"] == "owner@example.org" and me["via"] == "api_key"
    assert {m["id"] for m in client.models()} >= {MODEL}
    project = client.create_project("analysis")
    assert project["id"] in {p["id"] for p in client.projects()}
    key = client.create_key(name="nb", scopes=["chat"])
    assert key["api_key"].startswith("dsk_")
    assert key["id"] in {k["id"] for k in client.keys()} and "api_key" not in client.keys()[0]
    assert client.revoke_key(key["id"])["revoked_at"]
    with pytest.raises(AuthenticationError):
        DeepSpaceClient(base_url=gateway.url, api_key=key["api_key"]).models()
    conv = client.create_conversation("t")
    assert client.rename_conversation(conv["id"], "renamed")["title"] == "renamed"
    assert [c["id"] for c in client.conversations()["data"]] == [conv["id"]]
    client.delete_conversation(conv["id"])
    with pytest.raises(NotFoundError) as err:
        client.conversation(conv["id"])
    assert err.value.code == "conversation_not_found" and err.value.status == 404
    wallet = client.wallet()
    assert wallet["balance_micros"] > 0 and wallet["frozen_micros"] == 0
    client.chat(MODEL, HELLO)
    assert client.transactions(limit=2)["data"][0]["type"] == "capture"
    assert client.usage(model=MODEL)["data"][0]["model"] == MODEL
    assert client.limits()["object"] == "limits"
    assert client.health()["upstream"] == "simulated"


def test_errors_carry_the_servers_code_and_message(gateway: Gateway, client: DeepSpaceClient) -> None:
    with pytest.raises(AuthenticationError) as auth:
        DeepSpaceClient(base_url=gateway.url, api_key="dsk_nope_nope").me()
    assert auth.value.status == 401 and auth.value.request_id
    with pytest.raises(InvalidRequestError) as bad:
        client.chat("no-such-model", HELLO)
    assert bad.value.code == "model_not_found" and bad.value.param == "model"
    poor = make_tenant(gateway.settings, email="poor@example.org", credit_micros=0)
    with pytest.raises(InsufficientFundsError) as funds:
        DeepSpaceClient(base_url=gateway.url, api_key=poor.api_key).chat(MODEL, HELLO)
    assert funds.value.status == 402 and "funds" in funds.value.message
    with pytest.raises(UpstreamError) as upstream:
        client.chat(MODEL, [{"role": "user", "content": "x [sim:error=503]"}])
    assert upstream.value.code.startswith("upstream_")


def test_the_async_client_streams_both_ways(gateway: Gateway) -> None:
    async def run() -> tuple[str, list[Any]]:
        async with AsyncDeepSpaceClient(base_url=gateway.url, api_key=gateway.tenant.api_key) as client:
            text = ""
            async with client.chat_stream(MODEL, HELLO) as stream:
                async for chunk in stream:
                    text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
            conv = (await client.create_conversation())["id"]
            events = [e async for e in client.stream_chat(conversation_id=conv, content="hi [sim:tokens=3]",
                                                          model=MODEL)]
            return text, events

    text, events = asyncio.run(run())
    assert text.startswith("[simulated]")
    assert [e.event for e in events] == ["delta"] * 3 + ["usage", "billing", "done"]


def test_a_kernel_token_is_renewed_before_it_expires(gateway: Gateway) -> None:
    async def pair() -> dict[str, Any]:
        engine = make_async_engine(gateway.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                made = await open_session(session, secret_key=TEST_SECRET, user_id=gateway.tenant.user_id,
                                          kind="kernel", access_ttl=timedelta(seconds=20))
                await session.commit()
                return made.to_dict()
        finally:
            await engine.dispose()

    tokens = asyncio.run(pair())
    client = DeepSpaceClient(base_url=gateway.url, access_token=tokens["access_token"],
                             refresh_token=tokens["refresh_token"], project_id=gateway.tenant.project_id)
    assert client.me()["via"] == "jwt"
    assert client.config.credentials.refresh_token != tokens["refresh_token"]  # rotated once
    again = DeepSpaceClient(base_url=gateway.url, access_token=tokens["access_token"],
                            refresh_token=tokens["refresh_token"])
    assert again.me()["project_id"] == gateway.tenant.project_id  # shares the rotation: no reuse detected
