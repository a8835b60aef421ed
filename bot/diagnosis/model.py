"""Typed evidence in, findings out. No I/O here.

Evidence types are frozen dataclasses with slots (cheap: a tenant diagnosis reads
hundreds of thousands of rows). The diagnosis result is a pydantic model whose JSON is
``diagnosis.schema.json`` (schema_version 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# ---------------------------------------------------------------- evidence in

_HOUR = timedelta(hours=1)
_ZERO = timedelta(0)

CheckName = Literal[
    "missing_usage",
    "wrong_source",
    "wrong_anchor",
    "ledger_mismatch",
    "control_plane_drift",
    "duplicate_charge",
    "export_mismatch",
]
# The runbook's six checks on billing rows; ``export_mismatch`` (rule 8) runs only when an
# export was given, as a step of its own.
CHECKS: tuple[CheckName, ...] = (
    "missing_usage",
    "wrong_source",
    "wrong_anchor",
    "ledger_mismatch",
    "control_plane_drift",
    "duplicate_charge",
)
OwningLayer = Literal["metering_emitter", "attribution_mapping", "billing_worker", "ui_export"]
StageState = Literal["ok", "error", "missing", "not_applicable", "unknown"]
SourceState = Literal["ok", "unavailable", "error"]
ExportState = Literal["ok", "unavailable", "error", "not_given"]
Scope = Literal["none", "app_instance", "project", "tenant", "broad"]
StageName = Literal["app_lifecycle", "outbox_publish", "billing_worker", "payment_webhook"]
STAGES: tuple[StageName, ...] = ("app_lifecycle", "outbox_publish", "billing_worker", "payment_webhook")


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window [start, end), both timezone-aware."""

    start: datetime
    end: datetime

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One parsed log line (a JSON object) with its stream labels."""

    ts: datetime
    service: str
    event: str
    line: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """A field of the line as text, or None. Numbers are stringified."""
        v = self.line.get(key)
        if v is None or v == "":
            return None
        return v if isinstance(v, str) else str(v)

    @property
    def correlation_id(self) -> str | None:
        return self.get("correlation_id")

    @property
    def trace_id(self) -> str | None:
        t = self.get("trace_id")
        return t.lower() if t else None

    @property
    def app_instance_id(self) -> str | None:
        return self.get("app_instance_id")

    @property
    def org_id(self) -> str | None:
        return self.get("org_id")

    @property
    def project_id(self) -> str | None:
        return self.get("project_id")


@dataclass(frozen=True, slots=True)
class Span:
    """One span, ids normalised to lowercase hex (trace 32, span 16)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    status: Literal["unset", "ok", "error"]
    start: datetime
    end: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppInstance:
    app_instance_id: str
    org_id: str
    project_id: str
    app_kind: str
    operating_mode: str
    control_plane_scope: str
    runtime_backend: str
    allocation_id: str | None
    status: str
    started_at: datetime | None
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class Component:
    app_instance_id: str
    component: str
    control_plane: bool
    resource_class: str


@dataclass(frozen=True, slots=True)
class BillingAccount:
    org_id: str
    currency: str


@dataclass(frozen=True, slots=True)
class RateCard:
    rate_card_id: str
    resource_class: str
    usage_source: str
    control_plane: bool
    control_plane_scope: str | None
    unit: str
    unit_price_micros: int
    currency: str
    effective_from: datetime
    effective_to: datetime | None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    usage_record_id: str
    source_event_id: str
    org_id: str
    project_id: str
    usage_source: str
    allocation_id: str | None
    app_instance_id: str | None
    component: str | None
    control_plane_component: bool
    operating_mode: str | None
    control_plane_scope: str | None
    runtime_backend: str | None
    resource_class: str
    quantity: Decimal
    unit: str
    period_start: datetime
    period_end: datetime
    correlation_id: str | None
    trace_id: str | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    ledger_entry_id: str
    org_id: str
    project_id: str
    usage_record_id: str | None
    direction: str
    kind: str
    amount_minor: int
    currency: str
    reverses_entry_id: str | None
    idempotency_key: str
    correlation_id: str | None
    description: str | None
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class HourRun:
    """Every hour start from ``first`` to ``last``, both included (UTC hour starts): what a
    component's usage rows cover when no hour in between is missing. The usual coverage of
    a screened instance, sent as two timestamps instead of one per hour."""

    first: datetime
    last: datetime

    def __contains__(self, h: object) -> bool:
        return (isinstance(h, datetime) and self.first <= h <= self.last
                and (h - self.first) % _HOUR == _ZERO)

    def covers(self, first: datetime, last: datetime) -> bool:
        """Whether every hour start from ``first`` to ``last`` (aligned as ``first``) is in."""
        return first in self and self.first <= last <= self.last


