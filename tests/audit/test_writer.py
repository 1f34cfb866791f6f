"""The batched audit writer: a clean stop writes every row, even one caught mid-INSERT."""

from __future__ import annotations

import asyncio
from typing import Any

from deepspace_lab.audit.writer import AuditWriter


class SlowWriter(AuditWriter):
    """An INSERT that stays in flight until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__(None, flush_interval_ms=1)  # type: ignore[arg-type]
        self.started = asyncio.Event()
        self.proceed = asyncio.Event()
        self.written: list[dict[str, Any]] = []

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        self.started.set()
        await self.proceed.wait()
        self.written.extend(rows)


def test_a_clean_stop_during_an_insert_loses_no_row() -> None:
    asyncio.run(_clean_stop_during_an_insert())


async def _clean_stop_during_an_insert() -> None:
    writer = SlowWriter()
    writer.start()
    await writer.write(trace_id="a", kind="gateway.request")
    await writer.write(trace_id="b", kind="gateway.request")
    await writer.started.wait()  # the background flush is now inside its INSERT
    await writer.write(trace_id="c", kind="gateway.request")
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0)
    assert not closing.done()  # close waits for the INSERT in flight rather than cancelling it
    writer.proceed.set()
    await closing
    assert sorted(row["trace_id"] for row in writer.written) == ["a", "b", "c"]


def test_rows_of_a_cancelled_insert_go_back_to_the_buffer() -> None:
    asyncio.run(_cancelled_insert())


async def _cancelled_insert() -> None:
    writer = SlowWriter()
    await writer.write(trace_id="a", kind="gateway.request")
    flushing = asyncio.create_task(writer.flush())
    await writer.started.wait()
    flushing.cancel()
    await asyncio.gather(flushing, return_exceptions=True)
    writer.proceed.set()
    await writer.close()
    assert [row["trace_id"] for row in writer.written] == ["a"]
