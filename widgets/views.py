"""The workbench's views: they put components together and wire user actions to controllers
(scheduled as asyncio tasks on the kernel's loop, never awaited in a widget callback)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import ipywidgets as w

from deepspace_lab.client import AsyncDeepSpaceClient

from .components import STYLE, MessageList, PromptInput, bar_chart_svg, error_html, table_html
from .context import current_shell, notebook_context
from .controllers import AccountController, BillingController, ChatController, ChatStreamController, Connection
from .i18n import Text, credits
from .prefs import Prefs
from .render import escape
from .stores import BillingStore, ChatStore, UserStore

#: the admin console's URL, linked from the Profile tab for admins
ADMIN_URL_ENV = "DEEPSPACE_ADMIN_URL"

#: tasks the views started: kept so they are not garbage-collected mid-flight
_TASKS: set[asyncio.Task[Any]] = set()


class Loop:
    """The kernel's event loop, caught when the workbench is made (in a cell, on the main
    thread). Widget callbacks may run on another thread — ipykernel 7 can handle comm messages
    in a subshell — so every action is handed to this loop; on its own thread it runs at once."""

    loop: asyncio.AbstractEventLoop | None = None
    thread: int | None = None

    @classmethod
    def capture(cls) -> None:
        cls.loop = asyncio.get_event_loop()
        cls.thread = threading.get_ident()

    @classmethod
    def call(cls, fn: Callable[..., Any], *args: Any) -> None:
        if cls.loop is None or cls.thread == threading.get_ident():
            fn(*args)
        else:
            cls.loop.call_soon_threadsafe(fn, *args)


def spend_per_day(summary: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Credits spent per UTC day: the roll-ups (the whole history, ``GET /usage/summary``) up to
    where they are built, then the newest usage records after that (so a call shows at once);
    nothing is counted twice."""
    per_day: dict[str, float] = defaultdict(float)
    for row in summary.get("data") or ():
        per_day[str(row["key"])] += int(row.get("cost_micros") or 0) / 1_000_000
    rolled = summary.get("rolled_until")
    cut = _utc(rolled) if rolled else None
    for record in records:
        created = str(record.get("created_at", ""))
        if cut is None or _utc(created) >= cut:
            per_day[created[:10]] += int(record.get("cost_micros") or 0) / 1_000_000
    return sorted(per_day.items())


