"""The step registry and the onion that runs steps around each request.

Steps are found through the entry-point group ``deepspace_lab.pipeline_steps``; the built-in
ones are registered there too (``pyproject.toml``). The core order is fixed here and cannot
be changed by configuration; extension steps named in ``DEEPSPACE_PIPELINE_STEPS`` run in
the given order between the core steps that prepare a call and those that make it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, cast

from ..config import ConfigError
from ..plugins import load_plugins
from .context import Next, PipelineServices, RequestContext

ENTRY_POINT_GROUP = "deepspace_lab.pipeline_steps"
#: Every product route runs these, in this order.
#: ``ip_rules`` before ``auth``: a denied address is refused before its credential is read.
DOOR_STEPS = ("audit", "ip_rules", "auth")
#: Model calls add these: before the extension steps, then after them.
#: ``idempotency`` right after ``validate``: before rate limits and billing, so a replay
#: never counts against a limit or reaches a hold; ``policy`` after ``budget_hold`` (the
#: spec's order), so a refused model's hold is released on the way out.
CHAT_STEPS_BEFORE = ("validate", "idempotency", "conversation", "rate_limit", "budget_hold", "policy")
CHAT_STEPS_AFTER = ("usage_capture", "upstream")
CORE_STEPS = frozenset(DOOR_STEPS + CHAT_STEPS_BEFORE + CHAT_STEPS_AFTER)


class Step(Protocol):
    """A pipeline step: do something, call ``call_next`` (or not), do something after."""

    name: str

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None: ...


StepFactory = Callable[[PipelineServices], Step]


def discover_steps() -> dict[str, StepFactory]:
    """Every step registered under the entry-point group, by name: a class (made with the
    services) whose ``name`` is its entry point's, checked as every plug-in group is."""
    return cast(dict[str, StepFactory], load_plugins(ENTRY_POINT_GROUP, type))


def _compose(steps: Sequence[Step], endpoint: Next) -> Next:
    handler = endpoint
    for step in reversed(steps):
        handler = functools.partial(step.__call__, call_next=handler)
    return handler


async def _innermost(ctx: RequestContext) -> None:
    """The upstream step never calls on; nothing is left to do."""


class Pipeline:
    def __init__(
        self,
        services: PipelineServices,
        *,
        extensions: Sequence[str] = (),
        registry: Mapping[str, StepFactory] | None = None,
    ) -> None:
        registry = dict(discover_steps() if registry is None else registry)
        missing = CORE_STEPS - registry.keys()
        if missing:
            raise ConfigError(f"core pipeline steps are not registered: {sorted(missing)}; reinstall deepspace-lab")
        for name in extensions:
            if name in CORE_STEPS:
                raise ConfigError(f"{name!r} is a core step: its place is fixed and it cannot be configured",
                                  code="core_step_not_configurable")
            if name not in registry:
                raise ConfigError(f"unknown pipeline step {name!r}; registered: {sorted(registry)}",
                                  code="unknown_pipeline_step")
        names = DOOR_STEPS + CHAT_STEPS_BEFORE + tuple(extensions) + CHAT_STEPS_AFTER
        self.chat_step_names = names
        built = {name: registry[name](services) for name in dict.fromkeys(names)}
        self._door = [built[n] for n in DOOR_STEPS]
        self._chat = _compose([built[n] for n in names], _innermost)

    async def run_chat(self, ctx: RequestContext) -> None:
        """A model call through every step."""
        await self._chat(ctx)

    async def run(self, ctx: RequestContext, endpoint: Callable[[RequestContext], Awaitable[None]]) -> None:
        """Any other product route: audit and auth (and ``ctx.action`` authorised), then ``endpoint``."""
        await _compose(self._door, endpoint)(ctx)

    async def run_public(self, ctx: RequestContext,
                         endpoint: Callable[[RequestContext], Awaitable[None]]) -> None:
        """A route that takes no credential (login, refresh): audited and IP-checked, nothing else."""
        await _compose(self._door[:2], endpoint)(ctx)
