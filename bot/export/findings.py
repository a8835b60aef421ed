"""Rule 8's breaks as ``export_mismatch`` findings: one per app instance, in words.

A finding names the lines' ledger entry and usage row ids and says what differs, e.g.
"14 usage lines of ai-7 shown as allocation, stored as app_runtime". Its customer
impact is 0: the ledger, not the export, is what is charged. Owning layer ``ui_export``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from bot.diagnosis.model import Finding
from bot.export.lines import USAGE_COLUMNS, differences, show
from bot.export.reconcile import Break, BreakKind

MAX_IDS = 200
MAX_PHRASES = 4
MAX_EXAMPLES = 5


def export_findings(breaks: Sequence[Break], org_id: str, months: Sequence[str],
                    counts: dict[BreakKind, int]) -> list[Finding]:
    """One ``export_mismatch`` finding per app instance (``None``: lines of no instance)."""
    groups: dict[str | None, list[Break]] = defaultdict(list)
    for b in breaks:
        groups[b.app_instance_id].append(b)
    where = ", ".join(months) or "the export's months"
    out = [_finding(aid, group, org_id, where) for aid, group in sorted(groups.items(), key=lambda kv: kv[0] or "")]
    untold = sum(counts.values()) - len(breaks)
    if untold > 0 and out:
        out[-1].evidence.append(f"… and {untold:,} more breaks of the export, counted but not detailed")
    return out


def _finding(aid: str | None, group: list[Break], org_id: str, where: str) -> Finding:
    of = f" of {aid}" if aid else ""
    phrases: list[str] = []
    differs = [b for b in group if b.kind == "differs"]
    if differs:
        phrases.extend(_differences(differs, of))
    for kind, words in (
        ("missing", f"ledger entr{{ies}}{of} posted in {where} on no line of the export"),
        ("unknown", f"line{{s}}{of} naming no ledger entry of {org_id} posted in {where}"),
        ("repeated", f"ledger entr{{ies}}{of} on more than one line"),
    ):
        n = sum(1 for b in group if b.kind == kind)
        if n:
            ids = ", ".join(b.ledger_entry_id for b in group if b.kind == kind)
            phrases.append(f"{n} {_plural(words, n)} ({_cut(ids)})")
    projects = {side.project_id for b in group for side in (b.stored, b.shown) if side is not None}
    usage_ids = _ids(side.usage_record_id for b in group for side in (b.stored, b.shown) if side is not None)
    return Finding(
        check="export_mismatch",
        app_instance_id=aid,
        org_id=org_id,
        project_id=projects.pop() if len(projects) == 1 else None,
        owning_layer="ui_export",
        usage_record_ids=usage_ids,
        ledger_entry_ids=_ids(b.ledger_entry_id for b in group),
        summary="; ".join(phrases[:MAX_PHRASES])
        + (f"; and {len(phrases) - MAX_PHRASES} more" if len(phrases) > MAX_PHRASES else ""),
        impact_minor=0,
        evidence=[_example(b) for b in group[:MAX_EXAMPLES]],
    )


def _differences(differs: list[Break], of: str) -> list[str]:
    by: Counter[tuple[str, str, str]] = Counter()
    for b in differs:
        assert b.shown is not None and b.stored is not None
        for col, shown, stored in differences(b.shown, b.stored):
            by[(col, show(shown), show(stored))] += 1
    out = []
    for (col, shown, stored), n in by.most_common():
        if col == "usage_source":
            out.append(f"{n} usage line{'s' if n > 1 else ''}{of} shown as {shown}, stored as {stored}")
        else:
            whose = "usage row" if col in USAGE_COLUMNS else "ledger entry"
            out.append(f"{n} line{'s' if n > 1 else ''}{of} show {col} {shown} where the {whose} has {stored}")
    return out


def _example(b: Break) -> str:
    at = f"line {b.line_no}: " if b.line_no else ""
    if b.kind == "differs" and b.shown is not None and b.stored is not None:
        diff = ", ".join(f"{c} {show(s)} (stored {show(t)})" for c, s, t in differences(b.shown, b.stored))
        return f"{at}ledger entry {b.ledger_entry_id}: {diff}"
    if b.kind == "missing":
        return f"ledger entry {b.ledger_entry_id} is on no line"
    if b.kind == "repeated":
        return f"{at}ledger entry {b.ledger_entry_id} is on {b.copies} lines"
    return f"{at}ledger entry {b.ledger_entry_id} is not an entry of the export's org and months"


def _plural(words: str, n: int) -> str:
    return words.replace("{ies}", "ies" if n > 1 else "y").replace("{s}", "s" if n > 1 else "")


def _cut(ids: str, n: int = 120) -> str:
    return ids if len(ids) <= n else ids[:n].rsplit(", ", 1)[0] + ", …"


def _ids(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))[:MAX_IDS]
