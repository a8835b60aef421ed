"""From evidence to the diagnosis document: identifiers, trace stages, scope, freeze,
impact. Pure: the flow gathers evidence, this module decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bot.diagnosis import platform_map as pm
from bot.diagnosis.model import (
    STAGES,
    Finding,
    Identifiers,
    ImpactRow,
    LedgerEntry,
    LogEvent,
    Scope,
    Span,
    Stages,
    StageState,
    UsageRecord,
)


@dataclass(frozen=True, slots=True)
class Named:
    """What some evidence names: orgs, projects, app instances, trace ids. Evidence read
    once is scanned once (``named``); what several sources name together is the union
    (``|``)."""

    orgs: frozenset[str] = frozenset()
    projects: frozenset[str] = frozenset()
    instances: frozenset[str] = frozenset()
    traces: frozenset[str] = frozenset()

    def __or__(self, other: Named) -> Named:
        return Named(self.orgs | other.orgs, self.projects | other.projects, self.instances | other.instances,
                     self.traces | other.traces)

    def identifiers(self) -> tuple[Identifiers, list[str]]:
        return (
            Identifiers(org_ids=sorted(self.orgs), project_ids=sorted(self.projects),
                        app_instance_ids=sorted(self.instances)),
            sorted(self.traces),
        )


def named(
    logs: Iterable[LogEvent] = (),
    usage: Iterable[UsageRecord] = (),
    ledger: Iterable[LedgerEntry] = (),
    spans: Iterable[Span] = (),
    extra_instances: Iterable[str] = (),
) -> Named:
    """Every org, project, app instance and trace id the evidence names."""
    orgs: set[str] = set()
    projects: set[str] = set()
    instances: set[str] = set(extra_instances)
    traces: set[str] = set()
    for e in logs:
        if e.org_id:
            orgs.add(e.org_id)
        if e.project_id:
            projects.add(e.project_id)
        if e.app_instance_id:
            instances.add(e.app_instance_id)
        t = e.trace_id
        if t and (t in traces or _is_trace_id(t)):  # most lines repeat a trace id already checked
            traces.add(t)
    for u in usage:
        orgs.add(u.org_id)
        projects.add(u.project_id)
        if u.app_instance_id:
            instances.add(u.app_instance_id)
        t = u.trace_id.lower() if u.trace_id else None
        if t and (t in traces or _is_trace_id(t)):
            traces.add(t)
    for le in ledger:
        orgs.add(le.org_id)
        projects.add(le.project_id)
    for s in spans:
        traces.add(s.trace_id)
        for key, bucket in (("app_instance_id", instances), ("org_id", orgs), ("project_id", projects)):
            v = s.attributes.get(key)
            if isinstance(v, str) and v:
                bucket.add(v)
    return Named(frozenset(orgs), frozenset(projects), frozenset(instances), frozenset(traces))


def identifiers(
    logs: Iterable[LogEvent],
    usage: Iterable[UsageRecord],
    ledger: Iterable[LedgerEntry],
    spans: Iterable[Span],
    extra_instances: Iterable[str] = (),
) -> tuple[Identifiers, list[str]]:
    """Every org, project and app instance the evidence names, and every trace id, sorted."""
    return named(logs, usage, ledger, spans, extra_instances).identifiers()


_HEX = frozenset("0123456789abcdef")


def _is_trace_id(t: str) -> bool:
    return len(t) == 32 and _HEX.issuperset(t)


def stages(spans: list[Span] | None, correlation_logs: Iterable[LogEvent]) -> Stages:
    """The four trace stages. ``spans is None`` means traces could not be read."""
    webhook_logged = any(e.service == pm.SVC_WEBHOOK for e in correlation_logs)
    out: dict[str, StageState] = {}
    for stage in STAGES:
        service, pattern = pm.STAGE_SPANS[stage]
        if spans is None:
            state: StageState = "unknown"
        else:
            hits = [s for s in spans if pattern.fullmatch(s.name) and (not s.service or s.service == service)]
            if any(s.status == "error" for s in hits):
                state = "error"
            elif hits:
                state = "ok"
            else:
                state = "missing"
        if stage == "payment_webhook" and state in ("missing", "unknown") and not webhook_logged:
            # No span and no log of the webhook worker shares the correlation id.
            state = "not_applicable" if spans is not None else "unknown"
        out[stage] = state
    return Stages.model_validate(out)


def scope_of(findings: Iterable[Finding]) -> Scope:
    units = {(f.org_id, f.project_id, f.app_instance_id) for f in findings}
    if not units:
        return "none"
    if len(units) == 1:
        return "app_instance"
    orgs = {u[0] for u in units}
    if len(orgs) > 1:
        return "broad"
    projects = {u[1] for u in units}
    return "tenant" if len(projects) > 1 else "project"


def freeze_recommended(findings: Iterable[Finding]) -> bool:
    """More than one app instance has findings (the runbook's freeze rule)."""
    return len({f.app_instance_id for f in findings if f.app_instance_id}) > 1


def impact_of(findings: Iterable[Finding]) -> list[ImpactRow]:
    """Customer-visible impact per (org, project, app instance, currency)."""
    acc: dict[tuple[str, str, str | None, str], list[int]] = defaultdict(lambda: [0, 0])
    for f in findings:
        if not f.org_id or not f.project_id:
            continue
        key = (f.org_id, f.project_id, f.app_instance_id, f.currency or "")
        row = acc[key]
        if f.impact_minor > 0:
            row[0] += f.impact_minor
        elif f.impact_minor < 0:
            row[1] += -f.impact_minor
    return [
        ImpactRow(org_id=o, project_id=p, app_instance_id=a, currency=c or "unknown",
                  overcharged_minor=v[0], undercharged_minor=v[1])
        for (o, p, a, c), v in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "", kv[0][3]))
    ]
