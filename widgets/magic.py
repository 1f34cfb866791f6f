"""``%load_ext deepspace_lab.widgets``, then:

- ``%%deepspace [-m MODEL] [--conversation ID]`` — the cell (with ``{var}``, ``{var.attr}`` and
  ``{var[0]}`` filled in from the notebook's namespace, as ``str.format`` reads a field; what does
  not resolve is left as written) is sent to the Gateway and the answer
  streams into the cell's output as Markdown, with a footer of tokens and cost. The output is a
  display (``display_id`` updates), so it is kept when the notebook is saved or run by papermill.
  Without ``--conversation`` the call is stateless (the OpenAI route); with it, the message joins
  that conversation (the product stream, history built by the Gateway). Interrupting the kernel
  stops the reply: in a conversation the Gateway cancels it and the footer shows what was
  generated, delivered and billed; a stateless reply is left (the Gateway bills what was
  generated). A second interrupt raises as usual.
- ``%deepspace models`` · ``%deepspace usage`` · ``%deepspace wallet``.

The model defaults to ``DEEPSPACE_MODEL`` or the first model the Gateway lists.
"""

from __future__ import annotations

import os
import re
import signal
import string
import threading
import time
from types import FrameType
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Markdown, display

from deepspace_lab.client import DeepSpaceClient, DeepSpaceClientError, NotFoundError

from .i18n import Text, credits

#: ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name[key]}`` (not inside doubled braces)
_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]+\])*)\}(?!\})")
_FORMATTER = string.Formatter()
UPDATE_INTERVAL_S = 0.1


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """Each ``{field}`` → ``str`` of its value, looked up in ``namespace`` as ``str.format``
    reads a field name (``{df.shape[0]}``); a field that does not resolve stays as written."""

    def fill(match: re.Match[str]) -> str:
        try:
            value, _ = _FORMATTER.get_field(match.group(1), (), namespace)
        except Exception:  # a missing name or attribute, a bad index, a property that raised
            return match.group(0)
        return str(value)

    return _FIELD.sub(fill, text)


