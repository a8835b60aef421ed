"""What follows ``/recon``: parsed into a command, or a clear usage message. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from bot.diagnosis.model import Subject
from bot.errors import BadInput
from bot.ids import parse_duration, validate_id

DEFAULT_SINCE = timedelta(days=7)
INCIDENT_RE = re.compile(r"INC-\d{8}-[a-z0-9]{6}")

USAGE = """\
*Usage*
• `/recon <correlation_id> [since]` — diagnose a disputed charge from the correlation id in the ticket \
(since: how far back, e.g. `48h`, `7d`; default `7d`)
• `/recon app <app_instance_id> [since]` — diagnose an app instance
• `/recon org <org_id> [project <project_id>] [since]` — a dispute with no correlation id: every app \
instance of the org (or project) that ran in the window
• `/recon freezes` — the active freezes of manual customer-facing adjustments
• `/recon unfreeze <incident_id>` — ask the approvers to lift that incident's freeze
• `/recon verify <incident_id>` — re-run the checks over the incident's scope: recovered or not
• `/recon help` — this message
Also: the message shortcut *Reconcile with recon* (on any message: a modal pre-filled with the ids it \
names), the global shortcut *recon*, and a usage export (CSV) shared in an incident's thread, reconciled \
against the billing rows.
recon reads logs, traces and the billing database; it never changes billing data."""


@dataclass(frozen=True, slots=True)
class ReconCommand:
    action: Literal["help", "diagnose", "org", "freezes", "unfreeze", "verify"]
    subject: Subject | None = None
    since: timedelta = DEFAULT_SINCE
    incident_id: str | None = None


def parse(text: str) -> ReconCommand:
    """Parse the text after ``/recon``. Raises BadInput with a message for the person."""
    words = text.split()
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return ReconCommand("help")
    verb = words[0].lower()
    if verb == "org":
        return _org(words[1:])
    if len(words) > 3:
        raise BadInput(f"too many words after /recon ({len(words)})")
    if verb == "freezes":
        if len(words) > 1:
            raise BadInput("`/recon freezes` takes nothing more")
        return ReconCommand("freezes")
    if verb in ("unfreeze", "verify"):
        if len(words) != 2 or not INCIDENT_RE.fullmatch(words[1]):
            raise BadInput(f"`/recon {verb}` needs an incident id like INC-20261120-abc123")
        return ReconCommand(verb, incident_id=words[1])  # type: ignore[arg-type]
    if words[0].lower() == "app":
        if len(words) < 2:
            raise BadInput("`/recon app` needs an app instance id")
        subject = Subject(app_instance_id=validate_id(words[1], "app instance id"))
        rest = words[2:]
    else:
        subject = Subject(correlation_id=validate_id(words[0], "correlation id"))
        rest = words[1:]
    if len(rest) > 1:
        raise BadInput("too many words after the id; the only option is a duration like 48h")
    since = parse_duration(rest[0]) if rest else DEFAULT_SINCE
    return ReconCommand("diagnose", subject, since)


def _org(words: list[str]) -> ReconCommand:
    """``org <org_id> [project <project_id>] [since]``: the scope of a dispute."""
    if not words:
        raise BadInput("`/recon org` needs an org id")
    org = validate_id(words[0], "org id")
    rest = words[1:]
    project = None
    if rest and rest[0].lower() == "project":
        if len(rest) < 2:
            raise BadInput("`project` needs a project id after it")
        project = validate_id(rest[1], "project id")
        rest = rest[2:]
    if len(rest) > 1:
        raise BadInput("too many words after `/recon org`; it takes `[project <project_id>] [since]`")
    since = parse_duration(rest[0]) if rest else DEFAULT_SINCE
    return ReconCommand("org", Subject(org_id=org, project_id=project), since)


def subject_key(subject: Subject) -> str:
    if subject.correlation_id:
        return f"correlation_id:{subject.correlation_id}"
    if subject.app_instance_id:
        return f"app_instance_id:{subject.app_instance_id}"
    return f"scope:{subject.org_id}:{subject.project_id or '*'}"


def thread_link(channel: str, ts: str) -> str:
    """A link to a message that Slack's clients open in the workspace."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
