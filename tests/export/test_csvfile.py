"""Reading an export file: bad input is refused with its line and column, nothing half-read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.export.csvfile import ExportInvalid, open_export
from bot.export.lines import COLUMNS

GOOD = ["le-1", "2026-11", "org-acme", "prj-1", "usage", "1200", "USD", "ur-1", "app_runtime", "ai-1",
        "ray-worker", "false", "managed", "dedicated", "ray", "gpu.h100", "2026-11-03T04:00:00Z", "3600", "second"]
CREDIT = ["le-2", "2026-11", "org-acme", "prj-1", "refund", "-250", "USD", *[""] * 12]


def body(*lines: list[str], header: tuple[str, ...] | list[str] = COLUMNS) -> bytes:
    return ("\r\n".join(",".join(line) for line in (header, *lines)) + "\r\n").encode()


def read_all(data: bytes | Path, **kw: object) -> list[object]:
    return [line for _, line in open_export(data, "test", **kw).lines()]  # type: ignore[arg-type]


def refused(data: bytes, **kw: object) -> ExportInvalid:
    with pytest.raises(ExportInvalid) as e:
        read_all(data, **kw)
    return e.value


def with_value(column: str, value: str) -> list[str]:
    line = list(GOOD)
    line[COLUMNS.index(column)] = value
    return line


def test_a_good_file_reads_typed_lines() -> None:
    f = open_export(b"\xef\xbb\xbf" + body(GOOD, CREDIT), "test")  # a BOM is fine
    got = [line for _, line in f.lines()]
    assert [g.amount_minor for g in got] == [1200, -250]  # type: ignore[attr-defined]
    assert got[1].usage_source is None  # type: ignore[attr-defined]
    assert f.count == 2 and f.org_id == "org-acme" and f.months == {"2026-11"}


@pytest.mark.parametrize("column, value, words", [
    ("amount_minor", "12.00", "'12.00' is not a whole number of minor units"),
    ("amount_minor", "1_000", "'1_000' is not a whole number of minor units"),
    ("quantity", "3,600", "'3,600' is not a decimal number"),  # quoted below: one field
    ("quantity", "NaN", "'NaN' is not a decimal number"),
    ("period_start", "2026-11-03 04:00", "is not an RFC 3339 UTC time"),
    ("period_start", "2026-11-03T04:00:00", "is not an RFC 3339 UTC time"),  # no offset
    ("control_plane_component", "yes", "'yes' is not true or false"),
    ("billing_month", "2026-13", "'2026-13' is not a month (YYYY-MM)"),
    ("currency", "usd", "'usd' is not an ISO 4217 currency code"),
    ("org_id", "org-other", "a line of org 'org-other' in an export of org-acme"),
    ("ledger_entry_id", "", "a ledger_entry_id of 0 characters"),
])
def test_a_malformed_value_names_its_line_and_column(column: str, value: str, words: str) -> None:
    bad = with_value(column, f'"{value}"' if "," in value else value)
    e = refused(body(GOOD, CREDIT, bad))
    assert (e.line, e.column) == (4, column)
    assert words in str(e) and str(e).startswith(f"usage export line 4, column {column}: ")


def test_a_line_of_another_org_than_the_one_asked_for() -> None:
    e = refused(body(GOOD), expected_org="org-zeta")
    assert (e.line, e.column) == (2, "org_id")


def test_a_missing_required_column() -> None:
    header = [c for c in COLUMNS if c not in ("currency", "unit")]
    line = [v for c, v in zip(COLUMNS, GOOD, strict=True) if c not in ("currency", "unit")]
    e = refused(body(line, header=header))
    assert e.line == 1 and "missing required columns currency, unit" in str(e)


def test_the_wrong_number_of_fields() -> None:
    e = refused(body(GOOD, GOOD[:-2]))
    assert e.line == 3 and "17 fields where the header has 19" in str(e)


def test_not_a_csv_export_at_all() -> None:
    assert "not a usage export" in str(refused(b"%PDF-1.7\n1 0 obj\n"))
    assert "not UTF-8 text" in str(refused(body(GOOD) + b"\xff\xfe\x00garbage"))
    assert "is empty" in str(refused(b""))
    assert "not CSV" in str(refused(body(GOOD) + b'le-9,"unterminated\r\n'.replace(b"\r\n", b"") + b'x"y\r\n'))


def test_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    data = body(*[GOOD] * 50)
    assert "larger than 100 bytes" in str(refused(data, max_bytes=100))
    p = tmp_path / "usage.csv"
    p.write_bytes(data)
    with pytest.raises(ExportInvalid, match="larger than 100 bytes"):
        open_export(p, "file", max_bytes=100)


def test_a_stream_that_cannot_seek_is_spooled_within_the_cap() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            return self.inner.readinto(b)

    assert len(read_all(Pipe(body(GOOD, CREDIT)))) == 2  # type: ignore[arg-type]
    with pytest.raises(ExportInvalid, match="larger than"):
        open_export(Pipe(body(*[GOOD] * 50)), "stdin", max_bytes=200)  # type: ignore[arg-type]


def test_quoted_fields_across_lines_count_physical_lines() -> None:
    odd = with_value("component", '"ray-""head"",\nprimary"')
    f = open_export(body(odd, GOOD, with_value("quantity", "x")), "test")
    with pytest.raises(ExportInvalid) as e:
        list(f.lines())
    assert e.value.line == 5  # header 1, the odd record 2-3, GOOD 4, the bad one 5


def test_an_overlong_id_or_field_is_refused() -> None:
    e = refused(body(with_value("ledger_entry_id", "e" * 129)))
    assert (e.line, e.column) == (2, "ledger_entry_id")
    assert "not CSV" in str(refused(body(with_value("component", "c" * 200_000))))  # csv's own field limit
