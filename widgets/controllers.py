"""Controllers (DESIGN §8): the only code that calls the client. They write the stores;
components observe them.

- :class:`ChatController` (``chat``): models, conversations (new, switch, rename, delete,
  reload), the cost estimate before sending.
- :class:`ChatStreamController` (``chat_stream``): a reply streams as an asyncio task on the
  kernel's loop (the cell returns at once, so Stop is handled mid-stream); text is batched into
  the store every ``flush_interval_s``; Stop asks the Gateway to cancel (the reply is kept and
  the footer shows what was delivered and generated).
- :class:`AccountController`: login, projects, API keys. :class:`BillingController`: wallet,
  transactions, usage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from deepspace_lab.client import AsyncDeepSpaceClient, ChatEvent, DeepSpaceClientError, NotFoundError

from .stores import BillingStore, ChatStore, MessageModel, UserStore

log = logging.getLogger("deepspace_lab.widgets")
T = TypeVar("T")


def error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, DeepSpaceClientError):
        return {"code": exc.code, "message": exc.message, "status": exc.status}
    return {"code": "client_error", "message": str(exc) or type(exc).__name__}


class Connection:
    """The client the controllers share; a project switch or a login replaces it."""

    def __init__(self, client: AsyncDeepSpaceClient) -> None:
        self.client = client

    def use_project(self, project_id: str | None) -> None:
        self.client = AsyncDeepSpaceClient(config=dataclasses.replace(self.client.config, project_id=project_id))

    def use_client(self, client: AsyncDeepSpaceClient) -> None:
        self.client = client


async def guarded(store: Any, work: Awaitable[T]) -> T | None:
    """Run ``work``; a client error goes to ``store.error`` (shown by the view until the next
    user action), not to stderr."""
    try:
        return await work
    except DeepSpaceClientError as exc:
        store.error = error_dict(exc)
        return None


class ChatController:
    def __init__(self, connection: Connection, chat: ChatStore) -> None:
        self.connection, self.chat = connection, chat
        self._creating: asyncio.Future[str | None] | None = None
        #: set while :meth:`load` runs: what needs the model list waits for it
        self._loading: asyncio.Event | None = None

    @property
    def client(self) -> AsyncDeepSpaceClient:
        return self.connection.client

    async def load(self) -> None:
        """Models, the simulated flag and the conversations; the newest one is opened."""
        self._loading = asyncio.Event()
        try:
            await self._load()
        finally:
            self._loading.set()

    async def loaded(self) -> None:
        """Returns once a running :meth:`load` is over (at once if none runs)."""
        if self._loading is not None:
            await self._loading.wait()

    async def _load(self) -> None:
        models = await guarded(self.chat, self.client.models())
        if models is None:
            return
        self.chat.models = [m["id"] for m in models]
        if self.chat.model not in self.chat.models and self.chat.models:
            self.chat.model = self.chat.models[0]
        health = await guarded(self.chat, self.client.health())
        self.chat.simulated = bool(health and health.get("upstream") == "simulated") or "simulated" in self.chat.model
        try:  # a key without the workflows scope simply has none to offer
            # the caller's project's only: the workflow step looks a name up there (not org-wide)
            project_id = (await self.client.me())["project_id"]
            self.chat.workflows = sorted({str(w["name"]) for w in await self.client.workflows(project_id=project_id)})
        except DeepSpaceClientError:
            self.chat.workflows = []
        if self.chat.workflow not in self.chat.workflows:
            self.chat.workflow = ""
        await self.refresh_conversations()
        if self.chat.conversation_id is None and self.chat.conversations:
            await self.switch(self.chat.conversations[0]["id"])

    async def refresh_conversations(self) -> None:
        page = await guarded(self.chat, self.client.conversations(limit=100))
        if page is not None:
            self.chat.conversations = list(page["data"])

    async def new_conversation(self, title: str = "", *, clear: bool = True) -> str | None:
        conv = await guarded(self.chat, self.client.create_conversation(title))
        if conv is None:
            return None
        await self.refresh_conversations()
        self.chat.conversation_id = conv["id"]
        if clear:
            self.chat.messages = []
        return str(conv["id"])

    async def ensure_conversation(self) -> str | None:
        """The open conversation, or a new one (keeping what the screen shows: a first send).
        Callers racing here (an estimate and a send) get the same new conversation."""
        if self.chat.conversation_id is not None:
            return self.chat.conversation_id
        if self._creating is None or self._creating.done():
            self._creating = asyncio.ensure_future(self.new_conversation(clear=False))
        return await asyncio.shield(self._creating)

    async def switch(self, conversation_id: str) -> None:
        self.chat.conversation_id = conversation_id
        await self.reload()

    async def reload(self) -> None:
        """The conversation's stored history, as the Gateway has it."""
        if self.chat.conversation_id is None:
            self.chat.messages = []
            return
        conv = await guarded(self.chat, self.client.conversation(self.chat.conversation_id))
        if conv is not None:
            self.chat.messages = [MessageModel(role=m["role"], content=m["content"], model=m.get("model") or "",
                                               status="done") for m in conv["messages"]]

    async def rename(self, title: str) -> None:
        if self.chat.conversation_id and await guarded(
                self.chat, self.client.rename_conversation(self.chat.conversation_id, title)) is not None:
            await self.refresh_conversations()

    async def delete(self) -> None:
        if self.chat.conversation_id is None:
            return
        try:
            await self.client.delete_conversation(self.chat.conversation_id)
        except DeepSpaceClientError as exc:
            self.chat.error = error_dict(exc)
            return
        self.chat.conversation_id = None
        self.chat.messages = []
        await self.refresh_conversations()
        if self.chat.conversations:  # open the newest one left
            await self.switch(self.chat.conversations[0]["id"])

    async def estimate(self, draft: str) -> None:
        """The hold the next send would take (shown before sending)."""
        await self.loaded()
        if not draft.strip() or not self.chat.model:
            self.chat.estimate_micros = None
            return
        conversation_id = await self.ensure_conversation()
        if conversation_id is None:
            return
        try:
            estimate = await self.client.estimate(conversation_id=conversation_id, content=draft,
                                                  model=self.chat.model, **self.params())
        except DeepSpaceClientError as exc:
            self.chat.estimate_micros = None
            self.chat.error = error_dict(exc)
            return
        self.chat.estimate_micros = int(estimate["hold_micros"])

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.chat.system_prompt.strip():
            params["system"] = self.chat.system_prompt
        if self.chat.temperature is not None:
            params["temperature"] = self.chat.temperature
        if self.chat.max_tokens:
            params["max_tokens"] = self.chat.max_tokens
        return params


