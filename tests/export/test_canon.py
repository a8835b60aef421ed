"""The canonical text of an export line: the server's (export_lines.sql) and Python's
(bot.export.canon, and the scan's fast path) are the same characters for equal values,
and differ for different ones."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.export.canon import line_text
from bot.export.csvfile import open_export
from bot.export.lines import COLUMNS, ExportLine
from bot.export.sample import line_fields
from bot.sources.billing import PostgresBillingReader
from tests.export.conftest import ORG, T0, usage


# values record_out quotes, and the spellings of times and quantities that differ from
# what a faithful export writes but are equal
def put(row: tuple[Any, ...], at: int, *values: Any) -> tuple[Any, ...]:
    """The usage row with ``values`` from column ``at`` on (USAGE's column order)."""
    return (*row[:at], *values, *row[at + len(values):])


EDGE_USAGE = [
    usage("ur-e1", "ai (1)", 'back\\slash "q", x', 2),
    put(usage("ur-e2", "ai-e", "tab\there", 3), 13, Decimal("0.5")),
    put(usage("ur-e3", "ai-e", "worker", 4), 15, T0 + timedelta(microseconds=250_000), T0 + timedelta(hours=1)),
    put(usage("ur-e4", "ai-e", "", 5), 9, ""),  # empty strings, not nulls
    put(usage("ur-e5", "ai-é", "wörker ", 6), 13, Decimal("12345678901234.123456")),
]
EDGE_LEDGER = [
    ("le-e1", ORG, "prj-1", "ur-e1", "debit", "usage", 0, "USD", None, "i-e1", None, T0 + timedelta(hours=3)),
    ("le-e2", ORG, "prj 1", "ur-e2", "credit", "usage", 7, "USD", None, "i-e2", None, T0 + timedelta(hours=3)),
    ("le-e3", ORG, "prj-1", "ur-e3", "debit", "usage", 9, "USD", None, "i-e3", None, T0 + timedelta(hours=3)),
    ("le-e4", ORG, "prj-1", "ur-e4", "debit", "usage", 9, "USD", None, "i-e4", None, T0 + timedelta(hours=3)),
    ("le-e5", ORG, "prj-1", "ur-e5", "debit", "usage", 9, "USD", None, "i-e5", None, T0 + timedelta(hours=3)),
    ("le-e6", ORG, "prj-1", "ur-none", "debit", "usage", 9, "USD", None, "i-e6", None, T0 + timedelta(hours=3)),
]


async def add_edges(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "insert into billing.usage_records (usage_record_id, source_event_id, org_id, project_id, usage_source,"
            " allocation_id, app_instance_id, component, control_plane_component, operating_mode,"
            " control_plane_scope, runtime_backend, resource_class, quantity, unit, period_start, period_end,"
            " correlation_id, trace_id) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
            EDGE_USAGE)
        await conn.executemany(
            "insert into billing.ledger_entries (ledger_entry_id, org_id, project_id, usage_record_id, direction,"
            " kind, amount_minor, currency, reverses_entry_id, idempotency_key, correlation_id, posted_at)"
            " values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)", EDGE_LEDGER)
    finally:
        await conn.close()


async def both_sides(billing: PostgresBillingReader) -> tuple[dict[str, str], dict[str, tuple[Any, ...]]]:
    texts: dict[str, str] = {}
    typed: dict[str, tuple[Any, ...]] = {}
    await billing.scan_export_lines(ORG, None, ["2026-11"], lambda rows: texts.update((r[0], r[1]) for r in rows))
    await billing.scan_export_entries(ORG, None, ["2026-11"], lambda rows: typed.update((r[0], tuple(r)) for r in rows))
    return texts, typed


async def test_the_servers_text_is_pythons_for_every_entry(billing: PostgresBillingReader,
                                                           fresh_database: str) -> None:
    await add_edges(fresh_database)
    texts, typed = await both_sides(billing)
    assert set(texts) == set(typed) and len(texts) == 14
    for eid, row in typed.items():
        assert texts[eid] == line_text(row), eid
    assert texts["le-e3"].count("2026-11-03T04:00:00.25Z") == 1
    assert '"back\\\\slash ""q"", x"' in texts["le-e1"]
    assert ',"",' in texts["le-e4"]  # an empty string is not a null


async def test_a_file_reads_to_the_servers_texts(billing: PostgresBillingReader, fresh_database: str) -> None:
    """The faithful export of the edge rows, read back: every line's text is the server's."""
    await add_edges(fresh_database)
    texts, typed = await both_sides(billing)
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for row in typed.values():
        w.writerow(line_fields(ExportLine._make(row)))
    read = dict(open_export(out.getvalue().encode(), "test").texts())
    # an empty string stored is shown empty, read as none: that line differs, and only it
    assert {eid for eid in texts if read[eid] != texts[eid]} == {"le-e4"}


# ------------------------------------------------------------------ the fast path = the slow one

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1,
                max_size=12)
