"""OTLP/Tempo trace JSON: parse it into ``Span``s, and write it back.

Accepted documents (protocols.md §5, §6), all parsed by ``parse_trace_json``:

* Tempo v1 ``GET /api/traces/<id>``: ``{"batches": [ResourceSpans…]}``
* Tempo v2 ``GET /api/v2/traces/<id>``: ``{"trace": {"resourceSpans": […]}, …}``
  (``{"trace": {}}`` when not found)
* ``tempo-cli query api trace-id`` and OTLP exports: ``{"resourceSpans": […]}``
* Grafana's "download trace": the same shapes with hex ids

Ids come as base64 (Tempo's gogo jsonpb: 16-byte trace id, 8-byte span id) or hex
(OTLP spec, Grafana) and are normalised to lowercase hex (32 / 16 characters). Scope
lists are ``scopeSpans`` or the older ``instrumentationLibrarySpans``. Status and kind
enums may be names (``STATUS_CODE_ERROR``) or ints (2). 64-bit numbers may be strings.
Anything else is a ``ValueError`` with a message saying where; callers turn it into
``SourceError``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bot.diagnosis.model import Span

__all__ = [
    "datetime_to_ns",
    "encode_trace_json",
    "normalize_id",
    "ns_to_datetime",
    "parse_trace_json",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
UNKNOWN_SERVICE = "unknown_service"

_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_STATUS_BY_NAME: dict[str, Literal["unset", "ok", "error"]] = {
    "STATUS_CODE_UNSET": "unset",
    "STATUS_CODE_OK": "ok",
    "STATUS_CODE_ERROR": "error",
    "UNSET": "unset",
    "OK": "ok",
    "ERROR": "error",
}
_STATUS_BY_INT: dict[int, Literal["unset", "ok", "error"]] = {0: "unset", 1: "ok", 2: "error"}
_STATUS_NAME = {"unset": "STATUS_CODE_UNSET", "ok": "STATUS_CODE_OK", "error": "STATUS_CODE_ERROR"}

TraceStyle = Literal["v1", "v2", "tempo-cli"]
IdEncoding = Literal["base64", "hex"]


# ---------------------------------------------------------------- time and ids


def ns_to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch as an aware UTC datetime (truncated to microseconds)."""
    return EPOCH + timedelta(microseconds=ns // 1000)


def datetime_to_ns(t: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (exact, no float)."""
    return ((t - EPOCH) // timedelta(microseconds=1)) * 1000


def normalize_id(value: Any, nbytes: int, what: str = "id") -> str:
    """A hex or base64 id of ``nbytes`` bytes as lowercase hex of ``2 * nbytes`` chars."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) == 2 * nbytes and _HEX_RE.fullmatch(value):
        return value.lower()
    raw: bytes | None = None
    padded = value + "=" * (-len(value) % 4)
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(padded.encode("ascii"), altchars=altchars, validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == nbytes:
            return raw.hex()
    if len(value) < 2 * nbytes and _HEX_RE.fullmatch(value):
        # hex with leading zeros stripped (Tempo search ids)
        return value.lower().rjust(2 * nbytes, "0")
    raise ValueError(f"{what} {value[:64]!r} is neither {nbytes}-byte hex nor base64")


def _encode_id(hex_id: str, encoding: IdEncoding) -> str:
    if encoding == "hex":
        return hex_id
    return base64.b64encode(bytes.fromhex(hex_id)).decode("ascii")


def as_int(value: Any, what: str) -> int:
    """An OTLP 64-bit integer, a JSON number or a decimal string."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be an integer or a decimal string, got {value!r}")


# ---------------------------------------------------------------- AnyValue


def any_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` JSON object as a plain Python value."""
    if not isinstance(v, Mapping):
        raise ValueError(f"attribute value must be an object, got {v!r}")
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return as_int(v["intValue"], "intValue")
    if "doubleValue" in v:
        d = v["doubleValue"]
        try:
            return float(d)
        except (TypeError, ValueError):
            raise ValueError(f"doubleValue {d!r} is not a number") from None
    if "arrayValue" in v:
        arr = v["arrayValue"] or {}
        if not isinstance(arr, Mapping):
            raise ValueError("arrayValue must be an object")
        return [any_value(x) for x in _list(arr.get("values"), "arrayValue.values")]
    if "kvlistValue" in v:
        kv = v["kvlistValue"] or {}
        if not isinstance(kv, Mapping):
            raise ValueError("kvlistValue must be an object")
        return attributes(kv.get("values"))
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None  # an empty AnyValue


def attributes(items: Any) -> dict[str, Any]:
    """A list of OTLP ``KeyValue`` as a dict."""
    out: dict[str, Any] = {}
    for kv in _list(items, "attributes"):
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            raise ValueError(f"attribute must be an object with a string key, got {kv!r}")
        out[kv["key"]] = any_value(kv.get("value", {}))
    return out


def _encode_value(v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, Mapping):
        return {"kvlistValue": {"values": _encode_attributes(v)}}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_encode_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _encode_attributes(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _encode_value(v)} for k, v in attrs.items()]


# ---------------------------------------------------------------- parse


def _list(v: Any, what: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise ValueError(f"{what} must be a list, got {type(v).__name__}")
    return v


def _resource_spans(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, Mapping):
        raise ValueError(f"trace document must be a JSON object, got {type(doc).__name__}")
    if "trace" in doc:
        inner = doc["trace"]
        if inner is None:
            return []
        if not isinstance(inner, Mapping):
            raise ValueError("'trace' must be an object")
        return _resource_spans(inner)
    if "batches" in doc:
        return _list(doc["batches"], "batches")
    if "resourceSpans" in doc:
        return _list(doc["resourceSpans"], "resourceSpans")
    if not doc:
        return []
    keys = ", ".join(sorted(str(k) for k in doc)[:8])
    raise ValueError(f"trace document has none of 'batches', 'resourceSpans', 'trace' (keys: {keys})")


def _status(span: Mapping[str, Any]) -> Literal["unset", "ok", "error"]:
    return status_of(span.get("status"))


def status_of(st: Any) -> Literal["unset", "ok", "error"]:
    """A span's ``status`` object (or null) as its code's name."""
    st = st or {}
    if not isinstance(st, Mapping):
        raise ValueError("span status must be an object")
    code = st.get("code", 0)
    if isinstance(code, str):
        if code in _STATUS_BY_NAME:
            return _STATUS_BY_NAME[code]
        if code.isdigit():
            code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and code in _STATUS_BY_INT:
        return _STATUS_BY_INT[code]
    raise ValueError(f"unknown span status code {code!r}")


def _span(raw: Any, service: str) -> Span:
    if not isinstance(raw, Mapping):
        raise ValueError("span must be an object")
    parent = raw.get("parentSpanId")
    return Span(
        trace_id=normalize_id(raw.get("traceId"), TRACE_ID_BYTES, "traceId"),
        span_id=normalize_id(raw.get("spanId"), SPAN_ID_BYTES, "spanId"),
        parent_span_id=normalize_id(parent, SPAN_ID_BYTES, "parentSpanId") if parent else None,
        service=service,
        name=str(raw.get("name", "")),
        status=_status(raw),
        start=ns_to_datetime(as_int(raw.get("startTimeUnixNano", 0), "startTimeUnixNano")),
        end=ns_to_datetime(as_int(raw.get("endTimeUnixNano", 0), "endTimeUnixNano")),
        attributes=attributes(raw.get("attributes")),
    )


def parse_trace_json(doc: Any) -> list[Span]:
    """Every span of a trace document (any accepted shape), in document order."""
    spans: list[Span] = []
    for i, rs in enumerate(_resource_spans(doc)):
        if not isinstance(rs, Mapping):
            raise ValueError(f"resourceSpans[{i}] must be an object")
        resource = rs.get("resource") or {}
        if not isinstance(resource, Mapping):
            raise ValueError(f"resourceSpans[{i}].resource must be an object")
        service = attributes(resource.get("attributes")).get("service.name") or UNKNOWN_SERVICE
        scopes = rs.get("scopeSpans")
        if scopes is None:
            scopes = rs.get("instrumentationLibrarySpans")
        for j, ss in enumerate(_list(scopes, f"resourceSpans[{i}].scopeSpans")):
            if not isinstance(ss, Mapping):
                raise ValueError(f"resourceSpans[{i}].scopeSpans[{j}] must be an object")
            for k, raw in enumerate(_list(ss.get("spans"), "spans")):
                try:
                    spans.append(_span(raw, str(service)))
                except ValueError as e:
                    raise ValueError(f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]: {e}") from None
    return spans


# ---------------------------------------------------------------- encode


def encode_trace_json(
    spans: Sequence[Span], style: TraceStyle = "v2", id_encoding: IdEncoding = "base64"
) -> dict[str, Any]:
    """Spans as a Tempo/OTLP JSON document: ``v1`` (``batches``), ``v2`` (``trace``)
    or ``tempo-cli`` (``resourceSpans``). One ResourceSpans per service, in first-seen
    order. Zero values are left out, as jsonpb does."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        raw: dict[str, Any] = {
            "traceId": _encode_id(s.trace_id, id_encoding),
            "spanId": _encode_id(s.span_id, id_encoding),
        }
        if s.parent_span_id:
            raw["parentSpanId"] = _encode_id(s.parent_span_id, id_encoding)
        raw["name"] = s.name
        raw["kind"] = "SPAN_KIND_INTERNAL"
        raw["startTimeUnixNano"] = str(datetime_to_ns(s.start))
        raw["endTimeUnixNano"] = str(datetime_to_ns(s.end))
        if s.attributes:
            raw["attributes"] = _encode_attributes(s.attributes)
        raw["status"] = {} if s.status == "unset" else {"code": _STATUS_NAME[s.status]}
        by_service.setdefault(s.service, []).append(raw)
    resource_spans = [
        {
            "resource": {"attributes": _encode_attributes({"service.name": service})},
            "scopeSpans": [{"scope": {"name": "recon"}, "spans": raws}],
        }
        for service, raws in by_service.items()
    ]
    if style == "v1":
        return {"batches": resource_spans}
    if style == "tempo-cli":
        return {"resourceSpans": resource_spans}
    if style == "v2":
        return {"trace": {"resourceSpans": resource_spans} if resource_spans else {}, "metrics": {}}
    raise ValueError(f"unknown trace style {style!r}")
