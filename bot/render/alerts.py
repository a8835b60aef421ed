"""Block Kit for alert threads and storm summaries (templates/slack/alert.json.j2,
storm.json.j2), within Slack's limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.alerts.model import severity_rank
from bot.diagnosis.model import Diagnosis
from bot.render.mrkdwn import Mrkdwn, link, mrkdwn, safe_url
from bot.render.slack import Message, esc, impact_text
from bot.render.templating import render_json
from bot.store.alerts import AlertGroup

SEVERITY_MARK = {"critical": ":red_circle:", "page": ":red_circle:", "high": ":large_orange_circle:",
                 "error": ":large_orange_circle:", "warning": ":large_yellow_circle:"}
SHOWN_LABELS = ("severity", "org_id", "project_id", "app_instance_id", "correlation_id", "usage_source",
                "control_plane_component", "operating_mode", "control_plane_scope", "runtime_backend")
STORM_LINES_PER_BLOCK = 12
STORM_MAX_GROUPS = 200


def verdict_of(d: Diagnosis, incident_id: str | None) -> dict[str, Any]:
    failed = d.failed_checks()
    return {"checks": failed, "scope": d.scope, "freeze": d.freeze_recommended, "complete": d.complete,
            "impact": impact_text(d), "incident_id": incident_id, "findings": len(d.findings)}


def verdict_line(v: dict[str, Any] | None) -> Mrkdwn | None:
    if not v:
        return None
    if v.get("error"):
        return mrkdwn(f":x: diagnosis failed: {esc(v['error'])}")
    if v.get("no_subject"):
        return mrkdwn(":information_source: The alert carries no correlation, app instance or org id to diagnose.")
    checks = v.get("checks") or []
    head = (f":rotating_light: *Drift found* · scope `{esc(v['scope'])}` · checks: "
            + ", ".join(f"`{esc(c)}`" for c in checks)) if checks else ":white_check_mark: *No drift found*"
    impact = esc(str(v.get("impact", ""))).replace("\n", " · ")
    out = f"{head}\nimpact: {impact}"
    if v.get("freeze"):
        out += "\n:ice_cube: freeze of manual adjustments *recommended*"
    if not v.get("complete", True):
        out += "\n:warning: incomplete: a source could not be read"
    return mrkdwn(out)


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "—"


def alert_message(g: AlertGroup, *, state: str, incident_url: str | None = None) -> Message:
    """The group's own message: what fired, its state, and the diagnosis verdict."""
    name = g.alertname or "alert"
    mark = ":white_check_mark:" if g.status == "resolved" else SEVERITY_MARK.get(g.severity.lower(), ":bell:")
    header = f"{name} ({g.severity})"  # plain_text: Slack does not read markup in it
    status = "RESOLVED" if g.status == "resolved" else "FIRING"
    status_line = (f"{mark} *{status}* · {esc(g.alerts_firing)} alert(s) firing · since {_when(g.fired_at)}"
                   f" · {g.notifications} notification(s), last {_when(g.last_seen)}")
    if g.status == "resolved":
        status_line += f" · resolved {_when(g.resolved_at)}"
    if state == "triaging":
        status_line += "\n:mag: triaging: the diagnosis follows in this thread"
    summary = g.annotations.get("summary") or g.annotations.get("description")
    fields = [f"*{k}*\n`{esc(g.labels[k])}`" for k in SHOWN_LABELS if g.labels.get(k)]
    ctx = [f"{esc(g.source)} group `{esc(g.group_key[:80])}`"]
    if g.incident_id:
        ctx.append(f"incident {link(incident_url, g.incident_id)}")
    if g.annotations.get("runbook_url"):
        ctx.append(link(g.annotations["runbook_url"], "runbook") if safe_url(g.annotations["runbook_url"])
                   else f"runbook: {esc(g.annotations['runbook_url'][:200])}")
    ctx.append("recon reads; it never changes billing data")
    blocks = render_json("slack/alert.json.j2", header=header, status_line=mrkdwn(status_line),
                         summary=summary or None, fields=[mrkdwn(f) for f in fields],
                         verdict=verdict_line(g.verdict), context_line=mrkdwn(" · ".join(ctx)))
    text = esc(f"{status} {name} ({g.severity})" + (f": {summary}" if summary else ""))
    return Message(text=text[:3000], blocks=blocks)


def event_reply(kind: str, g: AlertGroup) -> Message:
    if kind == "resolve":
        text = f":white_check_mark: {esc(g.alertname or 'alert')} resolved at {_when(g.resolved_at)}."
    elif kind == "refire":
        text = f":fire: {esc(g.alertname or 'alert')} is firing again ({_when(g.fired_at)}), within the reopen window."
    else:
        text = esc(kind)
    return Message(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def verdict_reply(g: AlertGroup) -> Message:
    line = verdict_line(g.verdict) or "no verdict"
    return Message(text=line, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": line[:3000]}}])


def storm_summary(channel: str, members: list[AlertGroup]) -> Message:
    ordered = sorted(members, key=lambda g: (-severity_rank(g.severity), g.fired_at, g.group_id))
    lines = []
    for g in ordered[:STORM_MAX_GROUPS]:
        v = g.verdict or {}
        state = ("resolved" if g.status == "resolved" else
                 ("drift: " + ", ".join(v.get("checks") or []) if v.get("checks") else
                  ("no drift" if v else "queued")))
        lines.append(f"{SEVERITY_MARK.get(g.severity.lower(), ':bell:')} *{esc(g.alertname or 'alert')}* "
                     f"`{esc(g.severity)}` {esc(_subject_text(g))} — {esc(state)}")
    chunks = [mrkdwn("\n".join(lines[i:i + STORM_LINES_PER_BLOCK]))
              for i in range(0, len(lines), STORM_LINES_PER_BLOCK)]
    more = f"{len(ordered) - STORM_MAX_GROUPS} more group(s) not listed" if len(ordered) > STORM_MAX_GROUPS else ""
    done = sum(1 for g in members if g.verdict)
    intro = (f":rotating_light: *{len(members)} alert groups* opened at once in this channel. Each is triaged in "
             f"this thread in order of severity ({done}/{len(members)} done), instead of a thread each.")
    blocks = render_json("slack/storm.json.j2", header=f"Alert storm: {len(members)} groups", intro=mrkdwn(intro),
                         chunks=chunks[:45], more=more)
    return Message(text=f"Alert storm: {len(members)} alert groups, triaged by severity", blocks=blocks)


def _subject_text(g: AlertGroup) -> str:
    s = g.subject or {}
    for k in ("correlation_id", "app_instance_id"):
        if s.get(k):
            return f"{k} {s[k]}"
    if s.get("org_id"):
        return f"org {s['org_id']}" + (f"/{s['project_id']}" if s.get("project_id") else "")
    return ""
