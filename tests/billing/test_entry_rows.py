"""The hot path builds entries from bare rows: their column order must be the fields' order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from deepspace_lab.billing._types import ENTRY_COLUMNS, LedgerEntry


def test_entry_columns_are_the_entry_fields_in_order() -> None:
    assert tuple(f.name for f in dataclasses.fields(LedgerEntry)) == (*ENTRY_COLUMNS, "replayed")


def test_an_entry_from_a_row_and_from_a_mapping_are_the_same() -> None:
    row = (7, "hold", "r", "org", "wal", "hld", 100, 900, 100, None, None, None, "t", "q", datetime.now(UTC))
    entry = LedgerEntry.from_row(row)
    assert entry == LedgerEntry.from_row(dict(zip(ENTRY_COLUMNS, row, strict=True)))
    assert entry.amount_micros == 100 and entry.created_at == row[-1] and not entry.replayed
    assert LedgerEntry.from_row(row, replayed=True) == dataclasses.replace(entry, replayed=True)
    with pytest.raises(TypeError):
        LedgerEntry.from_row(row[:-1])
