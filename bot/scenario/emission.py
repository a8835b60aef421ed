"""Emission: the log lines, spans, usage rows and ledger entries of every lifecycle call and
hourly row, as the services would have written them (docs/scenario.md, "Correct data")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.diagnosis.model import LedgerEntry, LogEvent, Span, UsageRecord
from bot.scenario.draft import Call, Draft, Inst, Row, rfc3339
from bot.scenario.prices import price_recorded
from bot.scenario.spec import EXPONENTS, HOUR

SVC_API = "gpuaas-api"
SVC_RUNTIME = "gpuaas-app-runtime-worker"
SVC_BILLING = "gpuaas-billing-worker"
SVC_WEBHOOK = "gpuaas-webhook-worker"
SERVICES: tuple[str, ...] = (SVC_API, SVC_RUNTIME, SVC_BILLING, SVC_WEBHOOK)
MS = timedelta(milliseconds=1)


def log(
    draft: Draft,
    ts: datetime,
    service: str,
    event: str,
    msg: str,
    call: Call,
    span_id: str,
    *,
    level: str = "info",
    org_id: str | None = None,
    project_id: str | None = None,
    app_instance_id: str | None = None,
    fields: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """One JSON log line of ``service`` in ``call``'s correlation id and trace."""
    line: dict[str, Any] = {
        "ts": rfc3339(ts),
        "level": level,
        "msg": msg,
        "event": event,
        "correlation_id": call.correlation_id,
        "trace_id": call.trace_id,
        "span_id": span_id,
        "org_id": org_id or call.org_id,
        "project_id": project_id or call.project_id,
    }
    if app_instance_id:
        line["app_instance_id"] = app_instance_id
    line.update({k: v for k, v in {**extra, **(fields or {})}.items() if v is not None})
    labels = {"service": service, "env": "prod", "level": level}
    draft.logs.append(LogEvent(ts=ts, service=service, event=event, line=line, labels=labels))


def span(
    draft: Draft,
    call: Call,
    span_id: str,
    parent: str | None,
    service: str,
    name: str,
    start: datetime,
    end: datetime,
    *,
    error: bool = False,
    extra: dict[str, Any] | None = None,
    **attrs: Any,
) -> None:
    """One span of ``call``'s trace."""
    a: dict[str, Any] = {"correlation_id": call.correlation_id}
    a.update({k: v for k, v in {**attrs, **(extra or {})}.items() if v is not None})
    draft.spans.append(
        Span(
            trace_id=call.trace_id,
            span_id=span_id,
            parent_span_id=parent,
            service=service,
            name=name,
            status="error" if error else "unset",
            start=start,
            end=end,
            attributes=a,
        )
    )


def emit_calls(draft: Draft) -> None:
    """The lifecycle calls: every start call, then a stop call per stopped instance."""
    for call in draft.calls:
        _emit_start(draft, call)
    for inst in draft.insts:
        if inst.stopped_at is not None:
            _emit_stop(draft, inst, inst.stopped_at)


def _emit_start(draft: Draft, call: Call) -> None:
    """The start call's root span and log lines, and its payment webhook when funded."""
    t0 = call.requested_at
    single = call.members[0].app_instance_id if len(call.members) == 1 else None
    ids = [i.app_instance_id for i in call.members]
    span(
        draft, call, call.root_span_id, None, SVC_API, "POST /v1/app-instances/{id}/start",
        t0, t0 + 140 * MS + draft.jitter(0, 0.2),
        app_instance_id=single, org_id=call.org_id, project_id=call.project_id,
        extra={"http.request.method": "POST", "http.route": "/v1/app-instances/{id}/start",
               "http.response.status_code": 202},
    )
    log(
        draft, t0, SVC_API, "app.lifecycle.requested",
        f"start requested for {len(ids)} app instance(s)", call, call.root_span_id,
        app_instance_id=single, action="start", app_instance_ids=ids,
    )
    for inst in call.members:
        log(
            draft, inst.started_at, SVC_RUNTIME, "app.lifecycle.started",
            f"app instance {inst.app_instance_id} started", call, draft.span_id(),
            app_instance_id=inst.app_instance_id,
            components=[c.component for c in inst.components],
            operating_mode=inst.mode, runtime_backend=inst.spec.runtime_backend,
            control_plane_scope=inst.spec.control_plane_scope,
            allocation_id=inst.allocation_id,
        )
    if call.funded:
        sid = draft.span_id()
        ts = t0 + draft.jitter(2, 9)
        payment = f"pay-{draft.hex(64)[:12]}"
        span(
            draft, call, sid, call.root_span_id, SVC_WEBHOOK, "payment.webhook",
            ts, ts + 80 * MS + draft.jitter(0, 0.3),
            app_instance_id=single, payment_id=payment,
        )
        log(
            draft, ts + 50 * MS, SVC_WEBHOOK, "payment.webhook_delivered",
            "payment webhook delivered", call, sid, app_instance_id=single,
            payment_id=payment,
        )


