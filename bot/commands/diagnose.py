"""``recon diagnose``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

from bot.diagnosis.model import Subject, Window
from bot.errors import BadInput, ReconError
from bot.flows.followup_tickets import enqueue_after_diagnosis
from bot.flows.run import run_recorded
from bot.ids import parse_duration, validate_id
from bot.render import terminal
from bot.settings import Settings
from bot.store.jobs import Job, JobQueue
from bot.store.store import Store
from bot.wiring import open_sources

log = logging.getLogger(__name__)


def subject_from_args(correlation_id: str, app_instance: str | None) -> Subject:
    cid = None if correlation_id.strip() == "-" else validate_id(correlation_id, "correlation id")
    aid = validate_id(app_instance, "app instance id") if app_instance is not None else None
    if cid is None and aid is None:
        raise BadInput("give a correlation id, or '-' with --app-instance ID")
    return Subject(correlation_id=cid, app_instance_id=aid)


def parse_until(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--until {text!r} is not an RFC 3339 time like 2026-11-20T12:00:00Z") from None
    if t.tzinfo is None:
        raise BadInput(f"--until {text!r} has no time zone; add Z or an offset")
    if t > datetime.now(UTC):
        raise BadInput(f"--until {text!r} is in the future")
    return t.astimezone(UTC)


async def run_diagnose(settings: Settings, args: argparse.Namespace) -> int:
    subject = subject_from_args(args.correlation_id, args.app_instance)
    since = parse_duration(args.since)
    now = parse_until(args.until) if args.until else datetime.now(UTC)
    window = Window(now - since, now)
    out = sys.stderr if args.json else sys.stdout

    store: Store | None = None
    tickets: Job | None = None
    if not args.no_record:
        from bot.store.opening import open_store

        try:
            store = await open_store(settings, max_size=4)
        except ReconError as exc:
            print(f"recon: warning: not recording this run (store unavailable: {exc})", file=sys.stderr)
    try:
        async with open_sources(settings, args.evidence) as sources:
            print(f"Diagnosing {subject.label()} over {args.since} to {now:%Y-%m-%d %H:%M} UTC", file=out, flush=True)
            rec = await run_recorded(
                store=store, sources=sources, subject=subject, window=window, now=now, origin="cli",
                observers=[terminal.TerminalProgress(out)], row_cap=settings.evidence_row_cap,
            )
        if store is not None and rec.incident is not None:
            tickets = await enqueue_after_diagnosis(JobQueue(store.pool), settings, rec.incident.incident_id,
                                                    rec.run_id, rec.outcome.diagnosis, None, None)
    finally:
        if store is not None:
            await store.close()
    d = rec.outcome.diagnosis
    if args.json:
        print(json.dumps(d.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        print("", file=out)
        print(terminal.render(d), file=out)
    if rec.incident is not None and rec.recorder is not None:
        print(f"\nrecorded as incident {rec.incident.incident_id}, run {rec.run_id}: "
              f"{rec.recorder.evidence_count} evidence records, {rec.recorder.timeline_count} timeline events",
              file=out)
    if tickets is not None:
        print(f"follow-up tickets: job {tickets.job_id} queued for `recon serve`", file=sys.stderr)
    return 0 if d.complete else 3
