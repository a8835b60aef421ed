"""``core.named``: evidence scanned once per source, then merged, names what one scan
of all of it names (the flow keeps the logs' and the rows' and merges them)."""

from __future__ import annotations

from bot.diagnosis import core
from bot.diagnosis.model import LogEvent
from bot.scenario import build_platform, demo_spec
from tests.constants import NOW


def test_the_union_of_the_parts_is_the_scan_of_the_whole() -> None:
    plat = build_platform(demo_spec(), now=NOW, seed=7)
    cid = plat.disputed_correlation_id
    logs = [e for e in plat.logs if e.correlation_id == cid]
    usage = [u for u in plat.usage if u.correlation_id == cid]
    ledger = [e for e in plat.ledger if e.correlation_id == cid]
    tids = {e.trace_id for e in logs}
    spans = [s for s in plat.spans if s.trace_id in tids]
    assert logs and usage and ledger and spans
    whole = core.identifiers(logs, usage, ledger, spans, ["ai-extra"])
    parts = (core.named(logs=logs) | core.named(usage=usage, ledger=ledger)
             | core.named(spans=spans, extra_instances=["ai-extra"]))
    assert parts.identifiers() == whole
    ids, traces = whole
    assert "ai-extra" in ids.app_instance_ids and traces == sorted(tids)


def test_only_well_formed_trace_ids_are_named() -> None:
    lines = [{"trace_id": "A" * 32}, {"trace_id": "a" * 31}, {"trace_id": "g" * 32}, {"trace_id": "A" * 32}]
    logs = [LogEvent(ts=NOW, service="api", event="x", line=line) for line in lines]
    assert core.named(logs=logs).traces == {"a" * 32}
