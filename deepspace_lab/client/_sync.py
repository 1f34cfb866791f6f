"""The synchronous client (scripts, papermill jobs, ``%deepspace`` line commands)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
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


class DeepSpaceClient(FileCalls[Any], MoneyCalls[Any], ObserveCalls[Any], AccountsAdminCalls[Any], BaseClient):
    """``DeepSpaceClient()`` reads the environment; pass ``base_url`` / ``api_key`` to be explicit.
    ``transport`` is for tests (``httpx.MockTransport``)."""

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, access_token: str | None = None,
                 refresh_token: str | None = None, project_id: str | None = None, timeout_s: float = 60.0,
                 transport: httpx.BaseTransport | None = None, config: ClientConfig | None = None) -> None:
        super().__init__(config or ClientConfig.resolve(
            base_url=base_url, api_key=api_key, access_token=access_token, refresh_token=refresh_token,
            project_id=project_id, timeout_s=timeout_s))
        self._http = httpx.Client(base_url=self.config.base_url, timeout=self.config.timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DeepSpaceClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _refresh(self, *, force: bool = False) -> None:
        """Renew the access token (once, however many threads noticed it expiring)."""
        creds = self.config.credentials
        with creds.lock:
            if not creds.refresh_token or not (force or creds.needs_refresh()):
                return
            seen = creds.refresh_token
            response = self._http.request(**self._args(self._refresh_call()))
            if creds.refresh_token == seen:
                creds.update(decode(response))

    def _args(self, call: Call) -> dict[str, Any]:
        return {"method": call.method, "url": call.path, **self._request_kwargs(call)}

    def _exchange(self, call: Call) -> httpx.Response:
        """Send ``call`` (renewing an expiring token once); the answer, or its typed error."""
        try:
            if call.auth and self.config.credentials.needs_refresh():
                self._refresh()
            response = self._http.request(**self._args(call))
            try:
                raise_for_response(response, response.content)
                return response
            except DeepSpaceClientError as exc:
                if not (call.auth and is_expired(exc) and self.config.credentials.refresh_token):
                    raise
            self._refresh(force=True)
            response = self._http.request(**self._args(call))
            raise_for_response(response, response.content)
            return response
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from None

    def _send(self, call: Call) -> Any:
        return decode(self._exchange(call), raw=call.raw)

    def _open_stream(self, call: Call) -> tuple[Any, httpx.Response]:
        try:
            if call.auth and self.config.credentials.needs_refresh():
                self._refresh()
            manager = self._http.stream(**self._args(call))
            response = manager.__enter__()
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from None
        if response.status_code >= 400:
            body = response.read()
            manager.__exit__(None, None, None)
            raise_for_response(response, body)
        return manager, response

    # -- OpenAI-compatible chat -----------------------------------------------------------
    def chat_completion(self, model: str, messages: list[dict[str, Any]], *,
                        headers: dict[str, str] | None = None, **params: Any) -> ChatResult:
        """A non-streaming chat completion with what the Gateway says beside the answer (cost,
        replay); ``headers`` e.g. ``Idempotency-Key`` and ``traceparent``."""
        return ChatResult.of(self._exchange(self._chat_call(chat_body(model, messages, params, stream=False),
                                                                headers)))

    def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        """A non-streaming chat completion (the OpenAI JSON answer)."""
        result: dict[str, Any] = self._send(self._chat_call(chat_body(model, messages, params, stream=False)))
        return result

    def chat_stream(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatCompletionStream:
        """A streaming chat completion: iterate the OpenAI chunks (dicts)."""
        return ChatCompletionStream(self, self._chat_call(chat_body(model, messages, params, stream=True)))

    # -- the product stream ---------------------------------------------------------------
    def stream_chat(self, *, conversation_id: str, content: str | None = None, model: str, system: str | None = None,
                    regenerate: bool = False, **params: Any) -> ProductStream:
        """Send ``content`` in a conversation; iterate its :class:`ChatEvent` s. The Gateway builds
        the history; ``stream.request_id`` is what :meth:`cancel` takes."""
        body = product_stream_body(conversation_id=conversation_id, content=content, model=model, system=system,
                                   regenerate=regenerate, params=params)
        return ProductStream(self, _api.product_stream(body))

    def estimate(self, *, conversation_id: str, content: str | None = None, model: str, system: str | None = None,
                 regenerate: bool = False, **params: Any) -> dict[str, Any]:
        """What :meth:`stream_chat` with these arguments would hold (the most it can cost)."""
        body = product_stream_body(conversation_id=conversation_id, content=content, model=model, system=system,
                                   regenerate=regenerate, params=params)
        return dict(self._send(_api.estimate(body)))

    def file_chunks(self, file_id: str) -> Generator[bytes, None, None]:
        """A file's bytes as they arrive, piece by piece, so a large export is never held whole
        (:meth:`file_content` returns them at once). An unknown id raises before the first piece."""
        manager, response = self._open_stream(content_call(file_id))
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise connection_error(exc, self.base_url) from None
        finally:
            manager.__exit__(None, None, None)

    def cancel(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send(_api.cancel(request_id))
        return result

    # -- product API ----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self._send(_api.health()))

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; the client then acts with the new tokens (renewed as they expire)."""
        pair = dict(self._send(_api.login(email, password)))
        self.config.credentials.update(pair)
        return pair

    def logout(self) -> None:
        self._send(_api.logout())

    def me(self) -> dict[str, Any]:
        return dict(self._send(_api.me()))

    def orgs(self) -> list[dict[str, Any]]:
        return list(self._send(_api.orgs())["data"])

    def projects(self) -> list[dict[str, Any]]:
        return list(self._send(_api.projects())["data"])

    def create_project(self, name: str) -> dict[str, Any]:
        return dict(self._send(_api.create_project(name)))

    def keys(self) -> list[dict[str, Any]]:
        return list(self._send(_api.keys())["data"])

    def create_key(self, *, name: str | None = None, scopes: list[str] | None = None, project_id: str | None = None,
                   expires_at: str | None = None) -> dict[str, Any]:
        """A new API key; its secret (``api_key``) is in this answer only."""
        return dict(self._send(_api.create_key(name=name, scopes=scopes, project_id=project_id,
                                               expires_at=expires_at)))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(self._send(_api.revoke_key(key_id)))

    def conversations(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        return dict(self._send(_api.conversations(limit=limit, cursor=cursor)))

    def create_conversation(self, title: str = "") -> dict[str, Any]:
        return dict(self._send(_api.create_conversation(title)))

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages."""
        return dict(self._send(_api.conversation(conversation_id)))

    def rename_conversation(self, conversation_id: str, title: str) -> dict[str, Any]:
        return dict(self._send(_api.rename_conversation(conversation_id, title)))

    def delete_conversation(self, conversation_id: str) -> None:
        self._send(_api.delete_conversation(conversation_id))

    def wallet(self) -> dict[str, Any]:
        return dict(self._send(_api.wallet()))

    def transactions(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        return dict(self._send(_api.transactions(limit=limit, cursor=cursor)))

    def usage(self, **filters: Any) -> dict[str, Any]:
        """Usage records; filters: project_id, api_key_id, model, since, until, limit, cursor."""
        return dict(self._send(_api.usage(filters)))

    def usage_summary(self, *, group_by: str = "day", since: str | None = None,
                      until: str | None = None) -> dict[str, Any]:
        """The org's usage summed from the hourly roll-ups by ``day``, ``project`` or ``model``
        (default the last 30 days); ``rolled_until`` says up to when they are built."""
        return dict(self._send(_api.usage_summary(group_by=group_by, since=since, until=until)))

    def limits(self) -> dict[str, Any]:
        return dict(self._send(_api.limits()))

    def models(self) -> list[dict[str, Any]]:
        return list(self._send(_api.models())["data"])

    # -- workflows ------------------------------------------------------------------------
    def save_workflow(self, source: str) -> dict[str, Any]:
        """Save a definition (YAML or JSON text) as a new workflow or the next version of its name."""
        return dict(self._send(_api.save_workflow(source)))

    def workflows(self, *, project_id: str | None = None) -> list[dict[str, Any]]:
        """The org's workflows, or one project's (``project_id``)."""
        return list((self._send(_api.workflows(project_id)))["data"])

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        """A workflow with its versions."""
        return dict(self._send(_api.workflow(workflow_id)))

    def workflow_version(self, workflow_id: str, version: int) -> dict[str, Any]:
        """One version of a workflow: its source and validated ``definition``."""
        return dict(self._send(_api.workflow_version(workflow_id, version)))

    def start_workflow(self, workflow_id: str, inputs: dict[str, Any] | None = None, *,
                       version: int | None = None, budget_micros: int | None = None) -> dict[str, Any]:
        """Start a run (the latest version unless ``version``); the run comes back at once."""
        return dict(self._send(_api.start_workflow(workflow_id, inputs=inputs, version=version,
                                                        budget_micros=budget_micros)))

    def workflow_runs(self, **filters: Any) -> dict[str, Any]:
        """Runs, newest first; filters: workflow_id, state, limit, cursor."""
        return dict(self._send(_api.workflow_runs(**filters)))

    def workflow_run(self, run_id: str) -> dict[str, Any]:
        """A run with its steps."""
        return dict(self._send(_api.workflow_run(run_id)))

    def cancel_workflow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._send(_api.workflow_run(run_id, "cancel")))

    def resume_workflow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._send(_api.workflow_run(run_id, "resume")))

    def fork_workflow_run(self, run_id: str, from_step: str,
                          inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new run from ``from_step`` with edited inputs; the steps before it are reused."""
        return dict(self._send(_api.workflow_run(run_id, "fork", {"from": from_step, "inputs": inputs or {}})))

    def workflow_events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The run's events after event id ``after``, at most ``limit`` (1-1000; default 200) of
        them (``next_after`` continues)."""
        return dict(self._send(_api.workflow_events(run_id, after=after, limit=limit)))

    def ready(self) -> dict[str, Any]:
        """Readiness (database, Redis, upstream; ``upstream_simulated``); 503 raises."""
        return dict(self._send(_api.ready()))

    def job(self, job_id: str) -> dict[str, Any]:
        """A Worker job of the caller's org: state, progress, result."""
        return dict(self._send(_api.job(job_id)))

    # -- Admin API (platform admins; org admins on their own org) ------------------------
    def admin_permissions(self) -> dict[str, Any]:
        """The roles & permissions matrix; a non-admin gets PermissionDeniedError."""
        return dict(self._send(_api.admin_permissions()))


class _Stream:
    def __init__(self, client: DeepSpaceClient, call: Call) -> None:
        self._client, self._call = client, call
        self._manager: Any = None
        self.response: httpx.Response | None = None

    @property
    def request_id(self) -> str | None:
        return self.response.headers.get("X-Request-Id") if self.response is not None else None

    def open(self) -> None:
        if self.response is None:
            self._manager, self.response = self._client._open_stream(self._call)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.__exit__(None, None, None)
            self._manager = None

    def _events(self) -> Iterator[Any]:
        self.open()
        assert self.response is not None
        decoder = SSEDecoder()
        try:
            for text in self.response.iter_text():
                yield from decoder.feed(text)
            yield from decoder.close()
        except httpx.TransportError as exc:
            raise connection_error(exc, self._client.base_url) from None
        finally:
            self.close()

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class ChatCompletionStream(_Stream):
    """OpenAI chunks (dicts); an error the Gateway sends mid-stream is raised as its typed error."""

    def __enter__(self) -> ChatCompletionStream:
        self.open()
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for event in self._events():
            chunk = openai_chunk(event.data)
            if chunk is None:
                return
            yield chunk


class ProductStream(_Stream):
    """The product stream's events, in order; ends after ``done``."""

    def __enter__(self) -> ProductStream:
        self.open()
        return self

    def __iter__(self) -> Iterator[ChatEvent]:
        for event in self._events():
            yield ChatEvent(event.event, event_data(event.data))
