"""One line of the usage export, in the canonical form both sides are compared in.

A line of the file and a ledger entry (with the usage row it charges for) become the
same ``ExportLine`` when the export shows the entry faithfully: text as text, empty as
``None``, ``amount_minor`` signed (a debit positive, a credit negative), the boolean as
``bool``, ``period_start`` an aware ``datetime``, ``quantity`` a ``Decimal`` (so
``3600`` and ``3600.000000`` are equal, and so are their hashes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

#: The columns of platform.md's export, in the order of ``ExportLine``'s fields.
COLUMNS: tuple[str, ...] = (
    "ledger_entry_id",
    "billing_month",
    "org_id",
    "project_id",
    "line_kind",
    "amount_minor",
    "currency",
    "usage_record_id",
    "usage_source",
    "app_instance_id",
    "component",
    "control_plane_component",
    "operating_mode",
    "control_plane_scope",
    "runtime_backend",
    "resource_class",
    "period_start",
    "quantity",
    "unit",
)
#: The usage row's columns: on a usage line its values as stored, empty on other lines.
USAGE_COLUMNS: tuple[str, ...] = COLUMNS[8:]


class ExportLine(NamedTuple):
    ledger_entry_id: str
    billing_month: str
    org_id: str
    project_id: str
    line_kind: str
    amount_minor: int
    currency: str
    usage_record_id: str | None
    usage_source: str | None
    app_instance_id: str | None
    component: str | None
    control_plane_component: bool | None
    operating_mode: str | None
    control_plane_scope: str | None
    runtime_backend: str | None
    resource_class: str | None
    period_start: datetime | None
    quantity: Decimal | None
    unit: str | None


def expected_line(row: Sequence[Any]) -> ExportLine:
    """The line a faithful export shows for one row of ``export_entries.sql``.

    The row is the entry (id, month, org, project, kind, signed amount, currency, its
    usage_record_id) followed by its usage row's columns; the query already leaves the
    usage_record_id and the usage columns empty on lines other than usage debits (and
    the columns empty when the row does not exist), so the row is the line as it is.
    """
    return ExportLine._make(row)


def differences(shown: ExportLine, stored: ExportLine) -> list[tuple[str, object, object]]:
    """(column, shown, stored) for every column where the two differ."""
    return [(c, a, b) for c, a, b in zip(COLUMNS, shown, stored, strict=True) if a != b]


def show(value: object, limit: int = 64) -> str:
    """A value as the export would print it, for people (cut to ``limit`` characters)."""
    text = _show(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _show(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")  # never an exponent: 0.0000005, not 5E-7
    return str(value)