def _emit_stop(draft: Draft, inst: Inst, stopped_at: datetime) -> None:
    """A stopped instance's stop call: its own correlation id and trace."""
    stop = Call(None, inst.org_id, inst.org_name, inst.project_id, [inst], False)
    stop.correlation_id = f"corr-{inst.org_name}-{draft.hex(32)[:12]}"
    stop.trace_id = draft.hex(128)
    stop.root_span_id = draft.span_id()
    stop.requested_at = stopped_at - draft.jitter(5, 25)
    aid = inst.app_instance_id
    span(
        draft, stop, stop.root_span_id, None, SVC_API, "POST /v1/app-instances/{id}/stop",
        stop.requested_at, stop.requested_at + 90 * MS,
        app_instance_id=aid, org_id=inst.org_id, project_id=inst.project_id,
        extra={"http.request.method": "POST", "http.route": "/v1/app-instances/{id}/stop",
               "http.response.status_code": 202},
    )
    log(
        draft, stop.requested_at, SVC_API, "app.lifecycle.requested",
        f"stop requested for {aid}", stop, stop.root_span_id,
        app_instance_id=aid, action="stop",
    )
    log(
        draft, stopped_at, SVC_RUNTIME, "app.lifecycle.stopped",
        f"app instance {aid} stopped", stop, draft.span_id(), app_instance_id=aid,
        components=[c.component for c in inst.components],
    )
    draft.stop_calls.append(stop)


def emit_rows(draft: Draft) -> None:
    """Every row's trail, usage row and debit in emission order, then the credits."""
    for r in sorted(draft.rows, key=lambda r: (r.emitted_at, r.inst.app_instance_id, r.comp.component)):
        emit_row(draft, r)
    # credits come later than every debit: reversals, refunds, promos
    for r in sorted(draft.rows, key=lambda r: (r.emitted_at, r.inst.app_instance_id, r.comp.component)):
        emit_credits(draft, r)


@dataclass(frozen=True, slots=True)
class _Trail:
    """When a row's event was published, recorded and posted, and the publish span."""

    pub_span: str
    published: datetime
    recorded: datetime
    posted: datetime


def emit_row(draft: Draft, r: Row) -> None:
    """One row's trail: emitted and published (runtime worker), then rejected, or recorded
    and debited (billing worker); an orphan debit's redelivery after it."""
    if r.fate == "missing_emitter":
        return
    call = _call_of(r)
    t = _emit_published(draft, r, call)
    handle = draft.span_id()
    h_start = t.recorded - draft.jitter(0.01, 0.2)
    if r.fate == "missing_rejected":
        _emit_rejected(draft, r, call, t, handle, h_start)
        return
    _record_usage(draft, r, call, t.recorded, handle)
    expected = price_recorded(draft, r)
    r.amount = expected
    post_end = t.posted + draft.jitter(0.002, 0.02)
    if r.debit != "none":
        amount = expected + r.wrong_delta if r.debit == "wrong" else expected
        if amount < 0:
            amount = expected + abs(r.wrong_delta)
            r.wrong_delta = abs(r.wrong_delta)
        r.debit_id = post_debit(draft, r, r.usage_record_id, amount, t.posted, handle, post_end)
    span(
        draft, call, handle, t.pub_span, SVC_BILLING, "billing.handle_usage", h_start,
        post_end + draft.jitter(0.001, 0.01), app_instance_id=r.inst.app_instance_id,
        source_event_id=r.source_event_id, usage_record_id=r.usage_record_id,
        component=r.comp.component,
    )
    if r.orphan:
        _emit_redelivery(draft, r, call, t, expected)


def _call_of(r: Row) -> Call:
    call = r.inst.call
    assert call is not None
    return call