def _utc(iso: str) -> datetime:
    moment = datetime.fromisoformat(iso)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def spawn(coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro`` as a task on the kernel's loop."""

    def start() -> None:
        task = asyncio.get_event_loop().create_task(coro)
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    Loop.call(start)


def on_loop(fn: Callable[..., Any]) -> Callable[..., None]:
    """A widget callback that runs ``fn`` on the kernel's loop."""
    return lambda *args: Loop.call(fn, *args)


def _js_string(value: str) -> str:
    """A JavaScript string literal: JSON, with ``<``, ``>`` and ``&`` escaped too, so no text
    (``</script>`` included) can end the script or change the code around it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _in_cell(shell: Any) -> bool:
    """Whether the kernel is running a cell now (not handling a widget's message)."""
    header = getattr(shell, "parent_header", None)
    return isinstance(header, dict) and header.get("msg_type") == "execute_request"


def insert_cell_js(code: str, nonce: str) -> str:
    """JavaScript that inserts a code cell with ``code`` below the active cell of the notebook
    in view, through JupyterLab's ``window.jupyterapp`` (the extension's jupyter config sets
    ``LabApp.expose_app_in_browser``). It does nothing without JupyterLab, and runs once per
    ``nonce`` in a browser: a reloaded page that replays the widget's output adds no cell."""
    return f"""(function () {{
  var code = {_js_string(code)}, key = "deepspace-insert-code:" + {_js_string(nonce)};
  try {{ if (window.localStorage.getItem(key)) return; window.localStorage.setItem(key, "1"); }} catch (e) {{}}
  var app = window.jupyterapp, panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.activeCell) return;
  Promise.resolve(app.commands.execute("notebook:insert-cell-below")).then(function () {{
    var notebook = app.shell.currentWidget.content;
    return notebook.activeCell.model.type === "code" ? null : app.commands.execute("notebook:change-cell-to-code");
  }}).then(function () {{
    app.shell.currentWidget.content.activeCell.model.sharedModel.setSource(code);
  }});
}})();"""


class Rendering:
    """:meth:`render` draws the store through ``_render`` with ``_rendering`` set, so the view's own
    observers can tell a value it set from one the user chose."""

    _rendering = False

    def render(self, _change: Any = None) -> None:
        self._rendering = True
        try:
            self._render()
        finally:
            self._rendering = False

    def _render(self) -> None:
        raise NotImplementedError

    def _user(self, act: Callable[[Any], object]) -> Callable[[dict[str, Any]], None]:
        """An observer that gives ``act`` a value the user chose; one :meth:`render` set, or none
        (``None``), does not reach it."""
        def changed(change: dict[str, Any]) -> None:
            if not self._rendering and change["new"] is not None:
                act(change["new"])
        return changed


class ChatView(Rendering, w.VBox):  # type: ignore[misc]
    def __init__(self, chat: ChatStore, billing: BillingStore, controller: ChatController,
                 stream: ChatStreamController, *, text: Text) -> None:
        self.chat, self.billing, self.controller, self.stream, self.text = chat, billing, controller, stream, text
        t = text
        wide = {"description_width": "initial"}
        self.simulated = w.HTML()
        self.model = w.Dropdown(description=t("model"), options=[], style=wide)
        self.temperature = w.BoundedFloatText(description=t("temperature"), value=1.0, min=0, max=2, step=0.1,
                                              style=wide, layout=w.Layout(width="180px"))
        self.max_tokens = w.BoundedIntText(description=t("max_tokens"), value=512, min=1, max=1_000_000, style=wide,
                                           layout=w.Layout(width="200px"))
        self.system = w.Textarea(description=t("system_prompt"), continuous_update=False, style=wide,
                                 layout=w.Layout(width="100%"))
        self.workflow = w.Dropdown(description=t("workflow"), options=[(t("no_workflow"), "")], value="",
                                   style=wide)
        self.conversation = w.Dropdown(description=t("conversation"), options=[], style=wide)
        self.title = w.Text(placeholder=t("rename"))
        buttons = {name: w.Button(description=t(name), layout=w.Layout(width="auto", min_width="90px"))
                   for name in ("new_chat", "rename", "delete", "reload", "regenerate")}
        self.buttons = buttons
        self.messages = MessageList(chat, text=t, on_insert_code=self.insert_code)
        self.code_out = w.Textarea(layout=w.Layout(width="100%", display="none"))
        self.insert_js = w.Output(layout=w.Layout(display="none"))  # runs insert_cell_js in the page
        self.prompt = PromptInput(chat, text=t, on_send=on_loop(self.send), on_stop=on_loop(stream.stop),
                                  on_draft=lambda draft: spawn(controller.estimate(draft)))
        self.error = w.HTML()
        self.low_balance = w.HTML()
        self.use_cell = w.Checkbox(description=t("include_cell"), indent=False)
        self.use_error = w.Checkbox(description=t("include_error"), indent=False)
        self.variables = w.Text(placeholder=t("variables"))
        self.use_cell.layout.width = self.use_error.layout.width = "auto"
        context = w.HBox([w.Label(t("context") + ":"), self.use_cell, self.use_error, self.variables])
        super().__init__(children=[
            w.HTML(STYLE), self.simulated, w.HBox([self.model, self.temperature, self.max_tokens, self.workflow]),
            self.system,
            w.HBox([self.conversation, *buttons.values(), self.title], layout=w.Layout(flex_flow="row wrap")),
            self.messages, self.code_out, self.insert_js,
            self.error, self.low_balance, context, self.prompt])
        self._wire()
        self.render()

    def _wire(self) -> None:
        chat, c = self.chat, self.controller
        self.buttons["new_chat"].on_click(lambda _b: spawn(c.new_conversation()))
        self.buttons["rename"].on_click(lambda _b: spawn(c.rename(self.title.value)))
        self.buttons["delete"].on_click(lambda _b: spawn(c.delete()))
        self.buttons["reload"].on_click(lambda _b: spawn(c.reload()))
        self.buttons["regenerate"].on_click(on_loop(lambda _b: self.stream.regenerate()))
        self.conversation.observe(self._switched, names="value")
        for widget, name in ((self.model, "model"), (self.temperature, "temperature"),
                             (self.max_tokens, "max_tokens"), (self.system, "system_prompt"),
                             (self.workflow, "workflow")):
            widget.observe(self._user_set(name), names="value")
        chat.observe(self.render, names=["models", "model", "conversations", "conversation_id", "error", "simulated",
                                         "streaming", "system_prompt", "workflows", "workflow"])
        self.billing.observe(self.render, names=["low_balance", "wallet"])
        chat.temperature, chat.max_tokens = self.temperature.value, self.max_tokens.value

    def _user_set(self, name: str) -> Callable[[dict[str, Any]], None]:
        """A setting the user changed goes to the store; a change made by :meth:`render` does not."""
        return self._user(lambda value: setattr(self.chat, name, value))

    def _switched(self, change: dict[str, Any]) -> None:
        if self._rendering:
            return
        if change["new"] and change["new"] != self.chat.conversation_id:
            spawn(self.controller.switch(change["new"]))

    def send(self, prompt: str) -> None:
        variables = [v.strip() for v in self.variables.value.split(",") if v.strip()]
        context = notebook_context(current_shell(), include_cell=self.use_cell.value,
                                   include_error=self.use_error.value, variables=variables)
        self.stream.send(prompt, context=context)

    def insert_code(self, code: str) -> None:
        """Into a new cell below the active one: in JupyterLab through :func:`insert_cell_js`
        (a widget click runs in no cell, so ``set_next_input`` cannot); from a running cell
        through ``set_next_input``. The code is also shown for copying, for every other front end."""
        shell = current_shell()
        if _in_cell(shell):
            shell.set_next_input(code, replace=False)
        else:  # replaces the previous script, so a replayed output holds one at most
            script = insert_cell_js(code, uuid.uuid4().hex)
            self.insert_js.outputs = (
                {"output_type": "display_data", "data": {"application/javascript": script}, "metadata": {}},)
        self.code_out.value = code
        self.code_out.layout.display = ""

    def _render(self) -> None:
        chat, t = self.chat, self.text
        with self.hold_sync():
            self.simulated.value = (f"<div class='ds-simulated' style='background:#fff3cd; padding:4px'>⚠ "
                                    f"{escape(t('simulated'))}</div>") if chat.simulated else ""
            self.model.options = list(chat.models)
            if chat.model in chat.models:
                self.model.value = chat.model
            self.conversation.options = [(c.get("title") or t("untitled") + " " + c["id"][-6:], c["id"])
                                         for c in chat.conversations]
            if chat.conversation_id in {c["id"] for c in chat.conversations}:
                self.conversation.value = chat.conversation_id
            self.system.value = chat.system_prompt
            self.workflow.options = [(t("no_workflow"), ""), *((name, name) for name in chat.workflows)]
            self.workflow.value = chat.workflow if chat.workflow in chat.workflows else ""
            self.error.value = error_html(chat.error, t)
            available = self.billing.wallet.get("available_micros")
            warning = t("low_balance", available=credits(available))
            self.low_balance.value = (f"<div class='ds-low-balance' style='color:#b45309'>{escape(warning)}</div>"
                                      if self.billing.low_balance else "")
            for button in self.buttons.values():
                button.disabled = chat.streaming


class BillingView(w.VBox):  # type: ignore[misc]
    def __init__(self, billing: BillingStore, controller: BillingController, *, text: Text) -> None:
        self.billing, self.text = billing, text
        self.summary = w.HTML()
        self.refresh = w.Button(description=text("refresh"), icon="refresh")
        self.refresh.on_click(lambda _b: spawn(controller.refresh()))
        self.chart = w.HTML()
        self.transactions = w.HTML()
        self.error = w.HTML()
        self.code = w.Text(placeholder=text("redeem_placeholder"))
        self.redeem = w.Button(description=text("redeem"), icon="gift")
        self.redeem.on_click(lambda _b: spawn(controller.redeem(self.code.value)) if self.code.value.strip() else None)
        self.redeemed = w.HTML()
        super().__init__(children=[w.HBox([self.summary, self.refresh]), self.error,
                                   w.HBox([self.code, self.redeem]), self.redeemed,
                                   w.HTML(f"<b>{escape(text('usage_chart'))}</b>"), self.chart,
                                   w.HTML(f"<b>{escape(text('transactions'))}</b>"), self.transactions])
        billing.observe(self.render, names=["wallet", "transactions", "usage", "usage_summary", "error", "redeemed"])
        billing.observe(self._clear_code, names=["redeemed"])
        self.render()

    def _clear_code(self, change: Any) -> None:
        if change["new"]:  # redeemed: the code is spent
            self.code.value = ""

    def render(self, _change: Any = None) -> None:
        b, t = self.billing, self.text
        with self.hold_sync():
            balance = credits(b.wallet.get("balance_micros"))
            self.summary.value = (f"<span class='ds-balance'>{t('balance')}: <b>{balance}"
                                  f"</b></span> · {t('frozen')}: {credits(b.wallet.get('frozen_micros'))} · "
                                  f"{t('available')}: {credits(b.wallet.get('available_micros'))}")
            self.transactions.value = table_html([
                {"time": str(e.get("created_at", ""))[:19], "type": e["type"], "amount": credits(e["amount_micros"]),
                 "balance after": credits(e.get("balance_after_micros")), "request": e.get("request_id") or ""}
                for e in b.transactions], ["time", "type", "amount", "balance after", "request"])
            points = spend_per_day(b.usage_summary, b.usage)
            self.chart.value = bar_chart_svg(points) if points else f"<i>{escape(t('no_usage'))}</i>"
            self.error.value = error_html(b.error, t)
            amount = b.redeemed.get("amount_micros")
            self.redeemed.value = ("" if amount is None else
                                   f"<span class='ds-redeemed'>{escape(t('redeemed').format(amount=credits(amount)))}"
                                   "</span>")


class ProjectsView(w.VBox):  # type: ignore[misc]
    def __init__(self, user: UserStore, controller: AccountController, *, text: Text) -> None:
        self.user, self.text, self.controller = user, text, controller
        self.list = w.HTML()
        self.choice = w.Dropdown(description=text("active_project"), options=[])
        self.switch = w.Button(description=text("switch"))
        self.name = w.Text(placeholder=text("project_name"))
        self.create = w.Button(description=text("create"), icon="plus")
        self.error = w.HTML()
        self.switch.on_click(on_loop(lambda _b: controller.switch_project(self.choice.value)
                                     if self.choice.value else None))
        self.create.on_click(lambda _b: spawn(controller.create_project(self.name.value)) if self.name.value else None)
        super().__init__(children=[self.list, w.HBox([self.choice, self.switch]), w.HBox([self.name, self.create]),
                                   self.error])
        user.observe(self.render, names=["projects", "project_id", "error"])
        self.render()

    def render(self, _change: Any = None) -> None:
        u = self.user
        with self.hold_sync():
            self.list.value = table_html([{"": "●" if p["id"] == u.project_id else "", "name": p["name"], "id": p["id"]}
                                          for p in u.projects], ["", "name", "id"])
            self.choice.options = [(p["name"], p["id"]) for p in u.projects]
            if u.project_id in {p["id"] for p in u.projects}:
                self.choice.value = u.project_id
            self.error.value = error_html(u.error, self.text)


class ProfileView(w.VBox):  # type: ignore[misc]
    def __init__(self, user: UserStore, controller: AccountController, *, text: Text,
                 admin_url: str | None = None) -> None:
        self.user, self.text = user, text
        #: the admin console (``deepspace-lab admin``), linked for admins when configured
        self.admin_url = admin_url if admin_url is not None else os.environ.get(ADMIN_URL_ENV, "")
        t = text
        self.who = w.HTML()
        self.admin_link = w.HTML()
        self.email = w.Text(description=t("email"))
        self.password = w.Password(description=t("password"))
        self.login = w.Button(description=t("login"), icon="sign-in")
        self.login.on_click(lambda _b: spawn(self._login(controller)))
        self.key_table = w.HTML()
        self.key_choice = w.Dropdown(options=[])
        self.revoke = w.Button(description=t("revoke"), button_style="danger")
        self.revoke.on_click(lambda _b: spawn(controller.revoke_key(self.key_choice.value))
                             if self.key_choice.value else None)
        self.key_name = w.Text(placeholder=t("key_name"))
        self.create_key = w.Button(description=t("create_key"), icon="key")
        self.create_key.on_click(lambda _b: spawn(controller.create_key(self.key_name.value)))
        self.new_key = w.HTML()
        self.error = w.HTML()
        super().__init__(children=[
            self.who, self.admin_link, w.HBox([self.email, self.password, self.login]),
            w.HTML(f"<b>{escape(t('api_keys'))}</b>"),
            self.key_table, w.HBox([self.key_choice, self.revoke]), w.HBox([self.key_name, self.create_key]),
            self.new_key, self.error])
        user.observe(self.render, names=["me", "keys", "new_key", "error"])
        self.render()

    async def _login(self, controller: AccountController) -> None:
        if await controller.login(self.email.value, self.password.value):
            self.password.value = ""

    def render(self, _change: Any = None) -> None:
        u, t = self.user, self.text
        with self.hold_sync():
            me = u.me
            self.who.value = escape(t("signed_in_as", who=me["user"]["email"], role=me.get("role"),
                                      org=me.get("org_id")) if me else t("not_signed_in"))
            admin = bool(me) and (me["user"].get("is_platform_admin") or me.get("role") in ("admin", "owner"))
            self.admin_link.value = (f'<a href="{escape(self.admin_url)}" target="_blank" rel="noopener" '
                                     f'class="ds-admin-link">{escape(t("admin_console"))}</a>'
                                     if admin and self.admin_url else "")
            active = [k for k in u.keys if not k.get("revoked_at")]
            self.key_table.value = table_html([{"name": k.get("name") or "", "prefix": k["prefix"],
                                           "scopes": ",".join(k.get("scopes") or []),
                                           "last used": str(k.get("last_used_at") or "")[:19],
                                           "revoked": str(k.get("revoked_at") or "")[:19]} for k in u.keys],
                                         ["name", "prefix", "scopes", "last used", "revoked"])
            self.key_choice.options = [(f"{k.get('name') or ''} {k['prefix']}", k["id"]) for k in active]
            secret = u.new_key.get("api_key")
            self.new_key.value = (f"{escape(t('key_once'))} <code class='ds-new-key'>{escape(secret)}</code>"
                                  if secret else "")
            self.error.value = error_html(u.error, t)


class Workbench(w.Tab):  # type: ignore[misc]
    """Chat, Billing, Projects and Profile in one widget. ``Workbench()`` connects with the
    kernel's environment (what the Jupyter server handed it); pass a client to be explicit."""

    def __init__(self, client: AsyncDeepSpaceClient | None = None, *, lang: str | None = None,
                 flush_interval_s: float = 0.05) -> None:
        Loop.capture()
        self.text = Text(lang)
        self.connection = Connection(client or AsyncDeepSpaceClient())
        self.chat_store, self.user_store, self.billing_store = ChatStore(), UserStore(), BillingStore()
        self.chat = ChatController(self.connection, self.chat_store)
        self.chat_stream = ChatStreamController(self.connection, self.chat_store, self.billing_store, self.chat,
                                                flush_interval_s=flush_interval_s)
        self.account = AccountController(self.connection, self.user_store)
        self.billing = BillingController(self.connection, self.billing_store)
        self.chat_view = ChatView(self.chat_store, self.billing_store, self.chat, self.chat_stream, text=self.text)
        self.billing_view = BillingView(self.billing_store, self.billing, text=self.text)
        self.projects_view = ProjectsView(self.user_store, self.account, text=self.text)
        self.profile_view = ProfileView(self.user_store, self.account, text=self.text)
        super().__init__(children=[self.chat_view, self.billing_view, self.projects_view, self.profile_view])
        for index, key in enumerate(("chat", "billing", "projects", "profile")):
            self.set_title(index, self.text(key))
        self.observe(self._tab_changed, names="selected_index")
        self.prefs = Prefs()
        self.user_store.observe(self._project_changed, names="project_id")
        self.chat_view.system.observe(self._system_prompt_edited, names="value")

    def _project_changed(self, change: dict[str, Any]) -> None:
        """Another project (or a login into another org): its own system prompt, conversations
        and wallet."""
        self.chat_store.system_prompt = self.prefs.system_prompt(change["new"])
        if change["old"] is not None:
            self.chat_store.conversation_id, self.chat_store.messages = None, []
            spawn(self.chat.load())
            spawn(self.billing.refresh())

    def _system_prompt_edited(self, change: dict[str, Any]) -> None:
        if not self.chat_view._rendering:
            self.prefs.set_system_prompt(self.user_store.project_id, change["new"] or "")

    def _tab_changed(self, change: dict[str, Any]) -> None:
        if change["new"] == 1:
            spawn(self.billing.refresh())

    async def load(self) -> None:
        """Everything the views show first (models, conversations, profile, wallet)."""
        await asyncio.gather(self.chat.load(), self.account.load(), self.billing.refresh())

    def start(self) -> Workbench:
        """Schedule :meth:`load` on the running loop and return self (for a notebook cell)."""
        spawn(self.load())
        return self
