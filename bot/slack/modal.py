"""The reconcile modal of the shortcuts: its views, its private metadata, its submission. Pure.

- ``recon_reconcile`` (a message shortcut, "Reconcile with recon") and ``recon_open``
  (a global shortcut) open the same modal (callback id ``recon_reconcile``): first a
  view saying the message is being read (``loading_view``: ``views.open`` must come
  within 3 s of the interaction), then the form (``form_view``) pre-filled with what the
  message names (``bot.slack.mentions``) and, when it carries a CSV file, the option to
  reconcile that usage export.
- ``private_metadata`` carries where the findings go (the message's channel and thread,
  or nothing for the global shortcut, whose form has a channel picker) and the file's
  id. It comes back from Slack with the submission, so it is sealed: JSON with an
  HMAC-SHA256 (``seal``/``unseal``), and refused when altered.
- ``read_submission`` checks the form: every id as ``bot.ids`` does, at least one
  subject, a window of at most 90 days, a channel for the global one. Problems raise
  ``ModalInvalid`` with ``errors`` keyed by block id, answered to Slack as
  ``{"response_action": "errors", "errors": …}`` so they show in the modal.

Views are rendered from ``templates/slack/reconcile_modal.json.j2``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bot.diagnosis.model import Subject
from bot.errors import BadInput
from bot.ids import MAX_SINCE, validate_id
from bot.render.templating import render_json
from bot.slack.mentions import Mentions

MESSAGE_SHORTCUT = "recon_reconcile"
GLOBAL_SHORTCUT = "recon_open"
CALLBACK_ID = "recon_reconcile"
TITLE = "Reconcile with recon"  # a modal title is at most 24 characters
DEFAULT_WINDOW = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=5)
MAX_METADATA = 2000
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,20}")
_TS = re.compile(r"\d{9,11}\.\d{6}")
_FILE = re.compile(r"F[A-Z0-9]{2,30}")
Kind = Literal["message", "global"]
FIELDS = (
    ("correlation_id", "Correlation id", "corr-…", "correlation_ids"),
    ("app_instance_id", "App instance id", "ai-…", "app_instance_ids"),
    ("org_id", "Org id", "org-… (alone: every app instance of the org)", "org_ids"),
    ("project_id", "Project id", "prj-… (with its org)", "project_ids"),
)


class ModalInvalid(BadInput):
    """The submitted form has problems; ``errors``: block id → what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the modal was opened and where its findings go (its private metadata)."""

    kind: Kind
    channel: str | None = None
    thread_ts: str | None = None  # the message's thread (its parent's ts)
    file_id: str | None = None
    file_name: str | None = None


@dataclass(frozen=True, slots=True)
class ExportOffer:
    file_id: str
    name: str
    size: int


@dataclass(slots=True)
class Prefill:
    mentions: Mentions
    export: ExportOffer | None = None
    remarks: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    subject: Subject
    start: datetime
    end: datetime
    channel: str
    thread_ts: str | None
    export: ExportOffer | None


# ---------------------------------------------------------------- private metadata


def seal(origin: Origin, key: bytes) -> str:
    body = json.dumps({"k": origin.kind, "c": origin.channel, "t": origin.thread_ts, "f": origin.file_id,
                       "n": origin.file_name}, separators=(",", ":")).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def unseal(text: str, key: bytes) -> Origin:
    """The origin sealed in ``text``; BadInput when it is not one this recon sealed."""
    try:
        if len(text) > MAX_METADATA:
            raise ValueError("too long")
        body_s, mac_s = text.split(".")
        body, mac = _unb64(body_s), _unb64(mac_s)
    except (ValueError, binascii.Error):
        raise BadInput("the form's metadata is not recon's") from None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise BadInput("the form's metadata is not recon's")
    d = json.loads(body)
    origin = Origin(d["k"], d["c"], d["t"], d["f"], d["n"])
    _check_origin(origin)
    return origin


def _check_origin(o: Origin) -> None:
    ok = (o.kind in ("message", "global")
          and (o.channel is None or bool(_CHANNEL.fullmatch(o.channel)))
          and (o.thread_ts is None or bool(_TS.fullmatch(o.thread_ts)))
          and (o.file_id is None or bool(_FILE.fullmatch(o.file_id)))
          and (o.kind == "global" or (o.channel is not None and o.thread_ts is not None)))
    if not ok:
        raise BadInput("the form's metadata is not recon's")


def origin_of(shortcut: Mapping[str, Any], export: ExportOffer | None = None) -> Origin:
    """Where a shortcut's findings go: the message's thread, or (global) the channel picked."""
    if shortcut.get("type") != "message_action":
        return Origin("global")
    msg = shortcut.get("message") or {}
    channel = str((shortcut.get("channel") or {}).get("id") or "")
    thread = str(msg.get("thread_ts") or msg.get("ts") or shortcut.get("message_ts") or "")
    o = Origin("message", channel, thread, export.file_id if export else None, export.name if export else None)
    _check_origin(o)
    return o


def metadata_key(secret: bytes) -> bytes:
    """The key that seals private metadata, derived from the install's secret."""
    return hmac.new(secret, b"recon slack modal private_metadata v1", hashlib.sha256).digest()


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------- views


def loading_view(kind: Kind) -> dict[str, Any]:
    note = (":hourglass_flowing_sand: Reading the message for correlation ids, app instances, orgs, a window "
            "and a usage export…" if kind == "message" else ":hourglass_flowing_sand: Preparing the form…")
    return _render(loading=True, note=note, private_metadata="")


