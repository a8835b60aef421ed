"""``recon demo``: the main job on the embedded default, for a newcomer with no Slack.

Seeds a demo platform (billing rows with known drift, logs, traces) into the embedded
PostgreSQL, runs the diagnosis of a disputed correlation id end to end, shows the
Slack thread as it would read, and says where the timeline and evidence are.

The customer's usage export comes with the dispute: the faithful export of the disputed
org's months is written from the billing database, then a UI/export drift is planted
in it (app_runtime usage shown as allocation, one entry left out), and the "Usage
export" step must find exactly those lines.
"""

from __future__ import annotations

import csv
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import asyncpg

from bot.diagnosis.model import Subject, Window
from bot.export.request import ExportReady, months_of, read_given_export
from bot.export.sample import write_export
from bot.flows.diagnosis import SourceSet
from bot.flows.run import RecordedRun, open_incident, run_recorded
from bot.flows.thread import ThreadObserver
from bot.render.slack import Message, blocks_to_text
from bot.scenario import Platform, build_platform, demo_spec
from bot.scenario.evidence_files import write_evidence
from bot.scenario.load import load_billing
from bot.settings import Settings
from bot.store.db import redact_url
from bot.store.embedded import ensure_embedded
from bot.store.opening import open_store, store_url
from bot.store.store import Store
from bot.wiring import DEMO_BILLING_DB, demo_billing_url, open_sources

DEMO_CHANNEL = "#billing-incidents"
DEMO_WINDOW = timedelta(days=7)
SHOWN_AS_ALLOCATION = 2  # app_runtime usage lines the planted export drift shows as allocation


class TerminalThread:
    """A ThreadSink that prints the messages the way the Slack thread would read."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._ts = 0

    def _next_ts(self) -> str:
        self._ts += 1
        return f"{int(time.time())}.{self._ts:06d}"

    def _print(self, label: str, msg: Message, indent: str) -> None:
        print(f"{indent}┌─ {label}", file=self.out)
        for line in blocks_to_text(msg.blocks).splitlines():
            for piece in textwrap.wrap(line, 100, subsequent_indent="  ") or [""]:
                print(f"{indent}│ {piece}", file=self.out)
        print(f"{indent}└─", file=self.out, flush=True)

    async def post_parent(self, msg: Message) -> str:
        self._print(f"recon in {DEMO_CHANNEL} (parent message)", msg, "")
        return self._next_ts()

    async def post_reply(self, msg: Message, key: str) -> str:
        self._print("reply in thread", msg, "    ")
        return self._next_ts()

    async def update_parent(self, msg: Message) -> None:
        self._print(f"recon in {DEMO_CHANNEL} (parent message, updated)", msg, "")


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


async def _seed(settings: Settings, now: datetime, seed: int, out: TextIO) -> Platform:
    """Steps 1 to 3: the embedded server, the demo billing database, the offline evidence."""
    _say(out, f"[1/5] Embedded PostgreSQL in {settings.pgdata_dir} …")
    server = await ensure_embedded(settings.pgdata_dir)
    _say(out, f"      {'reused the running server' if server.reused else 'started'} (pid {server.pid})")

    platform = build_platform(demo_spec(), now=now, seed=seed)
    _say(out, f"[2/5] Seeding the demo billing database `{DEMO_BILLING_DB}` …")
    url = await demo_billing_url(settings, create=True)
    assert url is not None
    conn = await asyncpg.connect(url)
    try:
        await load_billing(conn, platform, replace=True)
    finally:
        await conn.close()
    orgs = {i.org_id for i in platform.instances}
    _say(out, f"      {len(orgs)} orgs, {len({i.project_id for i in platform.instances})} projects, "
              f"{len(platform.instances)} app instances "
              f"({', '.join(sorted({i.runtime_backend for i in platform.instances}))}; "
              f"{', '.join(sorted({i.operating_mode for i in platform.instances}))}), "
              f"{len(platform.usage):,} usage rows, {len(platform.ledger):,} ledger entries")
    planted = Counter(e.check for e in platform.expected)
    _say(out, f"      planted drift: {', '.join(f'{k} ×{v}' for k, v in sorted(planted.items()))}")
    _say(out, f"      planted correct-but-tricky cases (must stay silent): {len(platform.correct_cases)}")

    folder = settings.demo_evidence_dir
    _say(out, f"[3/5] Writing offline logs (logcli jsonl) and traces (Tempo JSON) to {folder} …")
    write_evidence(platform, folder)
    _say(out, f"      {len(platform.logs):,} log lines, {len({s.trace_id for s in platform.spans})} traces")
    return platform


async def _close_previous(store: Store, cid: str) -> None:
    previous = await store.find_open_incident(correlation_id=cid)
    if previous is not None and previous.origin == "demo":
        # the billing data was just re-seeded: an earlier demo incident is closed, not reused
        await store.add_timeline_event(incident_id=previous.incident_id, run_id=None, type="closed",
                                       source="demo", description="closed: the demo platform was re-seeded")
        await store.set_incident_status(previous.incident_id, "closed")


@dataclass(frozen=True, slots=True)
class PlantedExport:
    """The customer's export of the disputed org, with a UI/export drift planted in it."""

    path: Path
    org_id: str
    months: list[str]
    ledger_entry_ids: frozenset[str]  # the lines shown otherwise than stored, and the entry left out