def _emit_published(draft: Draft, r: Row, call: Call) -> _Trail:
    """``metering.emitted`` and ``outbox.published`` lines and the ``outbox.publish`` span."""
    inst = r.inst
    aid = inst.app_instance_id
    r.source_event_id = draft.next_src()
    pub_span = draft.span_id()
    published = r.emitted_at + draft.jitter(0.2, 3)
    recorded = published + draft.jitter(1, 25)
    posted = recorded + draft.jitter(0.05, 0.8)
    common = {
        "component": r.comp.component,
        "period_start": rfc3339(r.period_start),
        "period_end": rfc3339(r.period_start + HOUR),
        "quantity": float(r.quantity),
        "usage_source": r.usage_source,
        "control_plane_component": r.control_plane,
        "resource_class": r.comp.resource_class,
    }
    # the emitter reports the instance's own anchors and source; attribution errors
    # happen after it (mapping), control-plane drift inside it.
    log(
        draft, r.emitted_at, SVC_RUNTIME, "metering.emitted",
        f"metering event for {r.comp.component} {r.period_start:%H:%M}Z",
        call, pub_span, app_instance_id=aid, source_event_id=r.source_event_id,
        fields={
            **common,
            "usage_source": inst.correct_source(r.comp),
            "operating_mode": inst.mode,
            "control_plane_scope": inst.spec.control_plane_scope,
            "runtime_backend": inst.spec.runtime_backend,
            "allocation_id": (
                inst.allocation_id if inst.correct_source(r.comp) == "allocation" else None
            ),
        },
    )
    log(
        draft, published, SVC_RUNTIME, "outbox.published", "outbox event published", call, pub_span,
        app_instance_id=aid, source_event_id=r.source_event_id, component=r.comp.component,
    )
    span(
        draft, call, pub_span, call.root_span_id, SVC_RUNTIME, "outbox.publish",
        published - draft.jitter(0.005, 0.03), published + draft.jitter(0.001, 0.02),
        app_instance_id=aid, source_event_id=r.source_event_id, component=r.comp.component,
        extra={"messaging.destination.name": "metering.usage"},
    )
    return _Trail(pub_span, published, recorded, posted)


def _emit_rejected(draft: Draft, r: Row, call: Call, t: _Trail, handle: str, h_start: datetime) -> None:
    """The billing worker rejects the event: an errored span, an error line, no row."""
    aid = r.inst.app_instance_id
    err = "insert usage_records: deadlock detected (SQLSTATE 40P01); moved to dead-letter queue"
    span(
        draft, call, handle, t.pub_span, SVC_BILLING, "billing.handle_usage", h_start,
        t.recorded + draft.jitter(0.001, 0.05), error=True, app_instance_id=aid,
        source_event_id=r.source_event_id, component=r.comp.component,
    )
    log(
        draft, t.recorded, SVC_BILLING, "billing.usage_rejected", "usage event rejected", call,
        handle, level="error", app_instance_id=aid, source_event_id=r.source_event_id,
        component=r.comp.component, error=err,
    )


def _record_usage(draft: Draft, r: Row, call: Call, recorded: datetime, handle: str) -> None:
    """The usage row, as the row says (wrong where injected), and its ``usage_recorded`` line."""
    inst = r.inst
    aid = inst.app_instance_id
    r.usage_record_id = draft.next_ur()
    draft.usage.append(
        UsageRecord(
            usage_record_id=r.usage_record_id,
            source_event_id=r.source_event_id,
            org_id=inst.org_id,
            project_id=r.project_id,
            usage_source=r.usage_source,
            allocation_id=r.allocation_id,
            app_instance_id=aid,
            component=r.comp.component,
            control_plane_component=r.control_plane,
            operating_mode=r.operating_mode,
            control_plane_scope=r.control_plane_scope,
            runtime_backend=r.runtime_backend,
            resource_class=r.comp.resource_class,
            quantity=r.quantity,
            unit="second",
            period_start=r.period_start,
            period_end=r.period_start + HOUR,
            correlation_id=call.correlation_id,
            trace_id=call.trace_id,
            recorded_at=recorded,
        )
    )
    log(
        draft, recorded, SVC_BILLING, "billing.usage_recorded", "usage recorded", call, handle,
        app_instance_id=aid, project_id=r.project_id, source_event_id=r.source_event_id,
        usage_record_id=r.usage_record_id, component=r.comp.component,
        usage_source=r.usage_source, control_plane_component=r.control_plane,
    )