def done_view(note: str) -> dict[str, Any]:
    """A view with no inputs that says what happened (``response_action: update``)."""
    return _render(done=True, note=note, private_metadata="")


def form_view(origin: Origin, prefill: Prefill, now: datetime, key: bytes) -> dict[str, Any]:
    m = prefill.mentions
    fields = []
    for block_id, label, placeholder, kind in FIELDS:
        found: list[str] = getattr(m, kind)
        hint = f"Also named in the message: {', '.join(found[1:])}" if len(found) > 1 else ""
        fields.append({"block_id": block_id, "label": label, "placeholder": placeholder,
                       "value": found[0] if found else "", "hint": hint})
    end = m.end or now
    start = m.start or end - DEFAULT_WINDOW
    window_hint = ("From the message." if m.start else "The last 7 days (the message names no window).") + \
        f" At most {MAX_SINCE.days} days."
    note = ("The findings will be posted in this message's thread." if origin.kind == "message"
            else "The findings will be posted in a new thread in the channel you pick (recon must be in it).")
    if m.empty:
        note += " The message names no id recon knows the shape of: fill one in."
    export = None
    if prefill.export is not None:
        export = {"file_id": prefill.export.file_id,
                  "label": f"Reconcile the attached export {prefill.export.name}"}
    return _render(note=note, channel_picker=origin.kind == "global", fields=fields,
                   window_start=int(start.timestamp()), window_end=int(end.timestamp()), window_hint=window_hint,
                   export=export, remarks=" ".join(prefill.remarks), private_metadata=seal(origin, key))


def _render(**ctx: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"callback_id": CALLBACK_ID, "title": TITLE, "loading": False, "done": False,
                            "note": "", "channel_picker": False, "fields": [], "window_start": 0, "window_end": 0,
                            "window_hint": "", "export": None, "remarks": ""}
    view: dict[str, Any] = render_json("slack/reconcile_modal.json.j2", **(base | ctx))
    return view


# ---------------------------------------------------------------- the submission


def read_submission(view: Mapping[str, Any], key: bytes, now: datetime) -> ReconcileRequest:
    """The request a submitted form makes; ``ModalInvalid`` with every problem found."""
    try:
        origin = unseal(str(view.get("private_metadata") or ""), key)
    except BadInput as exc:
        raise ModalInvalid({"correlation_id": f"{exc}: open the form again from the shortcut."}) from None
    values = (view.get("state") or {}).get("values") or {}
    errors: dict[str, str] = {}
    ids = _ids(values, errors)
    subject = _subject(ids, errors)
    start, end = _window(values, now, errors)
    channel, thread_ts = origin.channel, origin.thread_ts
    if origin.kind == "global":
        picked = str(_element(values, "channel").get("selected_conversation") or "")
        if not _CHANNEL.fullmatch(picked):
            errors["channel"] = "Pick the channel where the findings should go."
        channel, thread_ts = picked, None
    export = None
    chosen = {o.get("value") for o in _element(values, "export").get("selected_options") or []}
    if origin.file_id and origin.file_id in chosen:
        export = ExportOffer(origin.file_id, origin.file_name or origin.file_id, 0)
    if errors:
        raise ModalInvalid(errors)
    assert subject is not None and start is not None and end is not None and channel
    return ReconcileRequest(subject, start, end, channel, thread_ts, export)


def _element(values: Mapping[str, Any], block_id: str) -> Mapping[str, Any]:
    got = (values.get(block_id) or {}).get("value")
    return got if isinstance(got, Mapping) else {}


def _ids(values: Mapping[str, Any], errors: dict[str, str]) -> dict[str, str]:
    out = {}
    for block_id, label, _, _ in FIELDS:
        raw = str(_element(values, block_id).get("value") or "").strip()
        if not raw:
            continue
        try:
            out[block_id] = validate_id(raw, label.lower())
        except BadInput as exc:
            errors[block_id] = str(exc)[:150]
    return out


def _subject(ids: dict[str, str], errors: dict[str, str]) -> Subject | None:
    corr, app, org, project = (ids.get(k) for k in ("correlation_id", "app_instance_id", "org_id", "project_id"))
    if corr or app:
        return Subject(correlation_id=corr, app_instance_id=app)
    if org:
        return Subject(org_id=org, project_id=project)
    if project and "project_id" not in errors:
        errors["project_id"] = "A project is diagnosed with its org: give the org id too."
    elif not errors:
        errors["correlation_id"] = "Give at least one: a correlation id, an app instance id or an org id."
    return None


def _window(values: Mapping[str, Any], now: datetime,
            errors: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    def when(block_id: str) -> datetime | None:
        raw = _element(values, block_id).get("selected_date_time")
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            errors[block_id] = "Pick a date and time."
            return None
        try:
            return datetime.fromtimestamp(raw, UTC)
        except (OverflowError, OSError, ValueError):
            errors[block_id] = "Pick a date and time."
            return None

    start, end = when("window_start"), when("window_end")
    if start is None or end is None:
        return None, None
    if end > now + CLOCK_SKEW:
        errors["window_end"] = "The window cannot end in the future."
    end = min(end, now)
    if start >= end:
        errors["window_start"] = "The window must start before it ends."
    elif end - start > MAX_SINCE:
        errors["window_start"] = f"The window is {(end - start).days} days long; at most {MAX_SINCE.days} are allowed."
    return start, end
