"""The incident report as a self-contained HTML page and as Markdown.

``render_html(report)``: one page, inline CSS and inline SVG, no scripts, no external
assets (it is served with ``default-src 'none'``). Every value goes through jinja2's
autoescape (``templates/report/page.html.j2``).

``render_markdown(report)``: the same sections as Markdown tables
(``templates/report/report.md.j2``), deterministic: stable ordering, no time of
rendering, no measured durations, so an export can be diffed and kept as a golden file.

Both use the one jinja2 environment (``bot.render.templating``); what the templates
need is prepared here as plain values (``view(report)``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.diagnosis.money import format_minor
from bot.render.templating import render
from bot.report.data import IncidentReport, InstanceCharge, QueryComparison, RunEvidence
from bot.store.store import EvidenceRecord, TimelineEvent

ROWS_SHOWN = 25  # evidence rows shown per record on the page
COLUMNS_SHOWN = 14

# type -> (label, colour, glyph)
_EVENT_STYLE: dict[str, tuple[str, str, str]] = {
    "diagnosis_started": ("diagnosis started", "#2563eb", "▶"),
    "diagnosis_finished": ("diagnosis finished", "#7c3aed", "■"),
    "step_started": ("step started", "#94a3b8", "·"),
    "step_finished": ("step finished", "#16a34a", "✓"),
    "finding": ("finding", "#dc2626", "!"),
    "freeze": ("freeze", "#0891b2", "❄"),
    "unfreeze": ("unfreeze", "#0891b2", "☀"),
    "approval": ("approval", "#0d9488", "✔"),
    "closed": ("closed", "#475569", "✕"),
    "recovered": ("recovered", "#16a34a", "↺"),
    "note": ("note", "#64748b", "✎"),
}
_STATE_STYLE = {"ok": ("#16a34a", "✓"), "partial": ("#d97706", "◐"), "failed": ("#dc2626", "✗"),
                "skipped": ("#94a3b8", "–")}


def ts(value: datetime | None) -> str:
    """``2026-11-20 12:17:31`` (UTC), or an em dash."""
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "—"
    return format_minor(int(amount), currency or None)


def md(value: Any) -> str:
    """A Markdown table cell: one line, pipes and angle brackets escaped."""
    if value is None:
        return "—"
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split()) or "—"


def short_json(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_link(channel: str | None, thread_ts: str | None) -> str | None:
    """A Slack permalink to the thread (Slack redirects it to the workspace)."""
    if not channel or not thread_ts:
        return None
    return f"https://slack.com/archives/{channel}/p{thread_ts.replace('.', '')}"


@dataclass(frozen=True, slots=True)
class TimelineItem:
    event: TimelineEvent
    when: str
    offset: str
    label: str
    colour: str
    glyph: str
    minor: bool
    lines: tuple[str, ...]


def _offset(seconds: float) -> str:
    if seconds < 60:
        return f"+{seconds:.1f}s"
    if seconds < 3600:
        return f"+{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"+{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def timeline_items(events: Sequence[TimelineEvent]) -> list[TimelineItem]:
    out: list[TimelineItem] = []
    t0 = events[0].started_at if events else None
    for e in events:
        label, colour, glyph = _EVENT_STYLE.get(e.type, (e.type.replace("_", " "), "#64748b", "●"))
        state = e.details.get("state") if isinstance(e.details, dict) else None
        if e.type == "step_finished" and isinstance(state, str) and state in _STATE_STYLE:
            colour, glyph = _STATE_STYLE[state]
            label = f"step {state}"
        raw_lines = e.details.get("lines") if isinstance(e.details, dict) else None
        lines = tuple(str(x) for x in raw_lines[:8]) if isinstance(raw_lines, list) else ()
        out.append(TimelineItem(
            event=e, when=ts(e.started_at),
            offset=_offset((e.started_at - t0).total_seconds()) if t0 else "",
            label=label, colour=colour, glyph=glyph, minor=e.type == "step_started", lines=lines,
        ))
    return out


@dataclass(frozen=True, slots=True)
class Bar:
    y: float
    width: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartRow:
    charge: InstanceCharge
    y: float
    charged: Bar
    expected: Bar
    label: str
    diff: str
    diff_class: str


@dataclass(frozen=True, slots=True)
class Chart:
    currency: str
    width: int
    height: int
    label_w: int
    bar_w: int
    rows: tuple[ChartRow, ...]
    max_label: str


CHART_LABEL_W = 190
CHART_BAR_W = 430
CHART_ROW_H = 46


def charts(instances: Sequence[InstanceCharge]) -> list[Chart]:
    """One bar chart per currency: per instance, the charge and the expected charge."""
    groups: dict[str, list[InstanceCharge]] = defaultdict(list)
    for c in instances:
        groups[c.currency].append(c)
    out = []
    for currency in sorted(groups):
        items = groups[currency]
        top = max([1, *(max(c.charged_minor, c.expected_minor) for c in items)])
        rows = []
        for i, c in enumerate(items):
            y = 24 + i * CHART_ROW_H
            diff = c.difference_minor
            rows.append(ChartRow(
                charge=c, y=y,
                charged=Bar(y, CHART_BAR_W * max(c.charged_minor, 0) / top, money(c.charged_minor, currency)),
                expected=Bar(y + 17, CHART_BAR_W * max(c.expected_minor, 0) / top,
                             money(c.expected_minor, currency)),
                label=c.app_instance_id or f"{c.org_id}/{c.project_id} (no instance)",
                diff=("+" if diff > 0 else "") + money(diff, currency) if diff else "as expected",
                diff_class="over" if diff > 0 else ("under" if diff < 0 else "same"),
            ))
        out.append(Chart(currency=currency or "(no charge)", width=CHART_LABEL_W + CHART_BAR_W + 190,
                         height=24 + len(items) * CHART_ROW_H + 6, label_w=CHART_LABEL_W, bar_w=CHART_BAR_W,
                         rows=tuple(rows), max_label=money(top, currency)))
    return out


@dataclass(frozen=True, slots=True)
class RecordView:
    record: EvidenceRecord
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict | list):
        return short_json(v, 80)
    return str(v)


def record_view(e: EvidenceRecord) -> RecordView:
    rows = [r for r in e.rows[:ROWS_SHOWN]]
    cols: list[str] = []
    for r in rows:
        if isinstance(r, dict):
            for k in r:
                if k not in cols:
                    cols.append(k)
    cols = cols[:COLUMNS_SHOWN]
    if not cols:
        return RecordView(e, ("value",), tuple((_cell(r),) for r in rows))
    return RecordView(e, tuple(cols), tuple(
        tuple(_cell(r.get(k)) if isinstance(r, dict) else _cell(r) for k in cols) for r in rows))


def comparison_label(c: QueryComparison) -> str:
    return c.request


def _context(report: IncidentReport) -> dict[str, Any]:
    inc = report.incident
    d = report.diagnosis
    evidence_views = [
        {"group": g, "records": [record_view(e) for e in (*g.before, *g.after)]} for g in report.evidence
    ]
    return {
        "r": report,
        "inc": inc,
        "d": d,
        "subject": inc.correlation_id or inc.app_instance_id or "—",
        "slack_url": slack_link(inc.slack_channel, inc.slack_thread_ts),
        "timeline": timeline_items(report.timeline),
        "charts": charts(report.usage_vs_ledger.instances),
        "evidence_views": evidence_views,
        "ts": ts,
        "money": money,
        "md": md,
        "short_json": short_json,
        "run_label": _run_label,
    }


def _run_label(g: RunEvidence) -> str:
    return f"run {g.run_id}" if g.run_id is not None else "not tied to a run"


def render_html(report: IncidentReport) -> str:
    return render("report/page.html.j2", **_context(report))


def render_markdown(report: IncidentReport) -> str:
    text = render("report/report.md.j2", **_context(report))
    return "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"


def refusal_html(status: int, title: str, reason: str) -> str:
    """The page of a refused or missing report (no incident data)."""
    return render("report/refused.html.j2", status=status, title=title, reason=reason)


__all__ = ["charts", "md", "money", "refusal_html", "render_html", "render_markdown", "timeline_items", "ts"]
