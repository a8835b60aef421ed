"""What the checks look at: the billing evidence of the app instances under examination,
and what the pivot logs say about each metering event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.diagnosis import platform_map as pm
from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    Component,
    Hours,
    LedgerEntry,
    LogEvent,
    RateCard,
    UsageRecord,
    Window,
)


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
    # ``logs`` indexed already (MeteringLogs(logs)), when the caller keeps one; else built from them
    metering: MeteringLogs | None = None
    logs_available: bool = True
    # the instances whose logs were read (an org's: only those with missing hours); None: all
    logs_for: frozenset[str] | None = None
    # At scale the database screens rows first: ``usage`` then holds only the rows that
    # need a closer look, and ``covered`` says which (instance, component, hour) have a
    # row at all (rule 4). None: ``usage`` is every row in the window.
    covered: dict[tuple[str, str], Hours] | None = None


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def parse_ts(v: object) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if not isinstance(v, str) or not v:
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)



class MeteringLogs:
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
                aid, comp, ps = e.app_instance_id, e.get("component"), parse_ts(e.line.get("period_start"))
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