class ChatStreamController:
    def __init__(self, connection: Connection, chat: ChatStore, billing: BillingStore, controller: ChatController,
                 *, flush_interval_s: float = 0.05) -> None:
        self.connection, self.chat, self.billing, self.controller = connection, chat, billing, controller
        self.flush_interval_s = flush_interval_s
        self.task: asyncio.Task[None] | None = None
        self.request_id: str | None = None
        self._stop_requested = False
        self._buffer: list[str] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._reply: MessageModel | None = None
        #: widget updates made (one per flush), for tests and tuning
        self.flushes = 0

    def send(self, content: str, *, context: str = "") -> asyncio.Task[None]:
        """Start a reply as a task on the running loop and return it at once."""
        message = f"{context}\n\n{content}" if context else content
        user = MessageModel(role="user", content=message)
        return self._start([user], content=message)

    def regenerate(self) -> asyncio.Task[None]:
        return self._start([], content=None)

    def _start(self, new: list[MessageModel], *, content: str | None) -> asyncio.Task[None]:
        if self.task is not None and not self.task.done():
            raise RuntimeError("a reply is still streaming; stop it first")
        self._reply = MessageModel(role="assistant", status="streaming", model=self.chat.model)
        self.chat.messages = [*self.chat.messages, *new, self._reply]
        self.chat.streaming, self.chat.error, self.chat.estimate_micros = True, {}, None
        self.request_id, self._stop_requested = None, False
        self.task = asyncio.get_running_loop().create_task(self._run(self._reply, content))
        return self.task

    def stop(self) -> None:
        """Stop the reply: the Gateway cancels it and ends the stream with its bill."""
        self._stop_requested = True
        if self.request_id is not None:
            asyncio.get_running_loop().create_task(self._cancel(self.request_id))
        elif self.task is not None and not self.task.done():
            self.task.cancel()  # not started yet: nothing was generated

    async def _cancel(self, request_id: str) -> None:
        try:
            await self.connection.client.cancel(request_id)
        except NotFoundError:
            pass  # it ended on its own meanwhile
        except DeepSpaceClientError as exc:
            self.chat.error = error_dict(exc)

    async def _run(self, reply: MessageModel, content: str | None) -> None:
        try:
            await self.controller.loaded()
            reply.model = reply.model or self.chat.model
            conversation_id = await self.controller.ensure_conversation()
            if conversation_id is None:
                raise DeepSpaceClientError(self.chat.error.get("message", "no conversation"), code="no_conversation")
            params = self.controller.params()
            if self.chat.workflow and content is not None:  # the message starts the workflow instead
                params["workflow"] = {"name": self.chat.workflow}
            stream = self.connection.client.stream_chat(
                conversation_id=conversation_id, content=content, model=self.chat.model,
                regenerate=content is None, **params)
            async with stream:
                self.request_id = reply.request_id = stream.request_id
                if self._stop_requested and self.request_id:
                    await self._cancel(self.request_id)
                async for event in stream:
                    self._on_event(reply, event)
        except asyncio.CancelledError:
            reply.status = "stopped"
        except DeepSpaceClientError as exc:
            reply.error, reply.status = error_dict(exc), "error"
            self.chat.error = reply.error
        finally:
            self._flush()
            if reply.status == "streaming":
                reply.status = "done"
            self.chat.streaming = False
        await self.controller.refresh_conversations()

    def _on_event(self, reply: MessageModel, event: ChatEvent) -> None:
        data = event.data
        if event.event == "delta":
            self._buffer.append(str(data.get("content", "")))
            if self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_later(self.flush_interval_s, self._flush)
            return
        self._flush()
        if event.event in ("thought", "tool_call", "tool_result", "citation"):
            content = data.get("content", data)
            reply.steps = [*reply.steps, {"kind": event.event, "content": content}]
        elif event.event == "usage":
            reply.usage = data
        elif event.event == "billing":
            reply.billing = data
            self.billing.set_wallet(data)
        elif event.event == "error":
            reply.error, reply.status = {"code": data.get("code", "error"), "message": data.get("message", "")}, "error"
            self.chat.error = reply.error
        elif event.event == "done" and reply.status == "streaming":
            reply.status = "stopped" if data.get("cancelled") else "done"

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._buffer and self._reply is not None:
            self._reply.content += "".join(self._buffer)
            self._buffer = []
            self.flushes += 1


