"""Write a platform's logs and traces as an offline evidence folder (protocols.md §6).

Layout::

    <folder>/logs/<service>.jsonl    logcli ``query --output=jsonl`` lines, oldest first:
        {"labels": {"service": "gpuaas-api", "env": "prod", "level": "info"},
         "line": "<the JSON log line, as a string>",
         "timestamp": "2026-01-01T00:00:00.123456Z"}
        (RFC3339Nano in UTC as Go prints it: trailing zeros of the fraction dropped)
    <folder>/traces/<trace_id>.json  one trace per file, Tempo's v1 JSON
        {"batches": [{"resource": …, "scopeSpans": [{"scope": …, "spans": […]}]}]}
        with base64 ids, string enums, uint64 as strings and zero values left out;
        every ``v2_every``-th trace (in trace-id order) in the v2 shape
        {"trace": {"resourceSpans": […]}} with hex ids, so readers meet both.

The ``logs/`` and ``traces/`` subfolders are replaced wholesale: everything is written
into a staging folder next to them (each file temp + rename), then swapped in by
rename, and the previous content removed. Other entries in ``folder`` are left alone.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.diagnosis.model import LogEvent, Span
from bot.fsutil import write_atomic
from bot.scenario.platform import Platform

__all__ = ["rfc3339_nano", "span_kind", "trace_document", "write_evidence"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = {
    "outbox.publish": "SPAN_KIND_PRODUCER",
    "billing.handle_usage": "SPAN_KIND_CONSUMER",
    "billing.post_ledger": "SPAN_KIND_INTERNAL",
}


def rfc3339_nano(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: up to 9 fractional digits, trailing zeros cut."""
    u = t.astimezone(UTC)
    base = u.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{u.microsecond:06d}000".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def _ns(t: datetime) -> str:
    d = t - _EPOCH
    return str((d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000)


def span_kind(name: str) -> str:
    return _KINDS.get(name, "SPAN_KIND_SERVER")


def _any_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attributes(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_value(v)} for k, v in attrs.items() if v is not None]


def _id(hex_id: str, *, b64: bool) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode("ascii") if b64 else hex_id


def _span_json(s: Span, *, b64: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": _id(s.trace_id, b64=b64),
        "spanId": _id(s.span_id, b64=b64),
    }
    if s.parent_span_id:
        out["parentSpanId"] = _id(s.parent_span_id, b64=b64)
    out.update(
        {
            "name": s.name,
            "kind": span_kind(s.name),
            "startTimeUnixNano": _ns(s.start),
            "endTimeUnixNano": _ns(s.end),
            "attributes": _attributes(s.attributes),
            "status": (
                {"code": "STATUS_CODE_ERROR"}
                if s.status == "error"
                else {"code": "STATUS_CODE_OK"} if s.status == "ok" else {}
            ),
        }
    )
    return out


def trace_document(spans: Iterable[Span], *, v2: bool = False) -> dict[str, Any]:
    """One trace as Tempo returns it: v1 ``batches`` with base64 ids, or v2 with hex ids."""
    by_service: dict[str, list[Span]] = defaultdict(list)
    for s in sorted(spans, key=lambda s: (s.start, s.span_id)):
        by_service[s.service].append(s)
    resource_spans = [
        {
            "resource": {"attributes": _attributes({"service.name": service})},
            "scopeSpans": [
                {
                    "scope": {"name": "gpuaas"},
                    "spans": [_span_json(s, b64=not v2) for s in group],
                }
            ],
        }
        for service, group in by_service.items()
    ]
    if v2:
        return {"trace": {"resourceSpans": resource_spans}}
    return {"batches": resource_spans}


def _jsonl_entry(e: LogEvent) -> str:
    labels = dict(e.labels) or {"service": e.service, "env": "prod"}
    return json.dumps(
        {
            "labels": labels,
            "line": json.dumps(dict(e.line), separators=(",", ":")),
            "timestamp": rfc3339_nano(e.ts),
        },
        separators=(",", ":"),
    )




def _swap_in(staged: Path, target: Path) -> None:
    """Replace ``target`` (a folder, maybe absent) by ``staged`` via renames."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_evidence(platform: Platform, folder: Path, *, v2_every: int = 3) -> dict[str, int]:
    """Write ``logs/`` and ``traces/`` for the platform under ``folder``.

    Returns counts: ``log_lines``, ``log_files``, ``traces``, ``traces_v2``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".evidence-staging-", dir=folder))
    try:
        logs_dir = staging / "logs"
        traces_dir = staging / "traces"
        logs_dir.mkdir()
        traces_dir.mkdir()
        by_service: dict[str, list[LogEvent]] = defaultdict(list)
        for e in platform.logs:
            by_service[e.service].append(e)
        for service in sorted(by_service):
            events = sorted(by_service[service], key=lambda e: e.ts)
            text = "".join(_jsonl_entry(e) + "\n" for e in events)
            write_atomic(logs_dir / f"{service}.jsonl", text)
        by_trace: dict[str, list[Span]] = defaultdict(list)
        for s in platform.spans:
            by_trace[s.trace_id].append(s)
        n_v2 = 0
        for n, trace_id in enumerate(sorted(by_trace)):
            v2 = v2_every > 0 and n % v2_every == v2_every - 1
            n_v2 += v2
            doc = trace_document(by_trace[trace_id], v2=v2)
            write_atomic(traces_dir / f"{trace_id}.json", json.dumps(doc, separators=(",", ":")))
        _swap_in(logs_dir, folder / "logs")
        _swap_in(traces_dir, folder / "traces")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "log_lines": len(platform.logs),
        "log_files": len(by_service),
        "traces": len(by_trace),
        "traces_v2": n_v2,
    }
