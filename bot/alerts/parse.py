"""Parse alert webhook payloads: Alertmanager (version "4") and Grafana (version "1").

Both parsers take the decoded JSON document and return an ``AlertNotification`` or
raise ``PayloadError`` with a short, precise reason (``alerts[3].labels.severity
must be a string``). They are liberal where the upstream docs are (unknown fields,
``routeLabels``, ``notification_reason``, Grafana's ``values``/``valueString``/
``silenceURL``… are ignored) and strict on what triage needs: ``status``, labels
as string -> string, and a non-empty ``alerts`` list of at most ``MAX_ALERTS``.

The webhook takes an Alertmanager body by ``digest_alertmanager_json``: the same
verdict as ``parse_alertmanager``, and only what the intake keeps (a
``NotificationDigest``).

A group key longer than ``MAX_GROUP_KEY_BYTES`` (Alertmanager's grows with the route's
matchers and the group's labels, without limit) is kept as ``bounded_group_key`` of it:
its start and the SHA-256 of the whole, which identifies the group as well and fits the
store's unique index. The payload stored keeps the key as received.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from bot.alerts.model import Alert, AlertNotification, NotificationDigest, highest_severity, safe_labels

__all__ = ["MAX_ALERTS", "MAX_GROUP_KEY_BYTES", "PayloadError", "alert_fingerprint", "bounded_group_key",
           "digest_alertmanager_json", "loads_strict", "parse_alertmanager", "parse_grafana"]

MAX_ALERTS = 1000
MAX_TEXT = 64 * 1024  # longest label/annotation value/URL accepted
_STATUSES = ("firing", "resolved")
# A unique btree index takes at most ~2700 bytes per row (SQLSTATE 54000 beyond): a
# longer group key is kept as its first characters and a hash of the whole. Migration
# 011 computes the same for the keys stored before (keep them in step).
MAX_GROUP_KEY_BYTES = 1024
_GROUP_KEY_HEAD_CHARS = 200
_GROUP_KEY_HASH_MARK = "…sha256:"


class PayloadError(ValueError):
    """The payload does not have the documented shape; ``str(e)`` is the reason."""


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit fingerprint of a label set (for alerts that carry none)."""
    blob = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def bounded_group_key(key: str) -> str:
    """``key`` when it is at most ``MAX_GROUP_KEY_BYTES`` of UTF-8; else its first 200
    characters, ``…sha256:`` and the hex SHA-256 of its UTF-8 (the same for the same key,
    and at most ~870 bytes: bounding a bounded key changes nothing)."""
    data = key.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_GROUP_KEY_BYTES:
        return key
    return key[:_GROUP_KEY_HEAD_CHARS] + _GROUP_KEY_HASH_MARK + hashlib.sha256(data).hexdigest()