_plain = st.text(st.sampled_from("abz09-_.:/é"), min_size=1, max_size=12)
_opt = st.one_of(st.none(), _plain, _text)


@st.composite
def lines(draw: st.DrawFn) -> ExportLine:
    t = draw(st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)))
    return ExportLine(
        draw(st.one_of(_plain, _text)), "2026-11", ORG, draw(_plain), draw(st.sampled_from(["usage", "refund"])),
        draw(st.integers(-10**15, 10**15)), "USD", draw(_opt), draw(_opt), draw(_opt), draw(_opt),
        draw(st.one_of(st.none(), st.booleans())), draw(_opt), draw(_opt), draw(_opt), draw(_opt),
        draw(st.one_of(st.none(), st.just(t), st.just(t.replace(microsecond=draw(st.integers(0, 999_999)))))),
        draw(st.one_of(st.none(), st.decimals(-10**9, 10**9, places=draw(st.integers(0, 9))))), draw(_opt))


def respelled(field: str, column: str, value: Any) -> str:
    """An equal value spelled otherwise than a faithful export does."""
    if column == "control_plane_component" and field:
        return field.upper()
    if column == "period_start" and field:
        return value.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    if column == "quantity" and field:
        return field + "000" if "." in field else field + ".0"
    return field


@settings(max_examples=150, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=20), st.booleans(), st.randoms())
def test_every_line_reads_to_the_text_of_its_values(batch: list[ExportLine], respell: bool, rnd: Any) -> None:
    order = list(range(len(COLUMNS)))
    if respell:
        rnd.shuffle(order)
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([COLUMNS[i] for i in order] + ["extra"] * respell)
    for line in batch:
        f = line_fields(line)
        if respell:
            f = [respelled(v, c, x) for v, c, x in zip(f, COLUMNS, line, strict=True)]
        w.writerow([f[i] for i in order] + ["x"] * respell)
    got = list(open_export(out.getvalue().encode(), "test").texts())
    assert got == [(line.ledger_entry_id, line_text(_read_back(line))) for line in batch]


def _read_back(line: ExportLine) -> ExportLine:
    """What a file can say of a line: an empty text is none."""
    return ExportLine._make(None if v == "" else v for v in line)


async def test_a_hostile_org_id_is_a_value_not_sql(billing: PostgresBillingReader) -> None:
    """COPY takes no parameters: the values are quoted into the query, which must stay one query."""
    got: list[Any] = []
    org = "org-acme'\n) to stdout; select 1; -- \\"
    call = await billing.scan_export_lines(org, "p'\n--", ["2026-10", "2026-11", "2027-01"], got.extend)
    assert got == [] and call.params["org_id"] == org


def test_the_typed_reads_show_the_same_columns() -> None:
    """export_entries.sql (the scope's entries) and export_entries_by_id.sql (a few of them)
    are two shapes of one select list: it must not drift between them."""
    from bot.sources.billing import QUERIES

    def select_list(name: str) -> str:
        sql = QUERIES[name]
        return sql[sql.index("select "):sql.index("\nfrom ")]

    assert select_list("export_entries") == select_list("export_entries_by_id")
