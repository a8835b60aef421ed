"""``recon diagnose``: a correlation id, an app instance, or a whole org (project), with or
without the customer's usage export.

A given export is read and reconciled before anything is recorded (``ExportReady``): a
malformed file is bad input (exit 2, its line and column named) and leaves no incident
and no run behind. So is an unknown org; an org none of whose instances ran in the
window is a clean answer with nothing to record.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bot.diagnosis.model import Subject, Window
from bot.errors import BadInput, ReconError, SourceFailure
from bot.export.request import ExportReady, read_given_export
from bot.flows.diagnosis import SourceSet
from bot.flows.followup_tickets import enqueue_after_diagnosis
from bot.flows.run import run_recorded
from bot.flows.steps_report import Observer
from bot.ids import parse_duration, validate_id
from bot.render import terminal
from bot.settings import Settings
from bot.store.jobs import Job, JobQueue
from bot.store.store import Store
from bot.wiring import open_sources

log = logging.getLogger(__name__)


def subject_from_args(correlation_id: str | None, app_instance: str | None, org: str | None = None,
                      project: str | None = None) -> Subject:
    cid = None if correlation_id is None or correlation_id.strip() == "-" else validate_id(
        correlation_id, "correlation id")
    aid = validate_id(app_instance, "app instance id") if app_instance is not None else None
    if project is not None and org is None:
        raise BadInput("--project needs --org: a project is diagnosed within its org")
    if org is not None:
        if cid is not None or aid is not None:
            raise BadInput("--org diagnoses every app instance of the org: give no correlation id or "
                           "--app-instance with it")
        return Subject(org_id=validate_id(org, "org id"),
                       project_id=validate_id(project, "project id") if project is not None else None)
    if cid is None and aid is None:
        raise BadInput("give a correlation id, '-' with --app-instance ID, or --org ORG")
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


def export_source(arg: str) -> tuple[Path | IO[bytes], str]:
    """``--export FILE`` (``-``: standard input) as what ``open_export`` reads, and its origin."""
    if arg == "-":
        return sys.stdin.buffer, "stdin"
    path = Path(arg)
    return path, f"file {path.name}"


async def given_export(settings: Settings, sources: SourceSet, arg: str | None, subject: Subject,
                       cover: tuple[str, ...] = ()) -> ExportReady | None:
    """The ``--export`` file read and reconciled, before anything is recorded (None: none given)."""
    if arg is None:
        return None
    source, origin = export_source(arg)
    return await read_given_export(source, origin, sources.billing, org_id=subject.org_id,
                                   project_id=subject.project_id, max_bytes=settings.export_max_bytes, cover=cover)


@dataclass(frozen=True, slots=True)
class EmptyScope:
    """An org (project) none of whose app instances ran in the window."""

    subject: Subject

    @property
    def text(self) -> str:
        s = self.subject
        return f"no app instances of org {s.org_id}" + (f" project {s.project_id}" if s.project_id else "") + \
            " ran in the window"


async def empty_scope(sources: SourceSet, subject: Subject, window: Window) -> EmptyScope | None:
    """For an org subject: an ``EmptyScope`` when no instance ran in the window; ``BadInput``
    when the billing database knows neither an account nor an instance of it. A billing
    database that cannot be asked leaves the question to the diagnosis (it says so)."""
    billing, org = sources.billing, subject.org_id
    if billing is None or org is None:
        return None
    try:
        if (await billing.instances_in_scope(org, subject.project_id, window)).items:
            return None
        if not (await billing.billing_accounts([org])).items:
            raise BadInput(f"unknown org {org}: the billing database has no billing account of it and no "
                           "app instance of it ran in the window")
    except SourceFailure as exc:
        log.warning("could not ask the billing database about org %s: %s", org, exc.reason)
        return None
    return EmptyScope(subject)


async def _open_store(settings: Settings, args: argparse.Namespace) -> Store | None:
    if args.no_record:
        return None
    from bot.store.opening import open_store

    try:
        return await open_store(settings, max_size=4)
    except ReconError as exc:
        print(f"recon: warning: not recording this run (store unavailable: {exc})", file=sys.stderr)
        return None


def _print_empty(args: argparse.Namespace, empty: EmptyScope) -> int:
    if args.json:
        doc: dict[str, Any] = {"subject": empty.subject.model_dump(mode="json"), "app_instances": 0,
                               "note": empty.text}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(empty.text)
    return 0


async def run_diagnose(settings: Settings, args: argparse.Namespace, observers: Sequence[Observer] = ()) -> int:
    """``recon diagnose``; ``observers``: more watchers of the steps (a benchmark's clock)."""
    subject = subject_from_args(args.correlation_id, args.app_instance, args.org, args.project)
    since = parse_duration(args.since)
    now = parse_until(args.until) if args.until else datetime.now(UTC)
    window = Window(now - since, now)
    out = sys.stderr if args.json else sys.stdout
    org_scope = (subject.org_id, subject.project_id) if subject.org_id else None
    store: Store | None = None
    tickets: Job | None = None
    try:
        async with open_sources(settings, args.evidence) as sources:
            # bad input and empty answers first: nothing is recorded for them
            empty = await empty_scope(sources, subject, window)
            if empty is not None:
                return _print_empty(args, empty)
            export = await given_export(settings, sources, args.export, subject)
            store = await _open_store(settings, args)
            print(f"Diagnosing {subject.label()} over {args.since} to {now:%Y-%m-%d %H:%M} UTC", file=out, flush=True)
            rec = await run_recorded(
                store=store, sources=sources, subject=subject, window=window, now=now, origin="cli",
                observers=[terminal.TerminalProgress(out), *observers], row_cap=settings.evidence_row_cap,
                org_scope=org_scope, export=export,
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
