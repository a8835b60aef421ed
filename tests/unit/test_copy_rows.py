"""COPY's text format read back into rows, and the month runs an export read asks for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.sources.copy_rows import CopyRows, month_runs


async def test_rows_split_across_chunks_and_escapes_undone() -> None:
    got: list[Any] = []
    rows = CopyRows(got.extend)
    await rows.feed(b"le-1\t(a,b)\nle-2\t(back\\\\slash,tab\\there,new\\nline)\nle-")
    await rows.feed(b"3\t\\N\n")
    rows.close()
    assert got == [["le-1", "(a,b)"], ["le-2", "(back\\slash,tab\there,new\nline)"], ["le-3", None]]
    assert rows.rows == 3


async def test_a_copy_cut_inside_a_row_is_an_error() -> None:
    rows = CopyRows(lambda _: None)
    await rows.feed(b"le-1\t(a")
    with pytest.raises(ValueError, match="inside a row"):
        rows.close()


def test_consecutive_months_are_one_range() -> None:
    def t(y: int, m: int) -> datetime:
        return datetime(y, m, 1, tzinfo=UTC)

    assert month_runs(["2026-11", "2026-12", "2027-01", "2027-03"]) == [(t(2026, 11), t(2027, 2)),
                                                                       (t(2027, 3), t(2027, 4))]
    assert month_runs([]) == []
