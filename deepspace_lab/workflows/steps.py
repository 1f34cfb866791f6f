"""Step kinds: the one registry the workflow engine runs every step through.

A kind (``llm``, ``notebook``, ``verify``; later ``skill``, ``rag``, ``tool``) is a
:class:`StepKind` found through the entry-point group ``deepspace_lab.step_kinds``
(``pyproject.toml``), so a package adds one the same way the built-in ones are added.

- ``schema`` is the JSON Schema of the step's own fields (everything in a step's definition
  besides the engine's common ones: ``id``, ``kind``, ``depends_on``, ``inputs``, ``retry``,
  ``timeout_s``, ``on_failure``); the engine puts it into the published workflow schema.
- ``check(step)`` validates what the schema cannot (e.g. a notebook's parameters against the
  notebook), before the run is queued; it raises :class:`StepDefinitionError` naming the field.
- ``run(ctx)`` does one attempt in a worker and returns a :class:`StepOutcome`, or raises
  :class:`StepFailed` (a failure the run shows: code, message, detail such as the failing
  cell). It must stop soon after ``ctx.cancelled()`` turns true or ``ctx.deadline`` passes,
  and be safe to call again for the same step (a retry, a resumed run): model calls made through
  ``ctx.idempotency_key(i)`` replay instead of paying twice (DESIGN §12.8).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..plugins import load_plugins

ENTRY_POINT_GROUP = "deepspace_lab.step_kinds"


class StepDefinitionError(ValueError):
    """A step's definition is invalid; ``field`` names it (e.g. ``parameters.alpha``)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class StepFailed(Exception):
    """An attempt failed in a way the run records and shows (not a bug of ours)."""

    def __init__(self, message: str, *, code: str, detail: dict[str, Any] | None = None,
                 retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail or {}
        self.retryable = retryable


@dataclass
class StepContext:
    """What one attempt of a step sees. Built by the engine for each attempt."""

    run_id: str
    step_id: str
    attempt: int
    org_id: str
    project_id: str
    trace_id: str
    spec: dict[str, Any]  # the step's definition, validated
    inputs: dict[str, Any]  # its resolved inputs (from the run's inputs and earlier outputs)
    gateway_url: str  # how this step reaches the Gateway (deepspace_lab.client)
    api_key: str  # the run-scoped key: valid only while the run lives; never logged or stored
    deadline: float | None  # time.monotonic() by which the attempt must end, or None
    cancelled: Callable[[], bool]
    #: report progress (message, fraction 0..1 or None); shown as the run's events
    progress: Callable[[str, float | None], Awaitable[None]]
    #: store a file as an artifact of the run's project; returns the file id
    save_artifact: Callable[[str, bytes, str], Awaitable[str]]
    settings: Any = None

    def idempotency_key(self, call_index: int) -> str:
        """The key of this step's ``call_index``-th model call: (run, step, call index), the same
        on every attempt and on a resumed run, so a finished call replays instead of paying again."""
        return f"{call_key_prefix(self.run_id, self.step_id)}{call_index}"


def call_key_prefix(run_id: str, step_id: str) -> str:
    """What the idempotency keys of one step's model calls start with (``wf:<run>:<step>:``)."""
    return f"wf:{run_id}:{step_id}:"


@dataclass
class StepOutcome:
    outputs: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    cost_micros: int = 0
    artifacts: list[str] = field(default_factory=list)  # file ids


Run = Callable[[StepContext], Awaitable[StepOutcome]]
Check = Callable[[dict[str, Any]], None]


def _no_check(step: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class StepKind:
    name: str
    schema: dict[str, Any]
    run: Run
    description: str
    check: Check = _no_check


@functools.cache
def step_kinds() -> dict[str, StepKind]:
    """Every registered kind by name (entry points of ``deepspace_lab.step_kinds``)."""
    return load_plugins(ENTRY_POINT_GROUP, StepKind)