def _emit_redelivery(draft: Draft, r: Row, call: Call, t: _Trail, expected: int) -> None:
    """A redelivery of the same event: the row insert rolled back, the debit stayed (orphan)."""
    aid = r.inst.app_instance_id
    r.ghost_usage_id = draft.next_ur()
    ts = t.posted + draft.jitter(30, 600)
    h2 = draft.span_id()
    log(
        draft, ts, SVC_BILLING, "billing.usage_recorded", "usage recorded", call, h2,
        app_instance_id=aid, source_event_id=r.source_event_id,
        usage_record_id=r.ghost_usage_id, component=r.comp.component,
        usage_source=r.usage_source, control_plane_component=r.control_plane,
    )
    p2 = ts + draft.jitter(0.05, 0.5)
    e2 = p2 + draft.jitter(0.002, 0.02)
    r.orphan_id = post_debit(draft, r, r.ghost_usage_id, expected, p2, h2, e2)
    span(
        draft, call, h2, t.pub_span, SVC_BILLING, "billing.handle_usage", ts - draft.jitter(0.01, 0.1),
        e2 + draft.jitter(0.001, 0.01), app_instance_id=aid,
        source_event_id=r.source_event_id, usage_record_id=r.ghost_usage_id,
        component=r.comp.component,
    )


def post_debit(
    draft: Draft, r: Row, usage_record_id: str, amount: int, posted: datetime, parent: str, end: datetime
) -> str:
    """A usage debit for the row, its ``billing.post_ledger`` span and ``ledger_posted`` line."""
    inst, call = r.inst, r.inst.call
    assert call is not None
    le = draft.next_le()
    draft.ledger.append(
        LedgerEntry(
            ledger_entry_id=le,
            org_id=inst.org_id,
            project_id=r.project_id,
            usage_record_id=usage_record_id,
            direction="debit",
            kind="usage",
            amount_minor=amount,
            currency=inst.currency,
            reverses_entry_id=None,
            idempotency_key=f"usage:{usage_record_id}",
            correlation_id=call.correlation_id,
            description=(
                f"{r.comp.component} {r.comp.resource_class} {r.usage_source} "
                f"{r.period_start:%Y-%m-%dT%H:%M}Z {r.quantity}s"
            ),
            posted_at=posted,
        )
    )
    sid = draft.span_id()
    span(
        draft, call, sid, parent, SVC_BILLING, "billing.post_ledger", posted - draft.jitter(0.001, 0.01),
        end, app_instance_id=inst.app_instance_id, ledger_entry_id=le,
        usage_record_id=usage_record_id, amount_minor=amount, currency=inst.currency,
    )
    log(
        draft, posted, SVC_BILLING, "billing.ledger_posted", "ledger entry posted", call, sid,
        app_instance_id=inst.app_instance_id, project_id=r.project_id, ledger_entry_id=le,
        usage_record_id=usage_record_id, amount_minor=amount, currency=inst.currency,
        kind="usage",
    )
    return le


def emit_credits(draft: Draft, r: Row) -> None:
    """The credits on a recorded row: a duplicate's reversal, a refund, a promo credit."""
    if not r.usage_record_id:
        return
    inst, call = r.inst, r.inst.call
    assert call is not None
    if r.reversed and r.debit_id:
        le = draft.next_le()
        t = r.emitted_at + draft.jitter(1800, 3600)
        t = min(t, draft.now - timedelta(seconds=30))
        draft.ledger.append(
            LedgerEntry(
                le, inst.org_id, r.project_id, r.usage_record_id, "credit", "reversal",
                r.amount, inst.currency, r.debit_id, f"reversal:{r.debit_id}",
                call.correlation_id, f"reverses duplicate usage debit {r.debit_id}", t,
            )
        )
        sid = draft.span_id()
        log(
            draft, t, SVC_BILLING, "billing.ledger_posted", "duplicate debit reversed", call, sid,
            app_instance_id=inst.app_instance_id, ledger_entry_id=le,
            usage_record_id=r.usage_record_id, amount_minor=r.amount, currency=inst.currency,
            kind="reversal", reverses_entry_id=r.debit_id,
        )
        r.credit_ids.append(le)
    for kind in r.credits:
        le = draft.next_le()
        t = min(r.emitted_at + draft.jitter(3600, 5400), draft.now - timedelta(seconds=30))
        if kind == "refund":
            amount = max(1, r.amount // 2)
            key, desc = f"refund:ticket-{draft.hex(32)[:8]}", "goodwill refund (support ticket)"
        else:
            amount = 500 if EXPONENTS[inst.currency] == 2 else 1000
            key, desc = f"promo:WELCOME:{r.usage_record_id}", "promotional credit WELCOME"
        draft.ledger.append(
            LedgerEntry(
                le, inst.org_id, r.project_id, r.usage_record_id, "credit", kind, amount,
                inst.currency, None, key, call.correlation_id, desc, t,
            )
        )
        r.credit_ids.append(le)