# which hours of a component have a usage row: a run, or exactly these hours
Hours = HourRun | frozenset[datetime]


# ---------------------------------------------------------------- findings out


class Subject(BaseModel):
    model_config = ConfigDict(frozen=True)
    correlation_id: str | None = None
    app_instance_id: str | None = None
    # alert triage without either id diagnoses an org (and project) scope
    org_id: str | None = None
    project_id: str | None = None

    def label(self) -> str:
        if self.correlation_id:
            return f"correlation_id {self.correlation_id}"
        if self.app_instance_id:
            return f"app_instance_id {self.app_instance_id}"
        if self.org_id:
            return f"org {self.org_id}" + (f" project {self.project_id}" if self.project_id else "")
        return "(no subject)"


class WindowOut(BaseModel):
    start: datetime
    end: datetime


class Identifiers(BaseModel):
    org_ids: list[str] = Field(default_factory=list)
    project_ids: list[str] = Field(default_factory=list)
    app_instance_ids: list[str] = Field(default_factory=list)


class Stages(BaseModel):
    app_lifecycle: StageState = "unknown"
    outbox_publish: StageState = "unknown"
    billing_worker: StageState = "unknown"
    payment_webhook: StageState = "unknown"


class Finding(BaseModel):
    check: CheckName
    app_instance_id: str | None
    org_id: str | None
    project_id: str | None
    owning_layer: OwningLayer
    usage_record_ids: list[str] = Field(default_factory=list)
    ledger_entry_ids: list[str] = Field(default_factory=list)
    summary: str
    impact_minor: int = 0
    currency: str | None = None
    # Beyond the schema's required fields: when the drift happened, and why this layer.
    period_starts: list[datetime] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)


class ImpactRow(BaseModel):
    org_id: str
    project_id: str
    app_instance_id: str | None
    currency: str
    overcharged_minor: int = 0
    undercharged_minor: int = 0


class Sources(BaseModel):
    loki: SourceState = "ok"
    tempo: SourceState = "ok"
    billing: SourceState = "ok"
    export: ExportState = "not_given"


class ExportRead(BaseModel):
    """The usage export that was read: where from, which months, how many lines, its digest."""

    origin: str
    org_id: str
    project_id: str | None = None
    months: list[str] = Field(default_factory=list)
    lines: int = 0
    sha256: str


class FollowUp(BaseModel):
    """What the layer that owns the drift must fix, with the evidence for it."""

    owning_layer: OwningLayer
    fix: str
    checks: list[CheckName]
    app_instance_ids: list[str] = Field(default_factory=list)
    usage_record_ids: list[str] = Field(default_factory=list)
    ledger_entry_ids: list[str] = Field(default_factory=list)
    findings: int = 0
    impact: dict[str, int] = Field(default_factory=dict)  # currency -> net minor units


class Correction(BaseModel):
    """One ledger entry the approved correction procedure would post. Proposed, never
    applied: recon does not write to the billing database."""

    action: Literal["reverse_debit", "post_debit"]
    org_id: str
    project_id: str
    usage_record_id: str | None = None
    reverses_entry_id: str | None = None
    amount_minor: int
    currency: str
    correlation_id: str | None = None
    reason: str
    check: CheckName


class Diagnosis(BaseModel):
    """The diagnosis document (diagnosis.schema.json, schema_version 2).

    Documents stored by an earlier version (schema_version 1) are read as version 2: they
    had no export (``sources.export`` "not_given", ``export`` null).
    """

    schema_version: Literal[2] = 2
    subject: Subject
    window: WindowOut
    trace_ids: list[str] = Field(default_factory=list)
    identifiers: Identifiers = Field(default_factory=Identifiers)
    scope: Scope = "none"
    freeze_recommended: bool = False
    stages: Stages = Field(default_factory=Stages)
    findings: list[Finding] = Field(default_factory=list)
    impact: list[ImpactRow] = Field(default_factory=list)
    sources: Sources = Field(default_factory=Sources)
    complete: bool = True
    # Additions (allowed by the schema): what was searched, and notes for a person.
    searched: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    follow_ups: list[FollowUp] = Field(default_factory=list)
    corrections: list[Correction] = Field(default_factory=list)
    export: ExportRead | None = None

    @model_validator(mode="before")
    @classmethod
    def _upgrade_v1(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("schema_version") == 1:
            data = {**data, "schema_version": 2}
        return data

    def failed_checks(self) -> list[str]:
        seen: list[str] = []
        for f in self.findings:
            if f.check not in seen:
                seen.append(f.check)
        return seen