def parse_alertmanager(doc: object) -> AlertNotification:
    """An Alertmanager webhook payload (``version`` must be ``"4"``)."""
    d = _object(doc, "payload")
    version = d.get("version")
    if version != "4":
        raise PayloadError('version must be "4"')
    group_key = d.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise PayloadError("groupKey must be a non-empty string")
    return _notification(d, source="alertmanager", group_key=group_key, title=None)


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` without the extensions JSON does not have (NaN, Infinity):
    ``ValueError`` saying why the text is not JSON."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def digest_alertmanager_json(body: str | bytes) -> NotificationDigest:
    """``parse_alertmanager(loads_strict(body)).digest()``: the same digest or the same
    error, without a model per alert. A storm's notifications carry hundreds of alerts
    each, and all the intake keeps of them is a digest (the payload itself is stored as
    received).

    The common case is checked in one pass by msgspec: decoding, and the shape that
    ``parse_alertmanager`` accepts without changing anything; then the alerts' times, each
    distinct text once. Anything else (bad JSON, a wrong shape, annotations that are not
    all strings, unusual times) goes the way of ``parse_alertmanager``, which says what is
    wrong or takes what it can."""
    try:
        d = _ALERTMANAGER.decode(body)
        alerts = d.alerts
        for text in {a.startsAt or "" for a in alerts} | {a.endsAt or "" for a in alerts}:
            _time_text(text)  # PayloadError: the reference path says which alert
        common = d.commonLabels or {}
        first = next((a for a in alerts if a.status == "firing"), alerts[0])
        return NotificationDigest(
            source="alertmanager", group_key=bounded_group_key(d.groupKey), status=d.status,
            severity=highest_severity([common.get("severity", ""), *(a.labels.get("severity", "") for a in alerts)]),
            labels=safe_labels({**common, **first.labels}), common_annotations=d.commonAnnotations or {},
            alerts=len(alerts), firing=sum(1 for a in alerts if a.status == "firing"))
    except (msgspec.ValidationError, msgspec.DecodeError, PayloadError, RecursionError):
        return parse_alertmanager(loads_strict(body)).digest()


def parse_grafana(doc: object) -> AlertNotification:
    """A Grafana unified-alerting webhook payload (``version`` ``"1"`` or absent).

    ``groupKey`` is used when present; otherwise the group key is ``grafana:`` plus
    a stable fingerprint of (``orgId``, ``receiver``, sorted ``groupLabels``).
    """
    d = _object(doc, "payload")
    version = d.get("version")
    if version is not None and version != "1":
        raise PayloadError('version must be "1"')
    title = _opt_str(d, "title", "title")
    group_key = d.get("groupKey")
    if group_key is not None and not isinstance(group_key, str):
        raise PayloadError("groupKey must be a string")
    if not group_key:
        org_id = d.get("orgId")
        if org_id is not None and (isinstance(org_id, bool) or not isinstance(org_id, int | str)):
            raise PayloadError("orgId must be a number or a string")
        receiver = _opt_str(d, "receiver", "receiver")
        group_labels = _labels(d.get("groupLabels"), "groupLabels")
        blob = json.dumps(
            [str(org_id) if org_id is not None else "", receiver or "", sorted(group_labels.items())],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        group_key = "grafana:" + hashlib.sha256(blob.encode()).hexdigest()[:32]
    return _notification(d, source="grafana", group_key=group_key, title=title)


# ---------------------------------------------------------------- shared shape


def _notification(
    d: Mapping[str, object], *, source: Literal["alertmanager", "grafana"], group_key: str, title: str | None
) -> AlertNotification:
    status = _status(d.get("status"), "status")
    receiver = _opt_str(d, "receiver", "receiver")
    group_labels = _labels(d.get("groupLabels"), "groupLabels")
    common_labels = _labels(d.get("commonLabels"), "commonLabels")
    common_annotations = _annotations(d.get("commonAnnotations"), "commonAnnotations")
    external_url = _opt_str(d, "externalURL", "externalURL")
    truncated = d.get("truncatedAlerts", 0)
    if truncated is None:
        truncated = 0
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts must be a non-negative integer")
    raw_alerts = d.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts must be a list")
    if not raw_alerts:
        raise PayloadError("alerts must not be empty")
    if len(raw_alerts) > MAX_ALERTS:
        raise PayloadError(f"alerts has {len(raw_alerts)} entries; at most {MAX_ALERTS} are accepted")
    alerts = [_alert(a, f"alerts[{i}]") for i, a in enumerate(raw_alerts)]
    return AlertNotification(
        source=source,
        group_key=bounded_group_key(group_key),
        status=status,
        receiver=receiver,
        group_labels=group_labels,
        common_labels=common_labels,
        common_annotations=common_annotations,
        external_url=external_url,
        alerts=alerts,
        truncated_alerts=truncated,
        title=title,
    )


def _alert(raw: object, where: str) -> Alert:
    a = _object(raw, where)
    status = _status(a.get("status"), f"{where}.status")
    if "labels" not in a or a["labels"] is None:
        raise PayloadError(f"{where}.labels is missing")
    labels = _labels(a["labels"], f"{where}.labels")
    annotations = _annotations(a.get("annotations"), f"{where}.annotations")
    fingerprint = a.get("fingerprint")
    if fingerprint is None or fingerprint == "":
        fingerprint = alert_fingerprint(labels)
    elif not isinstance(fingerprint, str):
        raise PayloadError(f"{where}.fingerprint must be a string")
    return Alert(
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=_time(a.get("startsAt"), f"{where}.startsAt"),
        ends_at=_time(a.get("endsAt"), f"{where}.endsAt"),
        fingerprint=fingerprint,
        generator_url=_opt_str(a, "generatorURL", f"{where}.generatorURL") or None,
    )


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def _status(value: object, where: str) -> Literal["firing", "resolved"]:
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise PayloadError(f'{where} must be "firing" or "resolved"')


def _opt_str(d: Mapping[str, object], key: str, where: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise PayloadError(f"{where} must be a string")
    if len(v) > MAX_TEXT:
        raise PayloadError(f"{where} is longer than {MAX_TEXT} characters")
    return v


def _labels(value: object, where: str) -> dict[str, str]:
    """A label set: an object of string values (absent or null: empty). Strict."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise PayloadError(f"{where} has an empty label name")
        if not isinstance(v, str):
            raise PayloadError(f"{where}.{k} must be a string")
        if len(v) > MAX_TEXT:
            raise PayloadError(f"{where}.{k} is longer than {MAX_TEXT} characters")
        out[k] = v
    return out


def _annotations(value: object, where: str) -> dict[str, str]:
    """Annotations: an object (absent or null: empty); non-string values are dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_TEXT}


def _time(value: object, where: str) -> datetime | None:
    """An RFC 3339 time; None when absent, empty, or Go's zero time (year 1)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be an RFC 3339 time string")
    try:
        return _time_text(value)
    except PayloadError as exc:
        raise PayloadError(f"{where} {exc}") from None


@functools.lru_cache(maxsize=4096)  # a storm's alerts share their times (an evaluation's, the zero time)
def _time_text(value: str) -> datetime | None:
    """``_time`` of a string, keyed by the text alone; PayloadError says what is wrong
    without saying where."""
    if value == "":
        return None
    text = value.strip()
    if text.startswith("0001-01-01T"):
        return None
    try:
        t = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except ValueError:
        raise PayloadError(f"is not an RFC 3339 time: {value[:40]!r}") from None
    if t.tzinfo is None:
        raise PayloadError(f"has no time zone: {value[:40]!r}")
    return t.astimezone(UTC)


# ---------------------------------------------------------------- the fast path's shape
# What parse_alertmanager accepts and returns unchanged (digest_alertmanager_json):
# strings (label names non-empty, values at most MAX_TEXT), annotations all strings, a
# non-negative integer truncatedAlerts, 1..MAX_ALERTS alerts. Unknown fields are skipped,
# as there. msgspec never coerces (a number is not a string, 1.0 is not an integer).

_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_Labels = dict[Annotated[str, msgspec.Meta(min_length=1)], _Text]


class _RawAlert(msgspec.Struct, frozen=True, gc=False):
    status: Literal["firing", "resolved"]
    labels: _Labels
    annotations: dict[str, _Text] | None = None
    startsAt: str | None = None
    endsAt: str | None = None
    fingerprint: str | None = None
    generatorURL: _Text | None = None


class _RawAlertmanager(msgspec.Struct, frozen=True, gc=False):
    version: Literal["4"]
    groupKey: Annotated[str, msgspec.Meta(min_length=1)]
    status: Literal["firing", "resolved"]
    alerts: Annotated[list[_RawAlert], msgspec.Meta(min_length=1, max_length=MAX_ALERTS)]
    receiver: _Text | None = None
    groupLabels: _Labels | None = None
    commonLabels: _Labels | None = None
    commonAnnotations: dict[str, _Text] | None = None
    externalURL: _Text | None = None
    truncatedAlerts: Annotated[int, msgspec.Meta(ge=0)] | None = None


_ALERTMANAGER = msgspec.json.Decoder(_RawAlertmanager)