class AccountController:
    def __init__(self, connection: Connection, user: UserStore) -> None:
        self.connection, self.user = connection, user

    @property
    def client(self) -> AsyncDeepSpaceClient:
        return self.connection.client

    async def load(self) -> None:
        me = await guarded(self.user, self.client.me())
        if me is None:
            return
        self.user.me = me
        self.user.project_id = me.get("project_id")
        projects = await guarded(self.user, self.client.projects())
        if projects is not None:
            self.user.projects = projects
        keys = await guarded(self.user, self.client.keys())
        if keys is not None:
            self.user.keys = keys

    async def login(self, email: str, password: str) -> bool:
        self.user.error = {}
        if await guarded(self.user, self.client.login(email, password)) is None:
            return False
        await self.load()
        return True

    async def create_project(self, name: str) -> None:
        self.user.error = {}
        if await guarded(self.user, self.client.create_project(name)) is not None:
            self.user.projects = await self.client.projects()

    def switch_project(self, project_id: str) -> bool:
        """Act in another project (tokens only: an API key is bound to its own)."""
        if self.client.config.credentials.kind == "api_key" and project_id != self.user.me.get("project_id"):
            self.user.error = {"code": "key_project_mismatch", "message": "an API key works only in its own project"}
            return False
        self.connection.use_project(project_id)
        self.user.project_id = project_id
        self.user.error = {}
        return True

    async def create_key(self, name: str) -> None:
        self.user.new_key, self.user.error = {}, {}
        key = await guarded(self.user, self.client.create_key(name=name or None, scopes=["chat"]))
        if key is not None:
            self.user.keys = await self.client.keys()
            self.user.new_key = key

    async def revoke_key(self, key_id: str) -> None:
        self.user.new_key, self.user.error = {}, {}
        if await guarded(self.user, self.client.revoke_key(key_id)) is not None:
            self.user.keys = await self.client.keys()


class BillingController:
    def __init__(self, connection: Connection, billing: BillingStore) -> None:
        self.connection, self.billing = connection, billing

    async def refresh(self) -> None:
        client = self.connection.client
        wallet = await guarded(self.billing, client.wallet())
        if wallet is None:
            return
        self.billing.set_wallet(wallet)
        transactions = await guarded(self.billing, client.transactions(limit=20))
        usage = await guarded(self.billing, client.usage(limit=200))
        summary = await guarded(self.billing, client.usage_summary(group_by="day"))
        if transactions is not None:
            self.billing.transactions = list(transactions["data"])
        if summary is not None:
            self.billing.usage_summary = dict(summary)
        if usage is not None:
            self.billing.usage = list(usage["data"])

    async def redeem(self, code: str) -> None:
        """Redeem a credit code; the wallet and its entries refresh on success."""
        self.billing.redeemed, self.billing.error = {}, {}
        result = await guarded(self.billing, self.connection.client.redeem_code(code.strip()))
        if result is not None:
            self.billing.redeemed = dict(result)
            await self.refresh()