class StopOnInterrupt:
    """While a reply streams, a kernel interrupt (SIGINT) asks it to stop instead of raising
    ``KeyboardInterrupt`` inside the HTTP read, which would drop the rest of the stream (its
    usage and bill). A second interrupt raises as usual. Only the main thread can install it;
    elsewhere interrupts behave as they always do."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._interrupted)
            self._installed = True
        return self

    def _interrupted(self, _signum: int, _frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *_exc: object) -> None:
        if self._installed:  # a handler set outside Python reads as None: Python's default then
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)


@magics_class
class DeepSpaceMagics(Magics):
    def __init__(self, shell: Any, client: DeepSpaceClient | None = None) -> None:
        super().__init__(shell)
        self._client = client
        self.text = Text()

    @property
    def client(self) -> DeepSpaceClient:
        if self._client is None:
            self._client = DeepSpaceClient()
        return self._client

    def default_model(self) -> str:
        return os.environ.get("DEEPSPACE_MODEL") or str(self.client.models()[0]["id"])

    @magic_arguments()
    @argument("-m", "--model", default=None, help="the model (default: DEEPSPACE_MODEL or the first listed)")
    @argument("--conversation", default=None, help="a conversation id: the message joins it")
    @argument("command", nargs="?", default=None, help="line form: models | usage | wallet")
    @line_cell_magic
    def deepspace(self, line: str, cell: str | None = None) -> Any:
        args = parse_argstring(self.deepspace, line)
        try:
            if cell is None:
                return self._line(args.command)
            prompt = interpolate(cell, self.shell.user_ns if self.shell is not None else {})
            self._chat(prompt, model=args.model or self.default_model(), conversation=args.conversation)
        except DeepSpaceClientError as exc:
            display(Markdown(f"**{self.text('error')}**: {exc.message} (`{exc.code}`)"))
        return None

    def _line(self, command: str | None) -> Any:
        import pandas as pd

        if command == "models":
            return pd.DataFrame(self.client.models())[["id", "context_window", "owned_by"]]
        if command == "usage":
            rows = self.client.usage(limit=50)["data"]
            columns = ["created_at", "model", "prompt_tokens", "completion_tokens", "cost_micros", "measured", "status"]
            return pd.DataFrame(rows, columns=columns)
        if command == "wallet":
            wallet = self.client.wallet()
            display(Markdown(f"{self.text('balance')}: **{credits(wallet['balance_micros'])}** · "
                             f"{self.text('frozen')}: {credits(wallet['frozen_micros'])} · "
                             f"{self.text('available')}: {credits(wallet.get('available_micros'))}"))
            return None
        raise DeepSpaceClientError("usage: %deepspace models | usage | wallet, or %%deepspace [-m MODEL] "
                                   "[--conversation ID] as a cell magic", code="invalid_magic")

    def _chat(self, prompt: str, *, model: str, conversation: str | None) -> None:
        handle = display(Markdown("…"), display_id=True)
        parts: list[str] = []
        footer = ""
        last = 0.0

        def show(final: bool = False) -> None:
            nonlocal last
            if final or time.monotonic() - last >= UPDATE_INTERVAL_S:
                handle.update(Markdown("".join(parts) + (f"\n\n---\n*{footer}*" if footer else "")))
                last = time.monotonic()

        try:
            if conversation is None:
                footer = self._stateless(prompt, model, parts, show)
            else:
                footer = self._in_conversation(prompt, model, conversation, parts, show)
        except DeepSpaceClientError as exc:  # in the same output, with the Gateway's message
            parts.append(f"\n\n**{self.text('error')}**: {exc.message} (`{exc.code}`)")
        finally:
            show(final=True)

    def _stateless(self, prompt: str, model: str, parts: list[str], show: Any) -> str:
        usage: dict[str, Any] = {}
        with self.client.chat_stream(model, [{"role": "user", "content": prompt}],
                                     stream_options={"include_usage": True}) as stream, StopOnInterrupt() as stop:
            for chunk in stream:
                for choice in chunk.get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or "")
                usage = chunk.get("usage") or usage
                show()
                if stop.requested:  # leaving the stream: the Gateway drains and bills what was generated
                    return f"{model} · {self.text('stopped')}"
        return self._footer(model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                            usage.get("completion_tokens", 0), usage.get("cost_micros"))

    def _in_conversation(self, prompt: str, model: str, conversation: str, parts: list[str], show: Any) -> str:
        usage: dict[str, Any] = {}
        bill: dict[str, Any] = {}
        done: dict[str, Any] = {}
        cancelled = False
        with self.client.stream_chat(conversation_id=conversation, content=prompt, model=model) as stream, \
                StopOnInterrupt() as stop:
            for event in stream:
                if stop.requested and not cancelled and stream.request_id:
                    cancelled = True  # the stream goes on to its usage, billing and done events
                    try:
                        self.client.cancel(stream.request_id)
                    except NotFoundError:
                        pass  # it ended on its own meanwhile
                if event.event == "delta":
                    parts.append(str(event.data.get("content", "")))
                elif event.event == "usage":
                    usage = event.data
                elif event.event == "billing":
                    bill = event.data
                elif event.event == "done":
                    done = event.data
                elif event.event == "error":
                    parts.append(f"\n\n**{self.text('error')}**: {event.data.get('message')}")
                show()
        footer = self._footer(model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                              usage.get("delivered_tokens", 0), bill.get("cost_micros"))
        return footer + (f" · {self.text('stopped')}" if done.get("cancelled") else "")

    def _footer(self, model: str, prompt: int, generated: int, delivered: int, cost: int | None) -> str:
        return f"{model} · " + self.text("footer", prompt=prompt, generated=generated, delivered=delivered,
                                          cost=credits(cost))


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(DeepSpaceMagics(ipython))
