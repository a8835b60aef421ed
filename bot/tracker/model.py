"""What a follow-up ticket is made of, independent of the tracker.

``IncidentFacts``: what the job knows about the incident (from the store: the latest
run's diagnosis, the signed report link). ``TicketSpec``: one ticket's content, for one
(incident, owning layer). ``FollowUpState``: the part of a follow-up a later comment is
computed against (checks, instances, impact); its digest is what the store keeps as
``last_comment_digest``. ``Ticket``: a ticket in a tracker.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.diagnosis.model import FollowUp

MAX_TITLE = 240  # GitHub: 256; Jira summary: 255
MAX_LISTED = 50  # ids listed in a body; the rest are counted
_INCIDENT_RE = re.compile(r"INC-[0-9]{8}-[a-z0-9]{6}")
TICKET_KEY_RE = re.compile(r"[A-Z][A-Z0-9_]+-[0-9]+|#[0-9]+")
_URL_UNSAFE = re.compile(r"[\s<>\"'()|`\\]")
MAX_URL = 2000


def check_incident_id(incident_id: str) -> str:
    """The id as given, if it has the store's shape (it goes into markers and queries)."""
    if not _INCIDENT_RE.fullmatch(incident_id):
        raise ValueError("not an incident id (INC-YYYYMMDD-xxxxxx)")
    return incident_id


def safe_key(key: object) -> str | None:
    """A ticket key as a tracker may answer it (``OPS-12``, ``#12``), else None."""
    return key if isinstance(key, str) and TICKET_KEY_RE.fullmatch(key) else None


def safe_url(url: object) -> str | None:
    """A ticket's URL fit for a link in mrkdwn, Markdown or HTML: http(s) with a host,
    nothing that ends or breaks out of a link; else None."""
    if not isinstance(url, str) or len(url) > MAX_URL or _URL_UNSAFE.search(url) \
            or any(ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def marker(incident_id: str, layer: str) -> str:
    """The text that identifies a ticket: ``recon:incident=<id>:layer=<layer>``."""
    return f"recon:incident={check_incident_id(incident_id)}:layer={layer}"


def marker_label(incident_id: str, layer: str) -> str:
    """A label naming one ticket (Jira labels take no ``:`` or ``=`` well):
    ``recon-<first 16 hex of sha256(marker)>``."""
    return "recon-" + hashlib.sha256(marker(incident_id, layer).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class EvidenceDigest:
    name: str  # the query name, LogQL, trace URL … (capped when rendered)
    sha256: str
    rows: int


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What a ticket job knows about the incident it files tickets for."""

    incident_id: str
    report_url: str | None
    follow_ups: Sequence[FollowUp]
    correlation_ids: Sequence[str] = ()
    trace_ids: Sequence[str] = ()
    evidence: Sequence[EvidenceDigest] = ()
    opened_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FollowUpState:
    """What a comment on a later run is computed against."""

    checks: tuple[str, ...]
    app_instance_ids: tuple[str, ...]
    impact: tuple[tuple[str, int], ...]
    findings: int

    @classmethod
    def of(cls, f: FollowUp) -> FollowUpState:
        return cls(tuple(sorted(f.checks)), tuple(sorted(f.app_instance_ids)),
                   tuple(sorted(f.impact.items())), f.findings)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> FollowUpState | None:
        if not d:
            return None
        return cls(tuple(d.get("checks", ())), tuple(d.get("app_instance_ids", ())),
                   tuple((str(c), int(v)) for c, v in d.get("impact", ())), int(d.get("findings", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"checks": list(self.checks), "app_instance_ids": list(self.app_instance_ids),
                "impact": [list(p) for p in self.impact], "findings": self.findings}

    @property
    def digest(self) -> str:
        text = "|".join([",".join(self.checks), ",".join(self.app_instance_ids),
                         ",".join(f"{c}={v}" for c, v in self.impact), str(self.findings)])
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """What changed between the state last commented and a later run's."""

    new_checks: tuple[str, ...] = ()
    resolved_checks: tuple[str, ...] = ()
    new_instances: tuple[str, ...] = ()
    resolved_instances: tuple[str, ...] = ()
    impact_before: tuple[tuple[str, int], ...] = ()
    impact_after: tuple[tuple[str, int], ...] = ()
    findings_before: int = 0
    findings_after: int = 0

    @classmethod
    def between(cls, before: FollowUpState | None, after: FollowUpState | None) -> Change:
        b = before or FollowUpState((), (), (), 0)
        a = after or FollowUpState((), (), (), 0)
        return cls(
            new_checks=tuple(c for c in a.checks if c not in b.checks),
            resolved_checks=tuple(c for c in b.checks if c not in a.checks),
            new_instances=tuple(i for i in a.app_instance_ids if i not in b.app_instance_ids),
            resolved_instances=tuple(i for i in b.app_instance_ids if i not in a.app_instance_ids),
            impact_before=b.impact, impact_after=a.impact,
            findings_before=b.findings, findings_after=a.findings,
        )


@dataclass(frozen=True, slots=True)
class TicketSpec:
    """One ticket's content: for one (incident, owning layer)."""

    incident_id: str
    layer: str
    follow_up: FollowUp
    report_url: str | None = None
    correlation_ids: Sequence[str] = ()
    trace_ids: Sequence[str] = ()
    evidence: Sequence[EvidenceDigest] = ()
    opened_at: datetime | None = None

    @classmethod
    def of(cls, facts: IncidentFacts, follow_up: FollowUp) -> TicketSpec:
        return cls(facts.incident_id, follow_up.owning_layer, follow_up, facts.report_url,
                   tuple(facts.correlation_ids), tuple(facts.trace_ids), tuple(facts.evidence), facts.opened_at)

    @property
    def marker(self) -> str:
        return marker(self.incident_id, self.layer)

    @property
    def marker_label(self) -> str:
        return marker_label(self.incident_id, self.layer)

    @property
    def title(self) -> str:
        checks = ", ".join(self.follow_up.checks) or "no failed check"
        text = f"[recon] {self.layer}: {checks} ({self.incident_id})"
        return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"

    @property
    def state(self) -> FollowUpState:
        return FollowUpState.of(self.follow_up)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket in a tracker: ``key`` is ``#123`` (GitHub) or ``OPS-12`` (Jira)."""

    tracker: str
    target: str  # owner/name or project key
    key: str
    url: str
    number: int | None = None  # GitHub's issue number


TicketAction = Literal["created", "found", "commented", "unchanged", "failed"]


@dataclass(frozen=True, slots=True)
class LayerOutcome:
    layer: str
    action: TicketAction
    ticket: Ticket | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TicketOutcome:
    """What a ticket job did, layer by layer."""

    incident_id: str
    layers: tuple[LayerOutcome, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[LayerOutcome, ...]:
        return tuple(lo for lo in self.layers if lo.action == "failed")

    def as_result(self) -> dict[str, Any]:
        """For the job's stored result."""
        return {"incident_id": self.incident_id, "layers": [
            {"layer": lo.layer, "action": lo.action, "key": lo.ticket.key if lo.ticket else None,
             "url": lo.ticket.url if lo.ticket else None, "error": lo.error} for lo in self.layers]}
