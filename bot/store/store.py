"""The bot's own store: incidents, diagnosis runs, the timeline and the evidence record.

``Store`` wraps an asyncpg pool (see ``bot.store.opening.open_store``); every method runs one
named query from ``bot/store/sql/`` and returns small frozen dataclasses. Database
failures become ``StoreError``.

Append-only: timeline events and evidence are never updated; the database refuses
UPDATE, and refuses DELETE unless the retention command sets ``recon.allow_purge``
(migration ``001_core``).

Evidence rows: the digest (sha256 of the canonical JSON array of *all* rows) is stored
with at most ``row_cap`` of the rows; ``truncated`` says whether some were left out.
Canonical JSON: sorted keys, no whitespace, datetimes in UTC ISO 8601, Decimals as
plain decimal text (``bot.store.db.canonical_json``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import asyncpg
from pydantic import BaseModel

from bot.diagnosis.model import Subject, Window
from bot.errors import StoreError
from bot.sources.protocols import SourceCall
from bot.sqlfiles import Queries
from bot.store.db import Pool, digest_rows

log = logging.getLogger(__name__)

Q = Queries("bot.store", "sql")

IncidentStatus = Literal["open", "recovered", "closed"]
Origin = Literal["cli", "slack", "alert", "demo"]
RunStatus = Literal["running", "done", "failed"]
Phase = Literal["before", "after"]
SubjectKind = Literal["correlation_id", "app_instance_id", "scope", "alert_group"]

_ID_ALPHABET = string.ascii_lowercase + string.digits
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_THREAD_DIGEST_ROWS = 200  # digest bigger row sets off the event loop


def new_incident_id(now: datetime | None = None) -> str:
    """``INC-YYYYMMDD-xxxxxx`` (UTC date, six random lowercase letters and digits)."""
    day = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d")
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    return f"INC-{day}-{suffix}"


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    subject_kind: SubjectKind
    correlation_id: str | None
    app_instance_id: str | None
    org_id: str | None
    project_id: str | None
    title: str
    status: IncidentStatus
    origin: Origin
    slack_channel: str | None
    slack_thread_ts: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Run:
    run_id: int
    incident_id: str
    subject: dict[str, Any]
    window_start: datetime
    window_end: datetime
    status: RunStatus
    complete: bool | None
    scope: str | None
    freeze_recommended: bool | None
    result: dict[str, Any] | None  # the Diagnosis document
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    event_id: int
    incident_id: str
    run_id: int | None
    started_at: datetime
    recorded_at: datetime
    source: str
    type: str
    description: str
    details: dict[str, Any]
    actor: str
    correlation_id: str | None
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    evidence_id: int
    incident_id: str
    run_id: int | None
    step: str
    phase: Phase
    source: str
    kind: str
    via: str
    request: str
    params: dict[str, Any]
    window_start: datetime | None
    window_end: datetime | None
    asked_at: datetime
    duration_ms: float
    row_count: int
    rows: list[Any]  # at most the row cap, canonical JSON values
    rows_digest: str  # over all row_count rows
    truncated: bool
    error: str | None
    recorded_at: datetime


def _subject_key(
    correlation_id: str | None,
    app_instance_id: str | None,
    org_id: str | None = None,
    project_id: str | None = None,
    alert_group: str | None = None,
) -> tuple[SubjectKind, str]:
    if alert_group:
        return "alert_group", alert_group
    if correlation_id:
        return "correlation_id", correlation_id
    if app_instance_id:
        return "app_instance_id", app_instance_id
    if org_id:
        return "scope", f"{org_id}/{project_id or '*'}"
    raise ValueError("an incident needs a correlation_id, an app_instance_id, an org scope or an alert group")


def _check(value: str, allowed: Any, what: str) -> None:
    if value not in get_args(allowed):
        raise ValueError(f"{what} must be one of {get_args(allowed)}, not {value!r}")


class Store:
    """Typed access to the store; one named query per method."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    # ---------------------------------------------------------------- plumbing

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._pool.fetchrow(Q[query], *args)
        except _DB_ERRORS as exc:
            raise StoreError(f"store query {query} failed: {exc}") from exc

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(Q[query], *args)
        except _DB_ERRORS as exc:
            raise StoreError(f"store query {query} failed: {exc}") from exc

    async def _fetchval(self, query: str, *args: Any) -> Any:
        try:
            return await self._pool.fetchval(Q[query], *args)
        except _DB_ERRORS as exc:
            raise StoreError(f"store query {query} failed: {exc}") from exc

    # ---------------------------------------------------------------- incidents

    async def get_or_create_incident(
        self,
        *,
        title: str,
        origin: Origin,
        correlation_id: str | None = None,
        app_instance_id: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        alert_group: str | None = None,
    ) -> tuple[Incident, bool]:
        """The open incident for this subject, or a new one. ``(incident, created)``.

        The subject is the correlation id when given, else the app instance id. At most
        one incident per subject is open (a unique index), so concurrent callers share it.
        """
        _check(origin, Origin, "origin")
        kind, key = _subject_key(correlation_id, app_instance_id, org_id, project_id, alert_group)
        for _attempt in range(5):
            try:
                row = await self._pool.fetchrow(
                    Q["incident_insert"],
                    new_incident_id(),
                    kind,
                    correlation_id,
                    app_instance_id,
                    org_id,
                    project_id,
                    title,
                    origin,
                    key,
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "incidents_pkey":
                    continue  # the random id collided: draw another
                raise StoreError(f"store query incident_insert failed: {exc}") from exc
            except _DB_ERRORS as exc:
                raise StoreError(f"store query incident_insert failed: {exc}") from exc
            if row is not None:
                incident = Incident(**dict(row))
                log.info("opened incident %s for %s", incident.incident_id, title)
                return incident, True
            existing = await self.find_open_incident(
                correlation_id=correlation_id, app_instance_id=app_instance_id, org_id=org_id,
                project_id=project_id, alert_group=alert_group,
            )
            if existing is not None:
                return existing, False
            # it was closed between the two statements: try again
        raise StoreError("could not create or find an open incident after 5 attempts")

    async def create_incident(
        self,
        *,
        title: str,
        origin: Origin,
        correlation_id: str | None = None,
        app_instance_id: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        alert_group: str | None = None,
    ) -> Incident:
        """A new incident, or the one already open for the same subject."""
        incident, _ = await self.get_or_create_incident(
            title=title,
            origin=origin,
            correlation_id=correlation_id,
            app_instance_id=app_instance_id,
            org_id=org_id,
            project_id=project_id,
            alert_group=alert_group,
        )
        return incident

    async def find_open_incident(
        self, *, correlation_id: str | None = None, app_instance_id: str | None = None,
        org_id: str | None = None, project_id: str | None = None, alert_group: str | None = None,
    ) -> Incident | None:
        """The open incident of this subject: an alert group, else the correlation id, else
        the app instance id, else the org (and project) scope."""
        kind, key = _subject_key(correlation_id, app_instance_id, org_id, project_id, alert_group)
        row = await self._fetchrow("incident_find_open", kind, key)
        return Incident(**dict(row)) if row is not None else None

    async def get_incident(self, incident_id: str) -> Incident | None:
        row = await self._fetchrow("incident_get", incident_id)
        return Incident(**dict(row)) if row is not None else None

    async def set_incident_status(self, incident_id: str, status: IncidentStatus) -> Incident:
        _check(status, IncidentStatus, "status")
        row = await self._fetchrow("incident_set_status", incident_id, status)
        if row is None:
            raise StoreError(f"no incident {incident_id}")
        return Incident(**dict(row))

    async def set_incident_thread(self, incident_id: str, channel: str, thread_ts: str) -> bool:
        """Attach the incident to its Slack thread (once; the same thread again is fine)."""
        return await self._fetchval("incident_set_thread", incident_id, channel, thread_ts) is not None

    async def incident_by_thread(self, channel: str, thread_ts: str) -> Incident | None:
        row = await self._fetchrow("incident_by_thread", channel, thread_ts)
        return Incident(**dict(row)) if row is not None else None

    # ---------------------------------------------------------------- runs

    async def abandon_runs(self, job_id: int, reason: str) -> list[int]:
        """Mark the still-running runs of a job's earlier attempt failed; their ids."""
        return [int(r["run_id"]) for r in await self._fetch("runs_abandon", job_id, reason)]

    async def start_run(
        self, incident_id: str, subject: Subject | Mapping[str, Any], window: Window, job_id: int | None = None
    ) -> int:
        """A new ``running`` diagnosis run (of a durable job, when one runs it); returns its id."""
        subj = subject.model_dump(mode="json") if isinstance(subject, Subject) else dict(subject)
        run_id = await self._fetchval("run_start", incident_id, subj, window.start, window.end, job_id)
        return int(run_id)

    async def finish_run(
        self,
        run_id: int,
        diagnosis_json: Mapping[str, Any] | BaseModel | None,
        status: Literal["done", "failed"] = "done",
        complete: bool | None = None,
        scope: str | None = None,
        freeze_recommended: bool | None = None,
        error: str | None = None,
    ) -> Run:
        """Record the outcome of a running run (once: a finished run cannot finish again)."""
        _check(status, Literal["done", "failed"], "status")
        if isinstance(diagnosis_json, BaseModel):
            result: dict[str, Any] | None = diagnosis_json.model_dump(mode="json")
        else:
            result = dict(diagnosis_json) if diagnosis_json is not None else None
        row = await self._fetchrow(
            "run_finish", run_id, status, result, complete, scope, freeze_recommended, error
        )
        if row is None:
            existing = await self.get_run(run_id)
            if existing is None:
                raise StoreError(f"no diagnosis run {run_id}")
            raise StoreError(f"diagnosis run {run_id} already finished ({existing.status})")
        return Run(**dict(row))

    async def get_run(self, run_id: int) -> Run | None:
        row = await self._fetchrow("run_get", run_id)
        return Run(**dict(row)) if row is not None else None

    async def list_runs(self, incident_id: str) -> list[Run]:
        """The incident's runs, oldest first."""
        return [Run(**dict(r)) for r in await self._fetch("runs_by_incident", incident_id)]

    # ---------------------------------------------------------------- timeline

    async def add_timeline_event(
        self,
        incident_id: str,
        run_id: int | None,
        type: str,  # the timeline model's field name
        source: str,
        description: str,
        details: Mapping[str, Any] | None = None,
        actor: str = "recon",
        correlation_id: str | None = None,
        trace_id: str | None = None,
        started_at: datetime | None = None,
    ) -> int:
        """Append a timeline event; ``started_at`` defaults to now. Returns its id."""
        event_id = await self._fetchval(
            "timeline_add",
            incident_id,
            run_id,
            started_at,
            source,
            type,
            description,
            dict(details or {}),
            actor,
            correlation_id,
            trace_id,
        )
        return int(event_id)

    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        """The incident's events in the order they happened."""
        rows = await self._fetch("timeline_by_incident", incident_id)
        return [TimelineEvent(**dict(r)) for r in rows]

    # ---------------------------------------------------------------- evidence

    async def add_evidence(
        self,
        incident_id: str,
        run_id: int | None,
        step: str,
        phase: Phase,
        call: SourceCall,
        rows: Sequence[Any],
        row_cap: int,
        error: str | None = None,
    ) -> int:
        """Record what a source call asked and got. Returns the evidence id.

        ``rows`` (dicts, dataclasses; datetimes and Decimals allowed) are digested in
        full; at most ``row_cap`` of them are stored, and ``truncated`` says so.
        """
        _check(phase, Phase, "phase")
        if row_cap < 0:
            raise ValueError("row_cap must be >= 0")
        all_rows = list(rows)
        if len(all_rows) > _THREAD_DIGEST_ROWS:
            digest = await asyncio.to_thread(digest_rows, all_rows)
        else:
            digest = digest_rows(all_rows)
        kept = all_rows[:row_cap]
        window = call.window
        evidence_id = await self._fetchval(
            "evidence_add",
            incident_id,
            run_id,
            step,
            phase,
            call.source,
            call.kind,
            call.via,
            call.request,
            dict(call.params),
            window.start if window else None,
            window.end if window else None,
            call.started_at,
            float(call.duration_ms),
            len(all_rows),
            kept,
            digest,
            len(all_rows) > len(kept),
            error,
        )
        return int(evidence_id)

    async def evidence(self, incident_id: str, run_id: int | None = None) -> list[EvidenceRecord]:
        """The incident's evidence (of one run when ``run_id`` is given), oldest first."""
        rows = await self._fetch("evidence_by_incident", incident_id, run_id)
        return [EvidenceRecord(**dict(r)) for r in rows]


__all__ = [
    "EvidenceRecord",
    "Incident",
    "IncidentStatus",
    "Origin",
    "Phase",
    "Run",
    "RunStatus",
    "Store",
    "TimelineEvent",
    "new_incident_id",
]