async def _plant_export(sources: SourceSet, platform: Platform, now: datetime, folder: Path) -> PlantedExport:
    """The faithful export of the disputed org's months, then some app_runtime usage
    shown as allocation and one entry left out (rule 8 (a) and (b))."""
    assert sources.billing is not None and platform.disputed_correlation_id is not None
    disputed = set(platform.subject_instances(platform.disputed_correlation_id))
    org = next(i.org_id for i in platform.instances if i.app_instance_id in disputed)
    months = months_of(now - DEMO_WINDOW, now)
    path = folder / "usage-export.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        await write_export(sources.billing, f, org, months)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # on the disputed call's instances: the customer disputes what they were shown for them
    theirs = [r for r in rows if r["app_instance_id"] in disputed]
    shown = [r for r in theirs if r["usage_source"] == "app_runtime"][:SHOWN_AS_ALLOCATION]
    for r in shown:
        r["usage_source"] = "allocation"
    left_out = next(r for r in reversed(theirs) if r["line_kind"] == "usage" and r not in shown)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        w.writeheader()
        w.writerows(r for r in rows if r is not left_out)
    return PlantedExport(path, org, months, frozenset(r["ledger_entry_id"] for r in [*shown, left_out]))


async def _diagnose(settings: Settings, store: Store, platform: Platform, now: datetime,
                    out: TextIO) -> tuple[RecordedRun, PlantedExport]:
    """The disputed call diagnosed as `/recon` would, with the customer's export, the thread
    printed as it goes."""
    subject = Subject(correlation_id=platform.disputed_correlation_id)
    assert subject.correlation_id is not None
    await _close_previous(store, subject.correlation_id)
    async with open_sources(settings, settings.demo_evidence_dir) as sources:
        planted = await _plant_export(sources, platform, now, settings.demo_evidence_dir)
        _say(out, f"      The customer attached their usage export of {planted.org_id} for "
                  f"{', '.join(planted.months)} ({planted.path}); it is read before the run.\n")
        export: ExportReady = await read_given_export(planted.path, f"file {planted.path.name}", sources.billing,
                                                      org_id=planted.org_id)
        opened = await open_incident(store, subject, "demo")
        thread = ThreadObserver(TerminalThread(out), subject, incident_id=opened.incident.incident_id,
                                incident_url=None, requested_by="U0DEMO")
        await thread.start()
        rec = await run_recorded(store=store, sources=sources, subject=subject, window=Window(now - DEMO_WINDOW, now),
                                 now=now, origin="demo", observers=[thread], row_cap=settings.evidence_row_cap,
                                 actor="U0DEMO", incident=opened, export=export)
        await thread.finish(rec.outcome.diagnosis)
    return rec, planted


def _export_summary(out: TextIO, rec: RecordedRun, planted: PlantedExport) -> None:
    found = {lid for f in rec.outcome.diagnosis.findings if f.check == "export_mismatch" for lid in f.ledger_entry_ids}
    want = planted.ledger_entry_ids
    _say(out, f"Planted export drift: {len(want)} lines; found: {len(found & want)}"
              f"{'' if found >= want else ' — MISSED: ' + str(sorted(want - found))}"
              f"{'' if found <= want else '; unexpected: ' + str(sorted(found - want))}")
    _say(out, f"  again: recon diagnose {rec.outcome.diagnosis.subject.correlation_id} --export {planted.path}")


def _summary(out: TextIO, platform: Platform, rec: RecordedRun, recorded: tuple[int, int], surl: str) -> None:
    d, cid = rec.outcome.diagnosis, platform.disputed_correlation_id
    assert rec.incident is not None
    subject_instances = set(d.identifiers.app_instance_ids)
    want = {(e.check, e.app_instance_id) for e in platform.expected if e.app_instance_id in subject_instances}
    got = {(f.check, f.app_instance_id) for f in d.findings if f.check != "export_mismatch"}
    _say(out, "\nWhat was recorded")
    _say(out, f"  incident {rec.incident.incident_id}, diagnosis run {rec.run_id}: {recorded[0]} timeline events, "
              f"{recorded[1]} evidence records (each: what was asked, the window, when, rows with count and "
              f"digest)")
    _say(out, f"  store: {redact_url(surl)}")
    _say(out, f"  look:  psql '{surl}' -c \"select started_at, type, description from timeline_events "
              f"where incident_id = '{rec.incident.incident_id}' order by event_id\"")
    _say(out, f"  again: recon diagnose {cid}        (or --json for the document)")
    _say(out, f"\nPlanted drift on the disputed call's instances: {len(want)}; found: {len(got & want)}"
              f"{'' if got >= want else ' — MISSED: ' + str(sorted(want - got))}"
              f"{'' if got <= want else '; unexpected: ' + str(sorted(got - want))}")


async def run_demo(settings: Settings, *, seed: int = 7, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    t0 = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    _say(out, "recon demo: a billing incident, end to end, on this machine\n")
    platform = await _seed(settings, now, seed, out)
    cid = platform.disputed_correlation_id

    _say(out, "[4/5] Opening the store (incidents, timeline, evidence) …")
    store = await open_store(settings, max_size=4)
    surl = await store_url(settings)
    try:
        _say(out, f"[5/5] A customer disputes a charge quoting correlation id {cid}.\n"
                  f"      Someone types `/recon {cid}` in {DEMO_CHANNEL}; the thread reads:\n")
        rec, planted = await _diagnose(settings, store, platform, now, out)
        assert rec.incident is not None
        timeline = await store.timeline(rec.incident.incident_id)
        evidence = await store.evidence(rec.incident.incident_id, rec.run_id)
    finally:
        await store.close()
    _summary(out, platform, rec, (len(timeline), len(evidence)), surl)
    _export_summary(out, rec, planted)
    _say(out, f"done in {time.perf_counter() - t0:.1f} s")
    return 0 if rec.outcome.diagnosis.complete else 3
