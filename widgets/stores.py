"""State that components observe (traitlets): chat, user and billing (DESIGN §8).

Controllers are the only writers; components only read and observe.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, HasTraits, Instance, Int, List, Unicode


class MessageModel(HasTraits):
    """One message; an assistant reply fills in as its stream arrives."""

    role = Unicode("user")
    content = Unicode("")
    #: ``streaming``, ``done``, ``stopped`` or ``error``
    status = Unicode("done")
    model = Unicode("")
    #: agent steps in arrival order: {"kind": thought|tool_call|tool_result|citation, "content": ...}
    steps: List[dict[str, Any]] = List()
    usage = Dict()
    billing = Dict()
    error = Dict()
    request_id = Unicode(None, allow_none=True)


class ChatStore(HasTraits):
    conversations: List[dict[str, Any]] = List()
    conversation_id = Unicode(None, allow_none=True)
    messages = List(Instance(MessageModel))
    #: model ids, as the catalog lists them
    models: List[str] = List()
    model = Unicode("")
    temperature = Float(None, allow_none=True)
    max_tokens = Int(None, allow_none=True)
    system_prompt = Unicode("")
    #: the project's workflow names, and the one a message runs instead of the model ("": none)
    workflows: List[str] = List()
    workflow = Unicode("")
    streaming = Bool(False)
    #: the hold of the next send (micro-credits), None when unknown
    estimate_micros = Int(None, allow_none=True)
    error = Dict()
    simulated = Bool(False)

    def title(self) -> str:
        for conv in self.conversations:
            if conv["id"] == self.conversation_id:
                return str(conv.get("title") or "")
        return ""


class UserStore(HasTraits):
    me = Dict()
    projects: List[dict[str, Any]] = List()
    project_id = Unicode(None, allow_none=True)
    keys: List[dict[str, Any]] = List()
    #: the key just created (its secret shown once), cleared by the next key action
    new_key = Dict()
    error = Dict()


class BillingStore(HasTraits):
    wallet = Dict()
    transactions: List[dict[str, Any]] = List()
    usage: List[dict[str, Any]] = List()
    #: ``GET /usage/summary?group_by=day``: the roll-ups by day and how far they are built
    usage_summary = Dict()
    #: below this many available micro-credits the chat warns
    low_balance_micros = Int(5_000_000)
    low_balance = Bool(False)
    error = Dict()
    #: the last code redeemed (amount and new balance), cleared by the next attempt
    redeemed = Dict()

    def set_wallet(self, wallet: dict[str, Any]) -> None:
        merged = {**self.wallet, **{k: v for k, v in wallet.items() if k.endswith("_micros") or k == "org_id"}}
        self.wallet = merged
        available = merged.get("available_micros", merged.get("balance_micros"))
        self.low_balance = available is not None and available < self.low_balance_micros


class WorkflowStore(HasTraits):
    """The workflow widget's state: definitions and versions, the open run, its log and files."""

    workflows: List[dict[str, Any]] = List()
    workflow_id = Unicode(None, allow_none=True)
    #: versions of the chosen workflow, newest first
    versions: List[dict[str, Any]] = List()
    version = Int(None, allow_none=True)
    #: the chosen version's definition (its declared inputs, its steps)
    definition = Dict()
    #: run history of the chosen workflow, newest first
    runs: List[dict[str, Any]] = List()
    #: the open run with its steps, as the Gateway last said
    run = Dict()
    run_id = Unicode(None, allow_none=True)
    #: the open run's events, oldest first (the newest ``MAX_EVENTS``)
    events: List[dict[str, Any]] = List()
    #: the open run's files: {id, name, size_bytes, step_id, path (once downloaded)}
    artifacts: List[dict[str, Any]] = List()
    following = Bool(False)
    error = Dict()

    MAX_EVENTS = 500

    def declared_inputs(self) -> dict[str, dict[str, Any]]:
        """The chosen version's inputs by name: {type, default, description}."""
        return {name: dict(spec or {}) for name, spec in (self.definition.get("inputs") or {}).items()}
