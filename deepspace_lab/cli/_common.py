"""What every command module shares: the audit actor, output, and a session to work in."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from ..config import Settings
from ..db import make_async_engine, make_sessionmaker

T = TypeVar("T")


def actor() -> str:
    """The audit actor of CLI actions: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli:unknown"


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON under ``--json``, else ``text``."""
    print(json.dumps(payload, indent=2, default=str) if getattr(args, "json", False) else text)


def in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one session (one unit of work: ``work`` commits) and dispose the engine."""

    async def run() -> T:
        engine = make_async_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def add_paging(parser: argparse.ArgumentParser) -> None:
    """``--limit`` and ``--cursor`` of a keyset-paged list (and ``--json``)."""
    parser.add_argument("--limit", help="page size (1-200, default 50)")
    parser.add_argument("--cursor", help="the next page (`next_cursor` of the last answer)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def page_text(lines: list[str], page: dict[str, Any], *, empty: str) -> str:
    """A page's lines, then how to get the next one."""
    more = [f"(more: --cursor {page['next_cursor']})"] if page.get("next_cursor") else []
    return "\n".join(lines + more) or empty
