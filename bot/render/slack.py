"""Block Kit for the diagnosis thread, rendered from ``templates/slack/``.

Slack's limits hold by construction: at most 50 blocks a message, 3,000 characters
a text, 150 a header. Long evidence is summarised with a link to the incident's
report, never cut mid-structure. Every message has a plain-text fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.diagnosis.model import CHECKS, Correction, Diagnosis, Finding, FollowUp, Subject
from bot.diagnosis.money import format_minor
from bot.flows.steps_report import StepReport
from bot.render.mrkdwn import Mrkdwn, link, mention, mrkdwn
from bot.render.mrkdwn import esc as esc
from bot.render.templating import render_json

MAX_BLOCKS = 50
MAX_FINDINGS_PER_REPLY = 20  # head + findings + context stays far below 50 blocks
MAX_LINES = 25
STATE_MARK = {"ok": ":white_check_mark:", "partial": ":warning:", "failed": ":x:", "skipped": ":fast_forward:"}
CHECK_MARK = {True: ":x:", False: ":white_check_mark:"}


@dataclass(frozen=True, slots=True)
class Message:
    text: str  # the plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]]


def finding_line(f: Finding) -> Mrkdwn:
    impact = format_minor(f.impact_minor, f.currency) if f.impact_minor else "no charge difference"
    rows = f" · rows: `{'`, `'.join(esc(u) for u in f.usage_record_ids[:3])}`" if f.usage_record_ids else ""
    if len(f.usage_record_ids) > 3:
        rows += f" +{len(f.usage_record_ids) - 3}"
    return mrkdwn(f":x: *{esc(f.check)}* — {esc(f.summary)}\n"
                  f"owner: `{esc(f.owning_layer)}` · impact: {esc(impact)}{rows}")


def impact_text(d: Diagnosis) -> str:
    if not d.impact:
        return "none found"
    totals: dict[str, list[int]] = {}
    for r in d.impact:
        t = totals.setdefault(r.currency, [0, 0])
        t[0] += r.overcharged_minor
        t[1] += r.undercharged_minor
    parts = []
    for cur, (over, under) in sorted(totals.items()):
        bits = []
        if over:
            bits.append(f"over {format_minor(over, cur)}")
        if under:
            bits.append(f"under {format_minor(under, cur)}")
        parts.append(", ".join(bits) or f"0 {cur}")
    orgs = len({r.org_id for r in d.impact})
    inst = len({r.app_instance_id for r in d.impact if r.app_instance_id})
    return f"{'; '.join(parts)}\n{inst} instance(s) in {orgs} org(s)"


def parent_message(subject: Subject, status: str, diagnosis: Diagnosis | None = None,
                   incident_id: str | None = None, incident_url: str | None = None,
                   requested_by: str | None = None, freeze_note: str | None = None) -> Message:
    header = f"recon · {subject.label()}"
    verdict: dict[str, Mrkdwn | None] | None = None
    if diagnosis is None:
        status_line = {"running": ":hourglass_flowing_sand: Diagnosis running — steps follow in this thread.",
                       "queued": ":inbox_tray: Queued.",
                       "failed": ":x: The diagnosis failed; see the thread."}.get(status, esc(status))
        text = esc(f"{header}: {status}")
    else:
        failed = diagnosis.failed_checks()
        mark = ":rotating_light:" if failed else ":white_check_mark:"
        status_line = mrkdwn(f"{mark} *{'Drift found' if failed else 'No drift found'}* · "
                             f"scope `{esc(diagnosis.scope)}`"
                             + ("" if diagnosis.complete else " · :warning: *incomplete*"))
        freeze = mrkdwn(":ice_cube: *recommended* — several app instances are impacted; hold manual "
                        "customer-facing adjustments until attribution is verified"
                        if diagnosis.freeze_recommended else "not needed")
        if freeze_note:
            freeze = esc(freeze_note)
        warning = None
        if not diagnosis.complete:
            down = [f"{k} {v}" for k, v in diagnosis.sources.model_dump().items() if v != "ok"]
            warning = mrkdwn(f":warning: Sources not read: {esc(', '.join(down))}. Findings may be partial.")
        verdict = {
            "scope": mrkdwn(f"`{esc(diagnosis.scope)}` · {len(diagnosis.identifiers.app_instance_ids)} "
                            "instance(s) examined"),
            "checks": mrkdwn(", ".join(f"`{esc(c)}`" for c in failed) or "none"),
            "impact": esc(impact_text(diagnosis)),
            "freeze": freeze,
            "warning": warning,
        }
        text = esc(f"{header}: {'drift found: ' + ', '.join(failed) if failed else 'no drift found'}"
                   f" (scope {diagnosis.scope})")
    ctx = []
    if incident_id:
        ctx.append(f"incident {link(incident_url, incident_id)}")
    if requested_by:
        ctx.append(f"requested by {mention(requested_by)}")
    ctx.append("recon reads; it never changes billing data")
    blocks = render_json("slack/parent.json.j2", header=header, status_line=mrkdwn(status_line), verdict=verdict,
                         context_line=mrkdwn(" · ".join(ctx)))
    return Message(text=text, blocks=_cap(blocks))


def step_message(report: StepReport, index: int, total: int, incident_url: str | None = None) -> Message:
    mark = STATE_MARK.get(report.state, ":grey_question:")
    lines: list[str] = [esc(x) for x in report.lines[:MAX_LINES]]
    if len(report.lines) > MAX_LINES:
        lines.append(f"… {len(report.lines) - MAX_LINES} more lines in the report")
    head = f"{mark} *{index}/{total} {esc(report.title)}*"
    if lines:
        head += "\n" + "\n".join(f"• {x}" for x in lines)
    if report.verdict is not None:
        by_check = report.verdict.by_check
        head += "\n" + "\n".join(
            f"{CHECK_MARK[c in by_check]} `{c}`" + (f" — {esc(by_check[c])} finding(s)" if c in by_check else "")
            for c in CHECKS
        )
    shown = report.findings[:MAX_FINDINGS_PER_REPLY]
    more = ""
    if len(report.findings) > len(shown):
        more = f"{len(report.findings) - len(shown)} more finding(s): {link(incident_url, 'full report')}"
    blocks = render_json("slack/step.json.j2", head=mrkdwn(head), findings=[finding_line(f) for f in shown],
                         more=mrkdwn(more))
    text = esc(f"{index}/{total} {report.title}: {report.state}" + (
        f", {len(report.findings)} finding(s)" if report.findings else ""))
    return Message(text=text, blocks=_cap(blocks))


def _cap(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    kept.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{len(blocks) - len(kept)} more blocks left out; see the report"}]})
    return kept


TERMINAL_EMOJI = {
    ":white_check_mark:": "✔", ":x:": "✘", ":warning:": "⚠", ":rotating_light:": "🚨",
    ":hourglass_flowing_sand:": "⏳", ":ice_cube:": "🧊", ":fast_forward:": "⏭", ":inbox_tray:": "📥",
    ":grey_question:": "?",
}


def blocks_to_text(blocks: list[dict[str, Any]]) -> str:
    """A terminal rendering of Block Kit (for ``recon demo`` and for logs)."""
    out: list[str] = []
    for b in blocks:
        t = b.get("type")
        if t == "header":
            out.append(b["text"]["text"])
            out.append("=" * min(len(b["text"]["text"]), 78))
        elif t == "section":
            if "text" in b:
                out.append(b["text"]["text"])
            for f in b.get("fields", []):
                out.append(f["text"].replace("\n", ": ", 1))
        elif t == "context":
            out.append("  " + " · ".join(e.get("text", "") for e in b.get("elements", [])))
        elif t == "divider":
            out.append("-" * 40)
    # Slack's own markup read as a person would (mentions, links), then the escaped text as typed
    text = _SLACK_MARKUP.sub(_as_terminal, "\n".join(out))
    for a, b_ in (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"), *TERMINAL_EMOJI.items()):
        text = text.replace(a, b_)
    return text


_SLACK_MARKUP = re.compile(r"<(@[UW][A-Z0-9]+|![a-z]+|https?://[^|<>\s]+)(?:\|([^<>]*))?>")


def _as_terminal(m: re.Match[str]) -> str:
    target, label = m.group(1), m.group(2)
    if target.startswith("!"):
        return "@" + target[1:]
    if label:
        return f"{label} ({target})"
    return target


def follow_ups_message(follow_ups: Sequence[FollowUp], corrections: Sequence[Correction],
                       incident_url: str | None = None) -> Message:
    """Who must fix what, and the corrective ledger entries proposed (never applied)."""
    lines = ["*Follow-ups* (one per owning layer)"]
    for fu in follow_ups:
        impact = ", ".join(format_minor(v, k) for k, v in sorted(fu.impact.items()) if v)
        lines.append(f"• `{esc(fu.owning_layer)}` — {esc(fu.fix)}\n   checks: {esc(', '.join(fu.checks))} · "
                     f"{len(fu.app_instance_ids)} instance(s)" + (f" · impact {esc(impact)}" if impact else ""))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}]
    if corrections:
        shown = corrections[:15]
        rows = [f"• {esc(c.action.replace('_', ' '))} {esc(format_minor(c.amount_minor, c.currency))} "
                f"{_target(c)} · {esc(c.org_id)}/{esc(c.project_id)} · corr `{esc(c.correlation_id or '-')}`"
                for c in shown]
        more = f"\n… {len(corrections) - len(shown)} more in the report" if len(corrections) > len(shown) else ""
        text = ("*Proposed corrections* for the approved correction procedure — recon does not apply them:\n"
                + "\n".join(rows) + more)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if incident_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link(incident_url, "full report")}]})
    return Message(text=esc(f"Follow-ups for {len(follow_ups)} layer(s); {len(corrections)} correction(s) proposed"),
                   blocks=blocks)


def _target(c: Correction) -> str:
    if c.reverses_entry_id:
        return f"of `{esc(c.reverses_entry_id)}`"
    return f"for `{esc(c.usage_record_id)}`"


def _criterion_line(c: dict[str, Any]) -> str:
    if c.get("state") == "not_verified":
        return (f":grey_question: {esc(c['text'])} — *not verified*: {esc(c.get('why') or '')}\n"
                f"      To verify it, {esc(c.get('how') or '')}")
    return f"{CHECK_MARK[not c['holds']]} {esc(c['text'])}" + (
        f" — {esc(c['before'])} → {esc(c['after'])} finding(s)" if c["before"] is not None
        else f" — {esc(c['after'])} finding(s)")


def verification_message(v: dict[str, Any], incident_url: str | None = None) -> Message:
    """Before against after, and the four recovery criteria one by one."""
    before = v.get("before_checks") or {}
    after = v.get("after_checks") or {}
    rows = [f"`{c}`: {esc(before.get(c, 0)) if v.get('before_checks') is not None else '—'} → {esc(after.get(c, 0))}"
            for c in CHECKS if before.get(c) or after.get(c)]
    head = (":white_check_mark: *Recovered*: all four recovery criteria hold" if v["recovered"]
            else ":x: *Not recovered yet*" + ("" if v.get("complete", True) else " (a source could not be read)"))
    crit = "\n".join(_criterion_line(c) for c in v["criteria"])
    text = f"{head}\n*Findings before → after*\n" + ("\n".join(rows) or "none before, none after") + f"\n{crit}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Verification of {v['incident_id']}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
    ]
    if incident_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link(incident_url, "report")}]})
    outcome = "recovered" if v["recovered"] else "not recovered"
    return Message(text=esc(f"Verification of {v['incident_id']}: {outcome}"),
                   blocks=blocks)
