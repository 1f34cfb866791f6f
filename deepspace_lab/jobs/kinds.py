"""Job kinds: what a job of each kind does and which params it takes.

Kinds are found through the entry-point group ``deepspace_lab.job_kinds`` (:func:`job_kinds`);
the built-in ones (``noop``, ``sleep``, ``export``, ``statement``) are registered there too
(``pyproject.toml``), so a package adds a kind the same way. A kind is a :class:`JobKind`:
``check`` validates a caller's params (a
:class:`JobParamsError` names the bad one) and ``run`` does the work in a worker, reporting
progress through its :class:`JobContext`, and returns the job's result (a small JSON
object, e.g. the file it wrote). The HTTP layer decides who may start which kind (exports and
statements: ``exports.create``); ``noop`` and ``sleep`` are for operators and tests (CLI only).
``run`` may be called again for the same job after a failure or a lost worker, so it must be
safe to repeat (an export writes a new file each attempt; the file the job's result names is
the one that counts).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..plugins import load_plugins
from .errors import JobParamsError

if TYPE_CHECKING:
    from .worker import JobContext

Run = Callable[["JobContext"], Awaitable[dict[str, Any] | None]]
Check = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Run
    check: Check
    description: str


def no_params(params: dict[str, Any]) -> dict[str, Any]:
    if params:
        raise JobParamsError(f"this job takes no params, got {sorted(params)}", param="params")
    return {}


async def _noop(ctx: JobContext) -> dict[str, Any]:
    return {"ok": True}


def _check_sleep(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"seconds", "fail_times"}
    if unknown:
        raise JobParamsError(f"unknown params {sorted(unknown)}", param=sorted(unknown)[0])
    seconds = params.get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
        raise JobParamsError("`seconds` must be a number from 0 to 600", param="seconds")
    fail_times = params.get("fail_times", 0)
    if isinstance(fail_times, bool) or not isinstance(fail_times, int) or not 0 <= fail_times <= 10:
        raise JobParamsError("`fail_times` must be an integer from 0 to 10", param="fail_times")
    return {"seconds": seconds, "fail_times": fail_times}


async def _sleep(ctx: JobContext) -> dict[str, Any]:
    """Waits ``seconds`` in 20 steps, reporting progress; the first ``fail_times`` attempts
    fail at the end. For checking a deployment's workers (and for the tests)."""
    params = ctx.job.params
    if ctx.job.attempts <= params.get("fail_times", 0):
        await asyncio.sleep(float(params["seconds"]))
        raise RuntimeError(f"failing attempt {ctx.job.attempts} on purpose (fail_times)")
    steps = 20
    for i in range(steps):
        ctx.progress(i, steps)
        await asyncio.sleep(float(params["seconds"]) / steps)
    return {"slept_s": params["seconds"]}


ENTRY_POINT_GROUP = "deepspace_lab.job_kinds"


@functools.cache
def job_kinds() -> dict[str, JobKind]:
    """Every job kind registered under the entry-point group, by name (loaded once)."""
    return load_plugins(ENTRY_POINT_GROUP, JobKind)


NOOP = JobKind("noop", _noop, no_params, "Does nothing: checks that a worker runs jobs.")
SLEEP = JobKind("sleep", _sleep, _check_sleep,
               "Waits `seconds` (0-600) reporting progress; `fail_times` first attempts fail.")
