"""The runbook's six checks over billing evidence (platform.md, rules 1 to 7). Pure.

``run_checks`` takes the evidence of the app instances under examination and returns
findings; it reports only what is wrong. What is correct stays silent: an hour still
inside the 2-hour grace window, a duplicate whose extra debit was reversed, refunds
and promo credits, ``on_allocation`` workers billed as ``allocation``, a charge equal
to rule 5 to the minor unit, a rate card that changed inside the window.

How a usage row finds its app instance: by its ``app_instance_id`` when that names an
instance under examination, else by the ``metering.emitted`` log line of its
``source_event_id`` (a row anchored to the wrong instance is still found that way).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.diagnosis import platform_map as pm
from bot.diagnosis.model import (
    CHECKS,
    AppInstance,
    BillingAccount,
    CheckName,
    Component,
    Correction,
    Finding,
    LedgerEntry,
    LogEvent,
    OwningLayer,
    RateCard,
    UsageRecord,
    Window,
)
from bot.diagnosis.money import Pricer, format_minor
from bot.gcpause import gc_paused

HOUR = timedelta(hours=1)
ATTRIBUTION_CHECKS: tuple[CheckName, ...] = ("wrong_source", "wrong_anchor", "control_plane_drift")
RECONCILIATION_CHECKS: tuple[CheckName, ...] = ("missing_usage", "ledger_mismatch", "duplicate_charge")
ANCHOR_FIELDS = ("org_id", "project_id", "app_instance_id", "operating_mode", "control_plane_scope", "runtime_backend")


@dataclass(slots=True)
class BillingEvidence:
    """Everything the checks look at, for the app instances under examination."""

    window: Window
    now: datetime
    instances: list[AppInstance]
    components: list[Component]
    usage: list[UsageRecord]
    ledger: list[LedgerEntry]  # entries of those rows, their reversals, and orphan debits
    accounts: list[BillingAccount]
    rate_cards: list[RateCard]
    logs: list[LogEvent] = field(default_factory=list)  # pivot logs: who emitted / published
    logs_available: bool = True
    # At scale the database screens rows first: ``usage`` then holds only the rows that
    # need a closer look, and ``covered`` says which (instance, component, hour) have a
    # row at all (rule 4). None: ``usage`` is every row in the window.
    covered: dict[tuple[str, str], frozenset[datetime]] | None = None


@dataclass(slots=True)
class _Group:
    """Findings of one check on one instance for one cause, merged into one Finding."""

    check: CheckName
    instance: AppInstance | None
    org_id: str | None
    project_id: str | None
    layer: OwningLayer
    what: str
    usage_ids: list[str] = field(default_factory=list)
    ledger_ids: list[str] = field(default_factory=list)
    periods: list[datetime] = field(default_factory=list)
    impact: int = 0
    currency: str | None = None
    unpriced: int = 0
    evidence: list[str] = field(default_factory=list)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _parse_ts(v: object) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if not isinstance(v, str) or not v:
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _fmt_t(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _periods_text(periods: list[datetime]) -> str:
    ps = sorted(set(periods))
    if not ps:
        return ""
    if len(ps) == 1:
        return _fmt_t(ps[0])
    return f"{len(ps)} hours, {_fmt_t(ps[0])} to {_fmt_t(ps[-1] + HOUR)}"


class _MeteringLogs:
    """What the pivot logs say about each metering event."""

    def __init__(self, logs: Iterable[LogEvent]) -> None:
        self.emitted: dict[tuple[str, str, datetime], list[str]] = defaultdict(list)
        self.instance_of_event: dict[str, str] = {}
        self.published: set[str] = set()
        self.publish_failed: dict[str, str] = {}
        self.rejected: dict[str, str] = {}
        self.recorded: set[str] = set()
        self.instance_of_ledger: dict[str, str] = {}
        for e in logs:
            sid = e.get("source_event_id")
            if e.event == pm.EV_METERING_EMITTED and sid:
                aid, comp, ps = e.app_instance_id, e.get("component"), _parse_ts(e.line.get("period_start"))
                if aid:
                    self.instance_of_event[sid] = aid
                if aid and comp and ps:
                    self.emitted[(aid, comp, ps)].append(sid)
            elif e.event == pm.EV_OUTBOX_PUBLISHED and sid:
                self.published.add(sid)
            elif e.event == pm.EV_OUTBOX_FAILED and sid:
                self.publish_failed[sid] = e.get("error") or "publish failed"
            elif e.event == pm.EV_USAGE_REJECTED and sid:
                self.rejected[sid] = e.get("error") or "rejected"
            elif e.event == pm.EV_USAGE_RECORDED and sid:
                self.recorded.add(sid)
            elif e.event == pm.EV_LEDGER_POSTED:
                lid, aid = e.get("ledger_entry_id"), e.app_instance_id
                if lid and aid:
                    self.instance_of_ledger[lid] = aid


class _Checker:
    def __init__(self, ev: BillingEvidence) -> None:
        self.ev = ev
        self.instances = {i.app_instance_id: i for i in ev.instances}
        self.components: dict[str, dict[str, Component]] = defaultdict(dict)
        for c in ev.components:
            self.components[c.app_instance_id][c.component] = c
        self.currency = {a.org_id: a.currency for a in ev.accounts}
        self.pricer = Pricer(ev.rate_cards)
        self.logs = _MeteringLogs(ev.logs)
        self.groups: dict[tuple[str, str | None, str], _Group] = {}
        self.usage_ids = {u.usage_record_id for u in ev.usage}
        self._recorded_cache: dict[tuple[object, ...], int | None] = {}
        # ledger indexes
        self.debits: dict[str, list[LedgerEntry]] = {}
        self.reversed_ids: set[str] = set()
        for e in ev.ledger:
            if e.direction == "debit":
                if e.kind == "usage" and e.usage_record_id:
                    got = self.debits.get(e.usage_record_id)
                    if got is None:
                        self.debits[e.usage_record_id] = [e]
                    else:
                        got.append(e)
            elif e.kind == "reversal" and e.reverses_entry_id:
                self.reversed_ids.add(e.reverses_entry_id)

    # -------------------------------------------------------------- helpers

    def group(self, check: CheckName, inst: AppInstance | None, layer: OwningLayer, what: str,
              org_id: str | None = None, project_id: str | None = None) -> _Group:
        aid = inst.app_instance_id if inst else None
        key = (check, aid, what)
        g = self.groups.get(key)
        if g is None:
            g = _Group(check, inst, inst.org_id if inst else org_id, inst.project_id if inst else project_id,
                       layer, what)
            g.currency = self.currency.get(g.org_id or "")
            self.groups[key] = g
        return g

    def effective_debits(self, usage_record_id: str) -> list[LedgerEntry]:
        return [d for d in self.debits.get(usage_record_id, ()) if d.ledger_entry_id not in self.reversed_ids]

    def visible_charge(self, usage_record_id: str) -> int:
        return sum(d.amount_minor for d in self.effective_debits(usage_record_id))

    def price_recorded(self, u: UsageRecord) -> int | None:
        key = (u.org_id, u.resource_class, u.usage_source, u.control_plane_component, u.control_plane_scope,
               u.period_start, u.quantity)
        try:
            return self._recorded_cache[key]
        except KeyError:
            pass
        cur = self.currency.get(u.org_id)
        v = None if cur is None else self.pricer.price(cur, u.resource_class, u.usage_source,
                                                       u.control_plane_component, u.control_plane_scope,
                                                       u.period_start, u.quantity)
        self._recorded_cache[key] = v
        return v

    def owner(self, u: UsageRecord) -> AppInstance | None:
        if u.app_instance_id and u.app_instance_id in self.instances:
            return self.instances[u.app_instance_id]
        aid = self.logs.instance_of_event.get(u.source_event_id)
        return self.instances.get(aid) if aid else None

    # -------------------------------------------------------------- the run

    def run(self, checks: Collection[CheckName]) -> list[Finding]:
        want = set(checks)
        rows_by_inst: dict[str, list[UsageRecord]] = defaultdict(list)
        for u in self.ev.usage:
            inst = self.owner(u)
            if inst is not None:
                rows_by_inst[inst.app_instance_id].append(u)
        for aid in sorted(self.instances):
            inst = self.instances[aid]
            rows = rows_by_inst.get(aid, [])
            if want & set(ATTRIBUTION_CHECKS):
                self.check_attribution(inst, rows)
            if want & {"duplicate_charge", "ledger_mismatch"}:
                covered_by_dupes = self.check_duplicates(inst, rows)
                if "ledger_mismatch" in want:
                    self.check_ledger(inst, rows, covered_by_dupes)
            if "missing_usage" in want:
                self.check_completeness(inst, rows)
        if "ledger_mismatch" in want:
            self.check_orphan_debits()
        return [f for f in self.findings() if f.check in want]

    def check_attribution(self, inst: AppInstance, rows: list[UsageRecord]) -> None:
        comps = self.components.get(inst.app_instance_id, {})
        anchor = tuple(getattr(inst, f) for f in ANCHOR_FIELDS)
        cur = self.currency.get(inst.org_id)
        managed = inst.operating_mode == "managed"
        for u in rows:
            c = comps.get(u.component or "")
            cp = c.control_plane if c else u.control_plane_component
            want_source = "app_runtime" if managed or cp else "allocation"
            src_wrong = u.usage_source != want_source or (
                want_source == "allocation" and u.allocation_id != inst.allocation_id
            )
            cp_wrong = c is not None and u.control_plane_component != c.control_plane
            anchor_wrong = c is None or (
                u.org_id, u.project_id, u.app_instance_id, u.operating_mode, u.control_plane_scope, u.runtime_backend,
            ) != anchor
            if not (src_wrong or cp_wrong or anchor_wrong):
                continue  # the common case: nothing to price
            # price under progressively corrected attribution: the differences telescope
            p0 = self.price_recorded(u)
            p1 = self._price(cur, u, want_source, u.control_plane_component, u.control_plane_scope)
            p2 = self._price(cur, u, want_source, cp, u.control_plane_scope)
            p3 = self._price(cur, u, want_source, cp, inst.control_plane_scope)
            if src_wrong:
                if u.usage_source != want_source:
                    what = f"billed as {u.usage_source}, should be {want_source}"
                else:
                    what = f"allocation_id {u.allocation_id} is not the instance's {inst.allocation_id}"
                self._add(self.group("wrong_source", inst, "attribution_mapping", what), u, p0, p1)
            if cp_wrong and c is not None:
                what = (f"component {c.component} recorded as "
                        f"{'control plane' if u.control_plane_component else 'not control plane'}, "
                        f"but it {'is' if c.control_plane else 'is not'}")
                self._add(self.group("control_plane_drift", inst, "metering_emitter", what), u, p1, p2)
            if anchor_wrong:
                diffs = [f for f in ANCHOR_FIELDS if getattr(u, f) != getattr(inst, f)]
                if c is None:
                    diffs.append("component")
                what = ", ".join(
                    f"{f} {getattr(u, f)!s} ≠ {getattr(inst, f)!s}" if f != "component"
                    else f"component {u.component} is not one of the instance's" for f in diffs
                )
                self._add(self.group("wrong_anchor", inst, "attribution_mapping", what), u, p2, p3)

    def _price(self, cur: str | None, u: UsageRecord, source: str, cp: bool, scope: str | None) -> int | None:
        if cur is None:
            return None
        return self.pricer.price(cur, u.resource_class, source, cp, scope, u.period_start, u.quantity)

    @staticmethod
    def _add(g: _Group, u: UsageRecord, before: int | None, after: int | None) -> None:
        g.usage_ids.append(u.usage_record_id)
        g.periods.append(u.period_start)
        if before is None or after is None:
            g.unpriced += 1
        else:
            g.impact += before - after

    def check_duplicates(self, inst: AppInstance, rows: list[UsageRecord]) -> set[str]:
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
                (u for u in group_rows if self.visible_charge(u.usage_record_id) > 0),
                key=lambda u: (u.recorded_at, u.usage_record_id),
            )
            if charged:
                covered.update(u.usage_record_id for u in group_rows if u is not charged[0])
            if len(charged) > 1:
                extra = charged[1:]
                comp = group_rows[0].component
                g = self.group("duplicate_charge", inst, "billing_worker",
                               f"{comp} charged {len(charged)} times for the same hour")
                for u in group_rows:
                    if u.usage_record_id not in g.usage_ids:
                        g.usage_ids.append(u.usage_record_id)
                g.periods.append(group_rows[0].period_start)
                for u in extra:
                    g.impact += self.visible_charge(u.usage_record_id)
                    g.ledger_ids.extend(d.ledger_entry_id for d in self.effective_debits(u.usage_record_id))
        return covered

    def check_ledger(self, inst: AppInstance, rows: list[UsageRecord], covered: set[str]) -> None:
        """Rule 6: one usage debit per row, at the rule 5 price; reversals cancel debits."""
        for u in rows:
            if u.usage_record_id in covered:
                continue
            debits = self.debits.get(u.usage_record_id, [])
            effective = [d for d in debits if d.ledger_entry_id not in self.reversed_ids]
            expected = self.price_recorded(u)
            cur = self.currency.get(u.org_id)
            if not effective:
                what = "no usage debit" if not debits else "its only debit was reversed and nothing replaced it"
                g = self.group("ledger_mismatch", inst, "billing_worker", what)
                self._add_ledger(g, u, [], -expected if expected is not None else None)
            elif len(effective) > 1:
                total = sum(d.amount_minor for d in effective)
                g = self.group("ledger_mismatch", inst, "billing_worker", "more than one usage debit for one row")
                self._add_ledger(g, u, effective, total - expected if expected is not None else None)
            else:
                d = effective[0]
                if cur is not None and d.currency.upper() != cur.upper():
                    g = self.group("ledger_mismatch", inst, "billing_worker",
                                   f"debit in {d.currency}, account bills in {cur}")
                    self._add_ledger(g, u, effective, None)
                elif expected is not None and d.amount_minor != expected:
                    what = "debit amount differs from the rate card price"
                    g = self.group("ledger_mismatch", inst, "billing_worker", what)
                    g.evidence.append(
                        f"{d.ledger_entry_id}: debited {format_minor(d.amount_minor, cur)}, "
                        f"rule 5 gives {format_minor(expected, cur)}"
                    )
                    self._add_ledger(g, u, effective, d.amount_minor - expected)

    @staticmethod
    def _add_ledger(g: _Group, u: UsageRecord, entries: list[LedgerEntry], impact: int | None) -> None:
        g.usage_ids.append(u.usage_record_id)
        g.periods.append(u.period_start)
        g.ledger_ids.extend(e.ledger_entry_id for e in entries)
        if impact is None:
            g.unpriced += 1
        else:
            g.impact += impact

    def check_completeness(self, inst: AppInstance, rows: list[UsageRecord]) -> None:
        """Rule 4: a row per component per hour run; hours in the grace window are pending."""
        if inst.started_at is None:
            return
        now, win = self.ev.now, self.ev.window
        run_end = inst.stopped_at or now
        # the hours this instance ran, past the grace window, with the seconds run in each
        hours: list[tuple[datetime, int]] = []
        h = floor_hour(max(inst.started_at, win.start))
        stop = min(run_end, win.end)
        grace = timedelta(hours=pm.GRACE_HOURS)
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
        expected = [h for h, _ in hours]
        rows_by_comp: dict[str | None, set[datetime]] = defaultdict(set)
        for u in rows:
            rows_by_comp[u.component].add(u.period_start)
        cur = self.currency.get(inst.org_id)
        aid = inst.app_instance_id
        for c in sorted(self.components.get(aid, {}).values(), key=lambda c: c.component):
            have = rows_by_comp.get(c.component, set())
            if self.ev.covered is not None:
                have = have | self.ev.covered.get((aid, c.component), frozenset())
            if have.issuperset(expected):
                continue
            for h, seconds in hours:
                if h not in have:
                    self._missing(inst, c, h, Decimal(seconds), cur)

    def _missing(self, inst: AppInstance, c: Component, h: datetime, seconds: Decimal, cur: str | None) -> None:
        layer: OwningLayer
        if not self.ev.logs_available:
            layer, why = "metering_emitter", "logs unavailable: owning layer not confirmed"
        else:
            sids = self.logs.emitted.get((inst.app_instance_id, c.component, h), [])
            published = [s for s in sids if s in self.logs.published]
            if not sids:
                layer, why = "metering_emitter", "no metering.emitted event"
            elif not published:
                failed = [self.logs.publish_failed[s] for s in sids if s in self.logs.publish_failed]
                layer = "metering_emitter"
                why = "emitted but never published by the outbox relay" + (f" ({failed[0]})" if failed else "")
            else:
                rejected = [self.logs.rejected[s] for s in published if s in self.logs.rejected]
                layer = "billing_worker"
                why = "published but not recorded by the billing worker" + (
                    f" (rejected: {rejected[0]})" if rejected else ""
                )
        g = self.group("missing_usage", inst, layer, f"{c.component}: {why}")
        g.periods.append(h)
        want_source = "app_runtime" if inst.operating_mode == "managed" or c.control_plane else "allocation"
        price = None
        if cur is not None:
            price = self.pricer.price(cur, c.resource_class, want_source, c.control_plane,
                                      inst.control_plane_scope, h, seconds)
        if price is None:
            g.unpriced += 1
        else:
            g.impact -= price

    def check_orphan_debits(self) -> None:
        for e in self.ev.ledger:
            if e.direction != "debit" or e.kind != "usage":
                continue
            if e.usage_record_id and e.usage_record_id in self.usage_ids:
                continue
            if e.ledger_entry_id in self.reversed_ids:
                continue
            aid = self.logs.instance_of_ledger.get(e.ledger_entry_id)
            inst = self.instances.get(aid) if aid else None
            what = (f"debit for usage row {e.usage_record_id}, which does not exist" if e.usage_record_id
                    else "usage debit without a usage row")
            g = self.group("ledger_mismatch", inst, "billing_worker", what, e.org_id, e.project_id)
            g.ledger_ids.append(e.ledger_entry_id)
            g.periods.append(e.posted_at)
            g.impact += e.amount_minor
            g.currency = e.currency

    # -------------------------------------------------------------- output

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for g in self.groups.values():
            out.append(Finding(
                check=g.check,
                app_instance_id=g.instance.app_instance_id if g.instance else None,
                org_id=g.org_id,
                project_id=g.project_id,
                owning_layer=g.layer,
                usage_record_ids=sorted(set(g.usage_ids)),
                ledger_entry_ids=sorted(set(g.ledger_ids)),
                summary=self._summary(g),
                impact_minor=g.impact,
                currency=g.currency,
                period_starts=sorted(set(g.periods)),
                evidence=g.evidence[:20],
            ))
        return sort_findings(out)

    @staticmethod
    def _summary(g: _Group) -> str:
        n_rows = len(set(g.usage_ids))
        when = _periods_text(g.periods)
        subject = g.instance.app_instance_id if g.instance else f"{g.org_id}/{g.project_id}"
        if g.check == "missing_usage":
            head = f"{subject}: no usage row for {when}; {g.what}"
        elif g.check == "ledger_mismatch" and not g.usage_ids:
            head = f"{subject}: {len(set(g.ledger_ids))} {g.what}"
        else:
            rows = f"{n_rows} usage row{'s' if n_rows != 1 else ''}"
            head = f"{subject}: {rows} ({when}): {g.what}"
        if g.unpriced:
            head += f"; {g.unpriced} could not be priced (no matching rate card or account)"
        return head


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """The stable order of findings: check, org, project, instance, first hour, summary."""
    order = {c: i for i, c in enumerate(CHECKS)}
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(findings, key=lambda f: (
        order[f.check], f.org_id or "", f.project_id or "", f.app_instance_id or "",
        f.period_starts[0] if f.period_starts else far, f.summary,
    ))


def run_checks(ev: BillingEvidence, checks: Collection[CheckName] = CHECKS) -> list[Finding]:
    """The findings of the given checks (all six by default), in ``sort_findings`` order.

    The attribution checks need no ledger entries; the flow runs them as soon as the
    usage rows are read, and the reconciliation checks once the ledger is.
    """
    with gc_paused():
        return _Checker(ev).run(checks)


def propose_corrections(ev: BillingEvidence, findings: Iterable[Finding]) -> list[Correction]:
    """The ledger entries the approved correction procedure would post for the findings
    that need a data correction, each linked to its correlation id. Proposed only:
    reversals of wrong or extra debits, and debits at the rule 5 price (for a
    re-attributed row, at the price under the correct attribution). Missing usage needs
    its metering event re-driven, not a ledger entry, and gets none here."""
    c = _Checker(ev)
    usage = {u.usage_record_id: u for u in ev.usage}
    entries = {e.ledger_entry_id: e for e in ev.ledger}
    out: list[Correction] = []
    done_rows: set[str] = set()
    reversed_: set[str] = set()

    def reverse(e: LedgerEntry, reason: str, check: CheckName) -> None:
        if e.ledger_entry_id in reversed_:
            return
        reversed_.add(e.ledger_entry_id)
        out.append(Correction(action="reverse_debit", org_id=e.org_id, project_id=e.project_id,
                              usage_record_id=e.usage_record_id, reverses_entry_id=e.ledger_entry_id,
                              amount_minor=e.amount_minor, currency=e.currency, correlation_id=e.correlation_id,
                              reason=reason, check=check))

    def debit(u: UsageRecord, amount: int, reason: str, check: CheckName) -> None:
        out.append(Correction(action="post_debit", org_id=u.org_id, project_id=u.project_id,
                              usage_record_id=u.usage_record_id, amount_minor=amount,
                              currency=c.currency.get(u.org_id, "unknown"), correlation_id=u.correlation_id,
                              reason=reason, check=check))

    for f in findings:
        if f.check == "duplicate_charge":
            for lid in f.ledger_entry_ids:
                if lid in entries:
                    reverse(entries[lid], "extra charge for an hour already charged (duplicate usage row)", f.check)
        elif f.check == "ledger_mismatch" and not f.usage_record_ids:
            for lid in f.ledger_entry_ids:
                if lid in entries:
                    reverse(entries[lid], "usage debit whose usage row does not exist", f.check)
        elif f.check == "ledger_mismatch":
            for uid in f.usage_record_ids:
                u = usage.get(uid)
                expected = c.price_recorded(u) if u is not None else None
                if u is None or expected is None or uid in done_rows:
                    continue
                done_rows.add(uid)
                effective = c.effective_debits(uid)
                keep = next((d for d in effective if d.amount_minor == expected), None)
                for d in effective:
                    if d is not keep:
                        reverse(d, "debit that differs from the rate card price, or one too many", f.check)
                if keep is None:
                    debit(u, expected, "the rate card price of the usage row (rule 5)", f.check)
        elif f.check in ATTRIBUTION_CHECKS:
            for uid in f.usage_record_ids:
                u = usage.get(uid)
                inst = c.owner(u) if u is not None else None
                if u is None or inst is None or uid in done_rows:
                    continue
                done_rows.add(uid)
                comp = c.components.get(inst.app_instance_id, {}).get(u.component or "")
                cp = comp.control_plane if comp else u.control_plane_component
                source = "app_runtime" if inst.operating_mode == "managed" or cp else "allocation"
                correct = c._price(c.currency.get(inst.org_id), u, source, cp, inst.control_plane_scope)
                if correct is None:
                    continue
                for d in c.effective_debits(uid):
                    reverse(d, f"charged under the wrong attribution ({f.check})", f.check)
                debit(u, correct, f"re-attribute the row to {source}, control plane {cp}, scope "
                                  f"{inst.control_plane_scope}; charge at that price", f.check)
    return out
