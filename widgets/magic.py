"""``%load_ext deepspace_lab.widgets``, then:

- ``%%deepspace [-m MODEL] [--conversation ID]`` — the cell (with ``{var}`` filled in from the
  notebook's namespace; unknown names are left as written) is sent to the Gateway and the answer
  streams into the cell's output as Markdown, with a footer of tokens and cost. The output is a
  display (``display_id`` updates), so it is kept when the notebook is saved or run by papermill.
  Without ``--conversation`` the call is stateless (the OpenAI route); with it, the message joins
  that conversation (the product stream, history built by the Gateway). Interrupting the kernel
  stops the reply (it is kept and billed as generated).
- ``%deepspace models`` · ``%deepspace usage`` · ``%deepspace wallet``.

The model defaults to ``DEEPSPACE_MODEL`` or the first model the Gateway lists.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Markdown, display

from deepspace_lab.client import DeepSpaceClient, DeepSpaceClientError

from .i18n import Text, credits

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
UPDATE_INTERVAL_S = 0.1


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """``{name}`` → ``str(namespace[name])``; names not in the namespace stay as written."""
    return _VAR.sub(lambda m: str(namespace[m.group(1)]) if m.group(1) in namespace else m.group(0), text)


@magics_class
class DeepSpaceMagics(Magics):  # type: ignore[misc]
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
                                     stream_options={"include_usage": True}) as stream:
            try:
                for chunk in stream:
                    for choice in chunk.get("choices") or []:
                        parts.append((choice.get("delta") or {}).get("content") or "")
                    usage = chunk.get("usage") or usage
                    show()
            except KeyboardInterrupt:
                pass  # leaving the stream: the Gateway drains and bills what was generated
        return self._footer(model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                            usage.get("completion_tokens", 0), usage.get("cost_micros"))

    def _in_conversation(self, prompt: str, model: str, conversation: str, parts: list[str], show: Any) -> str:
        usage: dict[str, Any] = {}
        bill: dict[str, Any] = {}
        with self.client.stream_chat(conversation_id=conversation, content=prompt, model=model) as stream:
            events = iter(stream)
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    break
                except KeyboardInterrupt:  # Stop: the stream ends with its usage and bill
                    if stream.request_id:
                        self.client.cancel(stream.request_id)
                    continue
                if event.event == "delta":
                    parts.append(str(event.data.get("content", "")))
                elif event.event == "usage":
                    usage = event.data
                elif event.event == "billing":
                    bill = event.data
                elif event.event == "error":
                    parts.append(f"\n\n**{self.text('error')}**: {event.data.get('message')}")
                show()
        return self._footer(model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                            usage.get("delivered_tokens", 0), bill.get("cost_micros"))

    def _footer(self, model: str, prompt: int, generated: int, delivered: int, cost: int | None) -> str:
        return f"{model} · " + self.text("footer", prompt=prompt, generated=generated, delivered=delivered,
                                          cost=credits(cost))


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(DeepSpaceMagics(ipython))
