"""Rule 8 against a real billing database: the faithful cases stay silent, each break is
one export_mismatch finding per app instance naming the lines' ids and what differs."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import random

import pytest

from bot.export.csvfile import ExportInvalid, open_export
from bot.export.run import ExportOutcome, reconcile_export
from bot.sources.billing import PostgresBillingReader
from tests.export.conftest import ODD, ORG, faithful_csv


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def csv_of(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def edit(text: str, ledger_entry_id: str, **values: str) -> bytes:
    rows = rows_of(text)
    head = rows[0]
    for r in rows[1:]:
        if r[head.index("ledger_entry_id")] == ledger_entry_id:
            for k, v in values.items():
                r[head.index(k)] = v
    return csv_of(rows)


async def check(billing: PostgresBillingReader, data: bytes, **kw: object) -> ExportOutcome:
    return await reconcile_export(open_export(data, "test"), billing, **kw)  # type: ignore[arg-type]


async def test_a_faithful_export_is_silent_and_recorded(billing: PostgresBillingReader) -> None:
    text = await faithful_csv(billing)
    assert '"ray-""head"",\nprimary"' in text  # quoted as RFC 4180 says
    assert any(ODD in r for r in rows_of(text))
    got = await check(billing, text.encode())
    assert got.faithful, got.findings
    assert got.findings == []
    assert got.read.org_id == ORG and got.read.months == ["2026-11"]
    assert got.read.lines == 8  # le-1..le-8: le-0 is October's, le-9 another org's
    assert got.entries == 8
    assert got.read.sha256 == hashlib.sha256(text.encode()).hexdigest()


async def test_columns_in_any_order_and_unknown_columns_are_faithful(billing: PostgresBillingReader) -> None:
    rows = rows_of(await faithful_csv(billing))
    order = list(range(len(rows[0])))
    random.Random(7).shuffle(order)
    shuffled = [[r[i] for i in order] + [f"x{n}"] for n, r in enumerate(rows)]
    shuffled[0][-1] = "invoice_note"
    body = rows[1:]
    random.Random(8).shuffle(body)  # lines in any order too
    got = await check(billing, csv_of([shuffled[0], *[[r[i] for i in order] + ["z"] for r in body]]))
    assert got.faithful, got.findings


async def test_a_wrong_row_shown_as_stored_is_not_the_exports_finding(billing: PostgresBillingReader) -> None:
    text = await faithful_csv(billing)
    assert any(r[8:10] == ["allocation", "ai-3"] for r in
               ([r[c] for c in range(len(r))] for r in rows_of(text)[1:]))
    got = await check(billing, text.encode())
    assert got.findings == []


async def test_app_runtime_lines_shown_as_allocation(billing: PostgresBillingReader) -> None:
    text = await faithful_csv(billing)
    data = edit(edit(text, "le-1", usage_source="allocation").decode(), "le-2", usage_source="allocation")
    got = await check(billing, data)
    [f] = got.findings
    assert f.check == "export_mismatch" and f.owning_layer == "ui_export" and f.impact_minor == 0
    assert f.app_instance_id == "ai-1" and f.org_id == ORG and f.project_id == "prj-1"
    assert f.summary == "2 usage lines of ai-1 shown as allocation, stored as app_runtime"
    assert sorted(f.ledger_entry_ids) == ["le-1", "le-2"]
    assert sorted(f.usage_record_ids) == ["ur-1", "ur-2"]
    assert any("usage_source allocation (stored app_runtime)" in e for e in f.evidence)


async def test_an_amount_other_than_the_entrys(billing: PostgresBillingReader) -> None:
    got = await check(billing, edit(await faithful_csv(billing), "le-6", amount_minor="1200"))
    [f] = got.findings
    assert f.app_instance_id is None  # a reversal line shows no usage row
    assert f.summary == "1 line show amount_minor 1200 where the ledger entry has -1200"
    assert f.ledger_entry_ids == ["le-6"]


async def test_an_entry_on_no_line_and_a_line_of_no_entry(billing: PostgresBillingReader) -> None:
    rows = rows_of(await faithful_csv(billing))
    head = rows[0]
    kept = [r for r in rows[1:] if r[head.index("ledger_entry_id")] != "le-4"]
    ghost = list(kept[0])
    ghost[head.index("ledger_entry_id")] = "le-ghost"
    got = await check(billing, csv_of([head, *kept, ghost]))
    by_instance = {f.app_instance_id: f for f in got.findings}
    assert got.counts["missing"] == 1 and got.counts["unknown"] == 1
    assert "1 ledger entry of ai-2 posted in 2026-11 on no line of the export (le-4)" in by_instance["ai-2"].summary
    assert by_instance["ai-2"].usage_record_ids == ["ur-4"]
    ghost_aid = ghost[head.index("app_instance_id")] or None
    assert f"naming no ledger entry of {ORG} posted in 2026-11 (le-ghost)" in by_instance[ghost_aid].summary


async def test_an_entry_on_two_lines(billing: PostgresBillingReader) -> None:
    rows = rows_of(await faithful_csv(billing))
    head = rows[0]
    twice = next(r for r in rows[1:] if r[head.index("ledger_entry_id")] == "le-7")
    got = await check(billing, csv_of([*rows, twice]))
    [f] = got.findings
    assert f.summary == "1 ledger entry on more than one line (le-7)"
    assert any("le-7 is on 2 lines" in e for e in f.evidence)


async def test_a_line_in_the_wrong_month_and_an_entry_of_another_project(billing: PostgresBillingReader) -> None:
    # le-0 (an October adjustment) listed under November: not an entry of November
    rows = rows_of(await faithful_csv(billing, ("2026-10",)))
    head = rows[0]
    rows[1][head.index("billing_month")] = "2026-11"
    got = await check(billing, csv_of(rows), months=["2026-10"])
    assert got.counts["differs"] == 1
    assert "show billing_month 2026-11 where the ledger entry has 2026-10" in got.findings[0].summary


async def test_a_project_scoped_export_covers_that_project_only(billing: PostgresBillingReader) -> None:
    text = await faithful_csv(billing, project="prj-2")
    got = await check(billing, text.encode(), project_id="prj-2")
    assert got.faithful and got.read.lines == 2 and got.read.project_id == "prj-2"
    # read as the whole org's export, prj-1's entries are missing from it
    whole = await check(billing, text.encode())
    assert whole.counts["missing"] == 6


@pytest.mark.parametrize("column, value, shown", [
    ("quantity", "3600", None),  # the same number written otherwise: faithful
    ("period_start", "2026-11-03T04:00:00+00:00", None),  # the same instant: faithful
    ("quantity", "1800", "show quantity 1800 where the usage row has 3600.000000"),
    ("control_plane_component", "true", "show control_plane_component true where the usage row has false"),
])
async def test_usage_columns_compare_by_value(billing: PostgresBillingReader, column: str, value: str,
                                              shown: str | None) -> None:
    got = await check(billing, edit(await faithful_csv(billing), "le-1", **{column: value}))
    if shown is None:
        assert got.faithful, got.findings
    else:
        assert shown in got.findings[0].summary


async def test_the_scope_read_early_is_made_good_by_the_whole_file(billing: PostgresBillingReader) -> None:
    """The ledger is read while the file is, for the scope its first line tells; a later
    line of another month or project changes the scope, and the answer is the same as if
    the file had been read first."""
    october = rows_of(await faithful_csv(billing, ("2026-10",)))
    november = rows_of(await faithful_csv(billing))
    both = await check(billing, csv_of([*october, *november[1:]]))  # first line: October's
    assert both.faithful and both.read.months == ["2026-10", "2026-11"] and both.entries == 9
    assert both.call is not None and both.call.params["months"] == ["2026-10", "2026-11"]
    head = november[0]
    prj2_first = sorted(november[1:], key=lambda r: r[head.index("project_id")] != "prj-2")
    org_wide = await check(billing, csv_of([head, *prj2_first]), narrow_to="prj-2")  # prj-2's first, then prj-1's
    assert org_wide.faithful and org_wide.read.project_id is None and org_wide.entries == 8
    only = [r for r in prj2_first if r[head.index("project_id")] == "prj-2"]
    narrowed = await check(billing, csv_of([head, *only]), narrow_to="prj-2")
    assert narrowed.faithful and narrowed.read.project_id == "prj-2" and narrowed.entries == 2


async def test_a_bad_line_after_the_ledger_read_began_stops_both(billing: PostgresBillingReader,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    rows = rows_of(await faithful_csv(billing))
    rows[-1][rows[0].index("amount_minor")] = "12.5"
    before = {t for t in asyncio.all_tasks() if not t.done()}
    with pytest.raises(ExportInvalid, match="amount_minor"):
        await check(billing, csv_of(rows))
    assert {t for t in asyncio.all_tasks() if not t.done()} - before == {asyncio.current_task()} - before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no reset of a busy connection
    again = await check(billing, (await faithful_csv(billing)).encode())  # the pool still serves
    assert again.faithful
