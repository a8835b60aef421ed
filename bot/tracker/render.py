"""Ticket bodies and comments: one small document model, drawn as GitHub Markdown or as
Jira's Atlassian Document Format (ADF).

Everything that comes from outside (ids, check names, evidence names) goes into code
spans (Markdown: no emphasis, no ``@mention``, no HTML; ADF: a ``code`` mark), capped;
links are only http(s) URLs. The marker that identifies a ticket or a comment is an HTML
comment in Markdown (hidden) and a last paragraph in ADF.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.tracker.model import MAX_LISTED, Change, TicketSpec

MAX_CODE = 200  # characters of one id or name in a code span


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Code:
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    url: str


Inline = Text | Code | Link


@dataclass(frozen=True, slots=True)
class Block:
    kind: str  # "heading" | "para" | "bullets"
    lines: tuple[tuple[Inline, ...], ...]


@dataclass(frozen=True, slots=True)
class Doc:
    blocks: tuple[Block, ...]
    marker: str


def heading(text: str) -> Block:
    return Block("heading", ((Text(text),),))


def para(*parts: Inline) -> Block:
    return Block("para", (tuple(parts),))


def bullets(items: Sequence[Sequence[Inline]]) -> Block:
    return Block("bullets", tuple(tuple(i) for i in items))


def _cap(s: str, n: int = MAX_CODE) -> str:
    s = s.replace("\n", " ").replace("\r", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def _safe_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def _code_list(values: Sequence[str]) -> list[list[Inline]]:
    items: list[list[Inline]] = [[Code(v)] for v in list(values)[:MAX_LISTED]]
    if len(values) > MAX_LISTED:
        items.append([Text(f"… and {len(values) - MAX_LISTED} more")])
    return items


def _impact_items(impact: Sequence[tuple[str, int]]) -> list[list[Inline]]:
    return [[Code(cur), Text(f": {amount:+,} minor units")] for cur, amount in impact]


def _section(blocks: list[Block], title: str, items: list[list[Inline]]) -> None:
    if items:
        blocks += [heading(title), bullets(items)]


def ticket_doc(spec: TicketSpec) -> Doc:
    f = spec.follow_up
    link = _safe_url(spec.report_url)
    blocks: list[Block] = [
        para(Text("recon found drift that the "), Code(spec.layer), Text(" layer owns, in incident "),
             Link(spec.incident_id, link) if link else Code(spec.incident_id), Text(".")),
        heading("What to fix"), para(Text(f.fix)),
    ]
    _section(blocks, f"Failed checks ({f.findings} findings)", [[Code(c)] for c in f.checks])
    _section(blocks, "Customer impact per currency (positive: overcharged)", _impact_items(sorted(f.impact.items())))
    _section(blocks, "Affected app instances", _code_list(f.app_instance_ids))
    _section(blocks, "Correlation ids", _code_list(spec.correlation_ids))
    _section(blocks, "Trace ids", _code_list(spec.trace_ids))
    _section(blocks, "Usage records", _code_list(f.usage_record_ids))
    _section(blocks, "Ledger entries", _code_list(f.ledger_entry_ids))
    _section(blocks, "Evidence (sha256 over all rows)", [
        [Code(e.name), Text(" — "), Code(e.sha256), Text(f" ({e.rows} rows)")] for e in spec.evidence[:MAX_LISTED]])
    if link:
        blocks.append(para(Text("The incident's report: "), Link("timeline, evidence and impact", link),
                           Text(" (the link expires).")))
    return Doc(tuple(blocks), spec.marker)


def change_doc(spec: TicketSpec, change: Change, comment_marker: str) -> Doc:
    blocks: list[Block] = [para(Text("recon diagnosed incident "), Code(spec.incident_id),
                                Text(" again; for this layer:"))]
    _section(blocks, "New findings", _labelled("check ", change.new_checks)
             + _labelled("app instance ", change.new_instances[:MAX_LISTED]))
    _section(blocks, "Resolved", _labelled("check ", change.resolved_checks)
             + _labelled("app instance ", change.resolved_instances[:MAX_LISTED]))
    if change.impact_before != change.impact_after or change.findings_before != change.findings_after:
        blocks.append(para(Text(f"Findings: {change.findings_before} → {change.findings_after}. Impact before: "
                                f"{_impact_text(change.impact_before)}; now: {_impact_text(change.impact_after)}.")))
    link = _safe_url(spec.report_url)
    if link:
        blocks.append(para(Link("The incident's report", link), Text(".")))
    return Doc(tuple(blocks), comment_marker)


def recovered_doc(incident_id: str, layer: str, report_url: str | None, comment_marker: str) -> Doc:
    blocks = [para(Text("recon verified incident "), Code(incident_id),
                   Text(" recovered: all four recovery criteria hold. The "), Code(layer),
                   Text(" follow-up can be closed once its fix is in."))]
    link = _safe_url(report_url)
    if link:
        blocks.append(para(Link("The incident's report", link), Text(".")))
    return Doc(tuple(blocks), comment_marker)


def _labelled(label: str, values: Sequence[str]) -> list[list[Inline]]:
    return [[Text(label), Code(v)] for v in values]


def _impact_text(impact: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{_cap(c, 8)} {v:+,}" for c, v in impact) or "none"


# ------------------------------------------------------------ Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>~@&!])")
_MD_LEADING = re.compile(r"^(\s*)([#+\-=]|\d+[.)])")


def md_escape(text: str) -> str:
    """Inline text: no emphasis, links, HTML, tables, mentions; nothing that starts a
    heading or list at the start of a line."""
    text = _MD_SPECIAL.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))
    return _MD_LEADING.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def _md_inline(part: Inline) -> str:
    if isinstance(part, Code):
        return "`" + _cap(part.text).replace("`", "'") + "`"
    if isinstance(part, Link):
        url = part.url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        return f"[{md_escape(part.text)}]({url})"
    return md_escape(part.text)


def to_markdown(doc: Doc) -> str:
    out: list[str] = []
    for b in doc.blocks:
        lines = ["".join(_md_inline(p) for p in line) for line in b.lines]
        if b.kind == "heading":
            out.append("### " + lines[0])
        elif b.kind == "bullets":
            out.append("\n".join("- " + line for line in lines))
        else:
            out.append(lines[0])
    out.append(f"<!-- {doc.marker} -->")
    return "\n\n".join(out) + "\n"


# ------------------------------------------------------------ ADF


def _adf_inline(part: Inline) -> dict[str, Any]:
    text = _cap(part.text) if isinstance(part, Code) else part.text.replace("\r", " ")
    node: dict[str, Any] = {"type": "text", "text": text or " "}
    if isinstance(part, Code):
        node["marks"] = [{"type": "code"}]
    elif isinstance(part, Link):
        node["marks"] = [{"type": "link", "attrs": {"href": part.url}}]
    return node


def _adf_para(line: Sequence[Inline]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [_adf_inline(p) for p in line]}


def to_adf(doc: Doc) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for b in doc.blocks:
        if b.kind == "heading":
            content.append({"type": "heading", "attrs": {"level": 3},
                            "content": [_adf_inline(p) for p in b.lines[0]]})
        elif b.kind == "bullets":
            content.append({"type": "bulletList", "content": [
                {"type": "listItem", "content": [_adf_para(line)]} for line in b.lines]})
        else:
            content.append(_adf_para(b.lines[0]))
    content.append(_adf_para([Text(doc.marker)]))
    return {"version": 1, "type": "doc", "content": content}


def adf_text(doc: Any) -> str:
    """All the text of an ADF document (to look for a marker in it)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text" and isinstance(node.get("text"), str):
                parts.append(node["text"])
            for child in node.get("content") or ():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(doc)
    return " ".join(parts)
