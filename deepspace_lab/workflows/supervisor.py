"""Run a child process in its own session and own its end: the deadline, the cancel, the kill.

papermill has no whole-run timeout and no stop API, and a signal to papermill never reaches the
kernel: jupyter_client starts every kernel in a session of its own, so killing papermill's
process group leaves the kernel running. The supervisor therefore keeps a list of the child's
descendants while it runs (the kernel and whatever the kernel starts) and, when the deadline
passes or the caller cancels, sends SIGTERM to the process group of each, waits ``grace_s``,
then SIGKILL. Whatever way the child ends, no descendant it knew of is left alive.

The child speaks JSON lines on its standard output (events); its standard error goes to a file
whose tail is kept for the caller (a crash before any event says why there).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("deepspace_lab.workflows.supervisor")

STDERR_TAIL_BYTES = 4000


@dataclass
class Supervised:
    """How a supervised child ended: ``ended`` (it exited; see ``returncode``), ``timed_out`` or
    ``cancelled`` (it was killed, with every descendant)."""

    status: str
    returncode: int | None
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: str = ""


class _Descendants:
    """The processes below ``pid`` seen so far (a kernel outlives its parent's death)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.seen: dict[int, psutil.Process] = {}

    def refresh(self) -> None:
        try:
            for child in self.root.children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    def alive(self) -> list[psutil.Process]:
        return _alive([self.root, *self.seen.values()])


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running (a zombie is dead: only its reaping is left)."""
    found = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (left := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    groups: set[int] = set()
    for proc in procs:
        try:
            groups.add(os.getpgid(proc.pid))
        except ProcessLookupError:
            continue
    own = os.getpgid(0)
    for group in groups - {own}:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:  # a descendant that moved to a group of its own
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def kill_tree(tree: _Descendants, *, grace_s: float) -> list[int]:
    """SIGTERM every live process of ``tree`` (by process group), SIGKILL what is left after
    ``grace_s``; returns the pids still alive after that (none, unless the OS refused)."""
    try:  # stopped, the child cannot start a process between the look below and the signals
        tree.root.suspend()
    except psutil.NoSuchProcess:
        pass
    tree.refresh()
    procs = tree.alive()
    if not procs:
        return []
    _signal_all(procs, signal.SIGTERM)
    _signal_all(procs, signal.SIGCONT)  # a stopped process handles its SIGTERM once continued
    alive = _wait_gone(procs, grace_s)
    if alive:
        _signal_all(alive, signal.SIGKILL)
        alive = _wait_gone(alive, 5)
    return [p.pid for p in alive]


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


async def supervise(argv: list[str], *, env: Mapping[str, str], cwd: str, stderr_path: Path,
                    deadline: Callable[[], float | None], cancelled: Callable[[], bool],
                    on_event: Callable[[dict[str, Any]], Awaitable[None]], grace_s: float = 2.0,
                    poll_s: float = 0.1) -> Supervised:
    """Run ``argv`` in a new session. ``deadline()`` (a ``time.monotonic()`` value or None) and
    ``cancelled()`` are asked every ``poll_s``, so either may change while the child runs."""
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            env=dict(env), cwd=cwd, start_new_session=True)
    tree = _Descendants(proc.pid)
    events: list[dict[str, Any]] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
                await on_event(event)

    reader = asyncio.create_task(read())
    exited = asyncio.create_task(proc.wait())
    status = "ended"
    try:
        while not exited.done():
            await asyncio.wait({exited}, timeout=poll_s)
            if exited.done():
                break
            await asyncio.to_thread(tree.refresh)
            if cancelled():
                status = "cancelled"
            elif (limit := deadline()) is not None and time.monotonic() >= limit:
                status = "timed_out"
            else:
                continue
            left = await asyncio.to_thread(kill_tree, tree, grace_s=grace_s)
            if left:
                log.error("processes %s survived SIGKILL", left)
            break
    finally:
        if not exited.done():  # our caller was cancelled: take the child down with us
            await asyncio.to_thread(kill_tree, tree, grace_s=0)
        await exited
        # the child is gone; anything it started that outlived it (a kernel) goes too
        await asyncio.to_thread(kill_tree, tree, grace_s=grace_s)
        await asyncio.wait({reader}, timeout=5)
        reader.cancel()
    return Supervised(status=status, returncode=proc.returncode, events=events, stderr_tail=_tail(stderr_path))
