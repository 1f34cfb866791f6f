"""The asynchronous client (widgets and the ``%%deepspace`` magic: streams run as asyncio tasks on
the kernel's loop, so a Stop button is handled mid-stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from types import TracebackType
from typing import Any

import httpx

from . import _api
from ._admin_accounts import AccountsAdminCalls
from ._base import (
    BaseClient,
    Call,
    ChatEvent,
    ChatResult,
    chat_body,
    connection_error,
    decode,
    event_data,
    is_expired,
    openai_chunk,
    product_stream_body,
    raise_for_response,
)
from ._config import ClientConfig
from ._errors import DeepSpaceClientError
from ._files import FileCalls, content_call
from ._money import MoneyCalls
from ._observe import ObserveCalls
from ._sse import SSEDecoder


class AsyncDeepSpaceClient(FileCalls[Awaitable[Any]], MoneyCalls[Awaitable[Any]], ObserveCalls[Awaitable[Any]],
                           AccountsAdminCalls[Awaitable[Any]], BaseClient):
    """``AsyncDeepSpaceClient()`` reads the environment; pass ``base_url`` / ``api_key`` to be explicit.
    ``transport`` is for tests (``httpx.MockTransport``)."""

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, access_token: str | None = None,
                 refresh_token: str | None = None, project_id: str | None = None, timeout_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None, config: ClientConfig | None = None) -> None:
        super().__init__(config or ClientConfig.resolve(
            base_url=base_url, api_key=api_key, access_token=access_token, refresh_token=refresh_token,
            project_id=project_id, timeout_s=timeout_s))
        self._http = httpx.AsyncClient(base_url=self.config.base_url, timeout=self.config.timeout_s,
                                       transport=transport)
        self._refresh_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncDeepSpaceClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- plumbing -------------------------------------------------------------------------
    async def _refresh(self, *, force: bool = False) -> None:
        """Renew the access token (once, however many tasks noticed it expiring)."""
        creds = self.config.credentials
        async with self._refresh_lock:
            if not creds.refresh_token or not (force or creds.needs_refresh()):
                return
            seen = creds.refresh_token
            response = await self._http.request(**self._args(self._refresh_call()))
            if creds.refresh_token == seen:
                creds.update(decode(response))

    def _args(self, call: Call) -> dict[str, Any]:
        return {"method": call.method, "url": call.path, **self._request_kwargs(call)}

    async def _exchange(self, call: Call) -> httpx.Response:
        """Send ``call`` (renewing an expiring token once); the answer, or its typed error."""
        try:
            if call.auth and self.config.credentials.needs_refresh():
                await self._refresh()
            response = await self._http.request(**self._args(call))
            try:
                raise_for_response(response, response.content)
                return response
            except DeepSpaceClientError as exc:
                if not (call.auth and is_expired(exc) and self.config.credentials.refresh_token):
                    raise
            await self._refresh(force=True)
            response = await self._http.request(**self._args(call))
            raise_for_response(response, response.content)
            return response
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from None

    async def _send(self, call: Call) -> Any:
        return decode(await self._exchange(call), raw=call.raw)

    async def _open_stream(self, call: Call) -> tuple[Any, httpx.Response]:
        try:
            if call.auth and self.config.credentials.needs_refresh():
                await self._refresh()
            manager = self._http.stream(**self._args(call))
            response = await manager.__aenter__()
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from None
        if response.status_code >= 400:
            body = await response.aread()
            await manager.__aexit__(None, None, None)
            raise_for_response(response, body)
        return manager, response

    # -- OpenAI-compatible chat -----------------------------------------------------------
    async def chat_completion(self, model: str, messages: list[dict[str, Any]], *,
                        headers: dict[str, str] | None = None, **params: Any) -> ChatResult:
        """A non-streaming chat completion with what the Gateway says beside the answer (cost,
        replay); ``headers`` e.g. ``Idempotency-Key`` and ``traceparent``."""
        return ChatResult.of(await self._exchange(self._chat_call(chat_body(model, messages, params, stream=False),
                                                                headers)))

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        """A non-streaming chat completion (the OpenAI JSON answer)."""
        result: dict[str, Any] = await self._send(self._chat_call(chat_body(model, messages, params, stream=False)))
        return result

    def chat_stream(self, model: str, messages: list[dict[str, Any]], **params: Any) -> AsyncChatCompletionStream:
        """A streaming chat completion: iterate the OpenAI chunks (dicts)."""
        return AsyncChatCompletionStream(self, self._chat_call(chat_body(model, messages, params, stream=True)))

    # -- the product stream ---------------------------------------------------------------
    def stream_chat(self, *, conversation_id: str, content: str | None = None, model: str, system: str | None = None,
                    regenerate: bool = False, **params: Any) -> AsyncProductStream:
        """Send ``content`` in a conversation; iterate its :class:`ChatEvent` s. The Gateway builds
        the history; ``stream.request_id`` is what :meth:`cancel` takes."""
        body = product_stream_body(conversation_id=conversation_id, content=content, model=model, system=system,
                                   regenerate=regenerate, params=params)
        return AsyncProductStream(self, _api.product_stream(body))

    async def estimate(self, *, conversation_id: str, content: str | None = None, model: str,
                       system: str | None = None, regenerate: bool = False, **params: Any) -> dict[str, Any]:
        """What :meth:`stream_chat` with these arguments would hold (the most it can cost)."""
        body = product_stream_body(conversation_id=conversation_id, content=content, model=model, system=system,
                                   regenerate=regenerate, params=params)
        return dict(await self._send(_api.estimate(body)))

    async def file_chunks(self, file_id: str) -> AsyncGenerator[bytes, None]:
        """A file's bytes as they arrive, piece by piece, so a large export is never held whole
        (:meth:`file_content` returns them at once). An unknown id raises before the first piece."""
        manager, response = await self._open_stream(content_call(file_id))
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from None
        finally:
            await manager.__aexit__(None, None, None)

    async def cancel(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._send(_api.cancel(request_id))
        return result

    # -- product API ----------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return dict(await self._send(_api.health()))

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; the client then acts with the new tokens (renewed as they expire)."""
        pair = dict(await self._send(_api.login(email, password)))
        self.config.credentials.update(pair)
        return pair

    async def logout(self) -> None:
        await self._send(_api.logout())

    async def me(self) -> dict[str, Any]:
        return dict(await self._send(_api.me()))

    async def orgs(self) -> list[dict[str, Any]]:
        return list((await self._send(_api.orgs()))["data"])

    async def projects(self) -> list[dict[str, Any]]:
        return list((await self._send(_api.projects()))["data"])

    async def create_project(self, name: str) -> dict[str, Any]:
        return dict(await self._send(_api.create_project(name)))

    async def keys(self) -> list[dict[str, Any]]:
        return list((await self._send(_api.keys()))["data"])

    async def create_key(self, *, name: str | None = None, scopes: list[str] | None = None,
                         project_id: str | None = None, expires_at: str | None = None) -> dict[str, Any]:
        """A new API key; its secret (``api_key``) is in this answer only."""
        return dict(await self._send(_api.create_key(name=name, scopes=scopes, project_id=project_id,
                                               expires_at=expires_at)))

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(await self._send(_api.revoke_key(key_id)))

    async def conversations(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        return dict(await self._send(_api.conversations(limit=limit, cursor=cursor)))

    async def create_conversation(self, title: str = "") -> dict[str, Any]:
        return dict(await self._send(_api.create_conversation(title)))

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages."""
        return dict(await self._send(_api.conversation(conversation_id)))

    async def rename_conversation(self, conversation_id: str, title: str) -> dict[str, Any]:
        return dict(await self._send(_api.rename_conversation(conversation_id, title)))

    async def delete_conversation(self, conversation_id: str) -> None:
        await self._send(_api.delete_conversation(conversation_id))

    async def wallet(self) -> dict[str, Any]:
        return dict(await self._send(_api.wallet()))

    async def transactions(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        return dict(await self._send(_api.transactions(limit=limit, cursor=cursor)))

    async def usage(self, **filters: Any) -> dict[str, Any]:
        """Usage records; filters: project_id, api_key_id, model, since, until, limit, cursor."""
        return dict(await self._send(_api.usage(filters)))

    async def usage_summary(self, *, group_by: str = "day", since: str | None = None,
                            until: str | None = None) -> dict[str, Any]:
        """The org's usage summed from the hourly roll-ups by ``day``, ``project`` or ``model``
        (default the last 30 days); ``rolled_until`` says up to when they are built."""
        return dict(await self._send(_api.usage_summary(group_by=group_by, since=since, until=until)))

    async def limits(self) -> dict[str, Any]:
        return dict(await self._send(_api.limits()))

    async def models(self) -> list[dict[str, Any]]:
        return list((await self._send(_api.models()))["data"])

    # -- workflows ------------------------------------------------------------------------
    async def save_workflow(self, source: str) -> dict[str, Any]:
        """Save a definition (YAML or JSON text) as a new workflow or the next version of its name."""
        return dict(await self._send(_api.save_workflow(source)))

    async def workflows(self, *, project_id: str | None = None) -> list[dict[str, Any]]:
        """The org's workflows, or one project's (``project_id``)."""
        return list((await self._send(_api.workflows(project_id)))["data"])

    async def workflow(self, workflow_id: str) -> dict[str, Any]:
        """A workflow with its versions."""
        return dict(await self._send(_api.workflow(workflow_id)))

    async def workflow_version(self, workflow_id: str, version: int) -> dict[str, Any]:
        """One version of a workflow: its source and validated ``definition``."""
        return dict(await self._send(_api.workflow_version(workflow_id, version)))

    async def start_workflow(self, workflow_id: str, inputs: dict[str, Any] | None = None, *,
                       version: int | None = None, budget_micros: int | None = None) -> dict[str, Any]:
        """Start a run (the latest version unless ``version``); the run comes back at once."""
        return dict(await self._send(_api.start_workflow(workflow_id, inputs=inputs, version=version,
                                                        budget_micros=budget_micros)))

    async def workflow_runs(self, **filters: Any) -> dict[str, Any]:
        """Runs, newest first; filters: workflow_id, state, limit, cursor."""
        return dict(await self._send(_api.workflow_runs(**filters)))

    async def workflow_run(self, run_id: str) -> dict[str, Any]:
        """A run with its steps."""
        return dict(await self._send(_api.workflow_run(run_id)))

    async def cancel_workflow_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self._send(_api.workflow_run(run_id, "cancel")))

    async def resume_workflow_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self._send(_api.workflow_run(run_id, "resume")))

    async def fork_workflow_run(self, run_id: str, from_step: str,
                          inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new run from ``from_step`` with edited inputs; the steps before it are reused."""
        return dict(await self._send(_api.workflow_run(run_id, "fork", {"from": from_step, "inputs": inputs or {}})))

    async def workflow_events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The run's events after event id ``after``, at most ``limit`` (1-1000; default 200) of
        them (``next_after`` continues)."""
        return dict(await self._send(_api.workflow_events(run_id, after=after, limit=limit)))

    async def ready(self) -> dict[str, Any]:
        """Readiness (database, Redis, upstream; ``upstream_simulated``); 503 raises."""
        return dict(await self._send(_api.ready()))

    async def job(self, job_id: str) -> dict[str, Any]:
        """A Worker job of the caller's org: state, progress, result."""
        return dict(await self._send(_api.job(job_id)))

    # -- Admin API (platform admins; org admins on their own org) ------------------------
    async def admin_permissions(self) -> dict[str, Any]:
        """The roles & permissions matrix; a non-admin gets PermissionDeniedError."""
        return dict(await self._send(_api.admin_permissions()))


class _AsyncStream:
    def __init__(self, client: AsyncDeepSpaceClient, call: Call) -> None:
        self._client, self._call = client, call
        self._manager: Any = None
        self.response: httpx.Response | None = None

    @property
    def request_id(self) -> str | None:
        return self.response.headers.get("X-Request-Id") if self.response is not None else None

    async def open(self) -> None:
        if self.response is None:
            self._manager, self.response = await self._client._open_stream(self._call)

    async def aclose(self) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            await manager.__aexit__(None, None, None)

    async def _events(self) -> AsyncIterator[Any]:
        await self.open()
        assert self.response is not None
        decoder = SSEDecoder()
        try:
            async for text in self.response.aiter_text():
                for event in decoder.feed(text):
                    yield event
            for event in decoder.close():
                yield event
        except httpx.TransportError as exc:
            raise connection_error(exc, self._client.base_url) from None
        finally:
            await self.aclose()

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class AsyncChatCompletionStream(_AsyncStream):
    """OpenAI chunks (dicts); an error the Gateway sends mid-stream is raised as its typed error."""

    async def __aenter__(self) -> AsyncChatCompletionStream:
        await self.open()
        return self

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for event in self._events():
            chunk = openai_chunk(event.data)
            if chunk is None:
                return
            yield chunk


class AsyncProductStream(_AsyncStream):
    """The product stream's events, in order; ends after ``done``."""

    async def __aenter__(self) -> AsyncProductStream:
        await self.open()
        return self

    async def __aiter__(self) -> AsyncIterator[ChatEvent]:
        async for event in self._events():
            yield ChatEvent(event.event, event_data(event.data))
