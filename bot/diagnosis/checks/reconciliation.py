"""The reconciliation checks: completeness (rule 4, ``missing_usage``), one debit per row at
the rule 5 price (rule 6, ``ledger_mismatch``, and debits of rows that do not exist), and one
charge per hour (rule 7, ``duplicate_charge``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from bot.diagnosis import platform_map as pm
from bot.diagnosis.checks.context import HOUR, Context
from bot.diagnosis.checks.evidence import floor_hour
from bot.diagnosis.model import AppInstance, CheckName, Component, HourRun, Hours, OwningLayer, UsageRecord
from bot.diagnosis.money import format_minor

RECONCILIATION_CHECKS: tuple[CheckName, ...] = ("missing_usage", "ledger_mismatch", "duplicate_charge")
_TICK = timedelta(microseconds=1)


def check_duplicates(ctx: Context, inst: AppInstance, rows: list[UsageRecord]) -> set[str]:
    """Rule 7. Returns the ids of duplicate rows whose charge another row carries."""
    # fast path: most rows collide with nothing
    slots: dict[tuple[str | None, datetime], int] = {}
    events: dict[str, int] = {}
    for u in rows:
        k = (u.component, u.period_start)
        slots[k] = slots.get(k, 0) + 1
        events[u.source_event_id] = events.get(u.source_event_id, 0) + 1
    dup_rows = [u for u in rows if slots[(u.component, u.period_start)] > 1 or events[u.source_event_id] > 1]
    if not dup_rows:
        return set()
    parent: dict[str, str] = {u.usage_record_id: u.usage_record_id for u in dup_rows}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_by_key: dict[tuple[str, object], str] = {}
    for u in dup_rows:
        for key in (("slot", (u.component, u.period_start)), ("event", u.source_event_id)):
            other = first_by_key.setdefault(key, u.usage_record_id)
            if other != u.usage_record_id:
                parent[find(u.usage_record_id)] = find(other)
    rows = dup_rows
    members: dict[str, list[UsageRecord]] = defaultdict(list)
    for u in rows:
        members[find(u.usage_record_id)].append(u)
    covered: set[str] = set()
    for group_rows in members.values():
        if len(group_rows) < 2:
            continue
        charged = sorted(
            (u for u in group_rows if ctx.visible_charge(u.usage_record_id) > 0),
            key=lambda u: (u.recorded_at, u.usage_record_id),
        )
        if charged:
            covered.update(u.usage_record_id for u in group_rows if u is not charged[0])
        if len(charged) > 1:
            extra = charged[1:]
            comp = group_rows[0].component
            g = ctx.group("duplicate_charge", inst, "billing_worker",
                           f"{comp} charged {len(charged)} times for the same hour")
            for u in group_rows:
                if u.usage_record_id not in g.usage_ids:
                    g.usage_ids.append(u.usage_record_id)
            g.periods.append(group_rows[0].period_start)
            for u in extra:
                g.impact += ctx.visible_charge(u.usage_record_id)
                g.ledger_ids.extend(d.ledger_entry_id for d in ctx.effective_debits(u.usage_record_id))
    return covered


def check_ledger(ctx: Context, inst: AppInstance, rows: list[UsageRecord], covered: set[str]) -> None:
    """Rule 6: one usage debit per row, at the rule 5 price; reversals cancel debits."""
    for u in rows:
        if u.usage_record_id in covered:
            continue
        debits = ctx.debits.get(u.usage_record_id, [])
        effective = [d for d in debits if d.ledger_entry_id not in ctx.reversed_ids]
        expected = ctx.price_recorded(u)
        cur = ctx.currency.get(u.org_id)
        if not effective:
            what = "no usage debit" if not debits else "its only debit was reversed and nothing replaced it"
            g = ctx.group("ledger_mismatch", inst, "billing_worker", what)
            g.add_ledger(u, [], -expected if expected is not None else None)
        elif len(effective) > 1:
            total = sum(d.amount_minor for d in effective)
            g = ctx.group("ledger_mismatch", inst, "billing_worker", "more than one usage debit for one row")
            g.add_ledger(u, effective, total - expected if expected is not None else None)
        else:
            d = effective[0]
            if cur is not None and d.currency.upper() != cur.upper():
                g = ctx.group("ledger_mismatch", inst, "billing_worker",
                               f"debit in {d.currency}, account bills in {cur}")
                g.add_ledger(u, effective, None)
            elif expected is not None and d.amount_minor != expected:
                what = "debit amount differs from the rate card price"
                g = ctx.group("ledger_mismatch", inst, "billing_worker", what)
                g.evidence.append(
                    f"{d.ledger_entry_id}: debited {format_minor(d.amount_minor, cur)}, "
                    f"rule 5 gives {format_minor(expected, cur)}"
                )
                g.add_ledger(u, effective, d.amount_minor - expected)


def check_completeness(ctx: Context, inst: AppInstance, rows: list[UsageRecord]) -> None:
    """Rule 4: a row per component per hour run; hours in the grace window are pending."""
    if inst.started_at is None:
        return
    now, win = ctx.ev.now, ctx.ev.window
    run_end = inst.stopped_at or now
    grace = timedelta(hours=pm.GRACE_HOURS)
    first = floor_hour(max(inst.started_at, win.start))
    stop = min(run_end, win.end)
    aid = inst.app_instance_id
    comps = sorted(ctx.components.get(aid, {}).values(), key=lambda c: c.component)
    covered = ctx.ev.covered
    if covered is not None:
        # the usual screened instance: every component's rows run over every hour that
        # can be expected (a superset of those the walk below lists); nothing is missing
        last = _last_expected(first, stop, now - grace)
        if last is None or all(_runs_over(covered.get((aid, c.component)), first, last) for c in comps):
            return
    # the hours this instance ran, past the grace window, with the seconds run in each
    hours: list[tuple[datetime, int]] = []
    h = first
    while h < stop:
        h_end = h + HOUR
        if h_end + grace > now:
            break  # this hour and every later one are still pending
        seconds = int((min(h_end, run_end) - max(h, inst.started_at)).total_seconds())
        if seconds > 0:
            hours.append((h, seconds))
        h = h_end
    if not hours:
        return
    rows_by_comp: dict[str | None, set[datetime]] = defaultdict(set)
    for u in rows:
        rows_by_comp[u.component].add(u.period_start)
    cur = ctx.currency.get(inst.org_id)
    for c in comps:
        have = rows_by_comp.get(c.component, set())
        cov = covered.get((aid, c.component)) if covered is not None else None
        for h, seconds in hours:
            if h not in have and (cov is None or h not in cov):
                _missing(ctx, inst, c, h, Decimal(seconds), cur)


def _last_expected(first: datetime, stop: datetime, due: datetime) -> datetime | None:
    """The last hour start ``first + k·HOUR`` before ``stop`` whose hour ended by ``due``
    (now less the grace window), or None when there is none."""
    bound = min(stop - _TICK, due - HOUR)
    if bound < first:
        return None
    return first + ((bound - first) // HOUR) * HOUR


def _runs_over(cov: Hours | None, first: datetime, last: datetime) -> bool:
    return isinstance(cov, HourRun) and cov.covers(first, last)


def _missing(ctx: Context, inst: AppInstance, c: Component, h: datetime, seconds: Decimal, cur: str | None) -> None:
    layer: OwningLayer
    logs_for = ctx.ev.logs_for
    if not ctx.ev.logs_available or (logs_for is not None and inst.app_instance_id not in logs_for):
        layer, why = "metering_emitter", "logs unavailable: owning layer not confirmed"
    else:
        sids = ctx.logs.emitted.get((inst.app_instance_id, c.component, h), [])
        published = [s for s in sids if s in ctx.logs.published]
        if not sids:
            layer, why = "metering_emitter", "no metering.emitted event"
        elif not published:
            failed = [ctx.logs.publish_failed[s] for s in sids if s in ctx.logs.publish_failed]
            layer = "metering_emitter"
            why = "emitted but never published by the outbox relay" + (f" ({failed[0]})" if failed else "")
        else:
            rejected = [ctx.logs.rejected[s] for s in published if s in ctx.logs.rejected]
            layer = "billing_worker"
            why = "published but not recorded by the billing worker" + (
                f" (rejected: {rejected[0]})" if rejected else ""
            )
    g = ctx.group("missing_usage", inst, layer, f"{c.component}: {why}")
    g.periods.append(h)
    want_source = "app_runtime" if inst.operating_mode == "managed" or c.control_plane else "allocation"
    price = None
    if cur is not None:
        price = ctx.pricer.price(cur, c.resource_class, want_source, c.control_plane,
                                  inst.control_plane_scope, h, seconds)
    if price is None:
        g.unpriced += 1
    else:
        g.impact -= price


def check_orphan_debits(ctx: Context) -> None:
    for e in ctx.ev.ledger:
        if e.direction != "debit" or e.kind != "usage":
            continue
        if e.usage_record_id and e.usage_record_id in ctx.usage_ids:
            continue
        if e.ledger_entry_id in ctx.reversed_ids:
            continue
        aid = ctx.logs.instance_of_ledger.get(e.ledger_entry_id)
        inst = ctx.instances.get(aid) if aid else None
        what = (f"debit for usage row {e.usage_record_id}, which does not exist" if e.usage_record_id
                else "usage debit without a usage row")
        g = ctx.group("ledger_mismatch", inst, "billing_worker", what, e.org_id, e.project_id)
        g.ledger_ids.append(e.ledger_entry_id)
        g.periods.append(e.posted_at)
        g.impact += e.amount_minor
        g.currency = e.currency
