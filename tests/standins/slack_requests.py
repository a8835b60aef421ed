"""Requests as Slack sends them to the bot: bodies, headers, v0 signatures.

Each builder returns a ``SlackRequest`` — unpack it as ``body, headers = slash_command(...)``
— signed with ``DEFAULT_SIGNING_SECRET`` (or ``secret=``) at the current time (or
``timestamp=``)::

    req = slash_command(text="diagnose inv-42", response_url=slack.response_url("r1"))
    resp = await post(http, f"{bot_url}/slack/events", req)
    resp = await app.async_dispatch(bolt_request(req))          # straight into bolt

    event_callback(reaction_added("U1", "eyes", "C1", parent_ts))
    event_callback(message("C1", "", bot_id="B0ALERTS", attachments=[…]))
    block_actions([button("ack", "inc-1")], message_ts=ts)

Adversarial variants: ``req.resigned(bad_signature=True)``, ``req.resigned(stale=True)``
(signed correctly, 6 minutes old), ``req.resigned(missing="signature"|"timestamp"|"both")``,
``req.retried(1, "http_timeout")`` (``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``).
``sign(body, secret, timestamp, …)`` is the underlying function.

Field lists follow protocols.md §1 (slash command, Events API envelope, block_actions,
message / reaction events).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, urlencode

import httpx
from slack_bolt.request.async_request import AsyncBoltRequest

from tests.standins.slack import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

__all__ = [
    "DEFAULT_SIGNING_SECRET",
    "STALE_AFTER_S",
    "SlackRequest",
    "app_mention",
    "block_actions",
    "bolt_request",
    "button",
    "event_callback",
    "file_share",
    "global_shortcut",
    "message",
    "message_shortcut",
    "post",
    "reaction_added",
    "reaction_removed",
    "sign",
    "signature",
    "slash_command",
    "url_verification",
    "view_submission",
]

DEFAULT_SIGNING_SECRET = "recon-test-signing-secret"
VERIFICATION_TOKEN = "verification-token-deprecated"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
STALE_AFTER_S = 60 * 5
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

Missing = Literal["signature", "timestamp", "both"]

_counter = itertools.count(1)


def _unique() -> int:
    return next(_counter)


def _now_ts() -> str:
    """An event ts like Slack's (``"1700000000.000100"``), unique within the process."""
    us = int(time.time() * 1_000_000) + _unique()
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


# ---------------------------------------------------------------- signing


def signature(body: bytes | str, secret: str, timestamp: int | str) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` (Slack's v0 scheme)."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def sign(
    body: bytes | str,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
    *,
    content_type: str = FORM,
    bad_signature: bool = False,
    stale: bool = False,
    missing: Missing | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """The headers Slack sends with ``body``.

    ``bad_signature``: signed with another secret. ``stale``: correctly signed but with a
    timestamp 6 minutes old (``timestamp`` wins when given). ``missing``: leave out the
    signature and/or timestamp header. ``retry_num``: add ``X-Slack-Retry-Num`` /
    ``X-Slack-Retry-Reason``.
    """
    ts = timestamp if timestamp is not None else int(time.time()) - (STALE_AFTER_S + 60 if stale else 0)
    sig = signature(body, secret + "-not-the-secret" if bad_signature else secret, ts)
    headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
    if missing not in ("timestamp", "both"):
        headers["X-Slack-Request-Timestamp"] = str(ts)
    if missing not in ("signature", "both"):
        headers["X-Slack-Signature"] = sig
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


@dataclass(frozen=True, slots=True)
class SlackRequest:
    """A body and its headers; iterates as ``(body, headers)``."""

    body: bytes
    headers: dict[str, str]
    secret: str = DEFAULT_SIGNING_SECRET

    def __iter__(self) -> Iterator[Any]:
        return iter((self.body, self.headers))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", FORM)

    @property
    def timestamp(self) -> str | None:
        return self.headers.get("X-Slack-Request-Timestamp")

    def json(self) -> Any:
        """The JSON payload: the body, or the ``payload`` form field of interactions."""
        if self.content_type == JSON:
            return json.loads(self.body)
        return json.loads(parse_qs(self.text)["payload"][0])

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.text, keep_blank_values=True))

    def resigned(
        self,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        bad_signature: bool = False,
        stale: bool = False,
        missing: Missing | None = None,
    ) -> SlackRequest:
        """The same body with freshly computed signature headers (retry headers kept)."""
        keep = {k: v for k, v in self.headers.items() if k.lower().startswith("x-slack-retry-")}
        headers = sign(
            self.body,
            secret or self.secret,
            timestamp,
            content_type=self.content_type,
            bad_signature=bad_signature,
            stale=stale,
            missing=missing,
        )
        return replace(self, headers=headers | keep, secret=secret or self.secret)

    def retried(self, num: int = 1, reason: str = "http_timeout") -> SlackRequest:
        """As Slack's retry number ``num`` sends it (same body, same signature)."""
        return replace(self, headers=self.headers | {"X-Slack-Retry-Num": str(num), "X-Slack-Retry-Reason": reason})

    def with_headers(self, **headers: str) -> SlackRequest:
        return replace(self, headers=self.headers | headers)


def _signed(body: bytes, content_type: str, secret: str, timestamp: int | None) -> SlackRequest:
    return SlackRequest(body, sign(body, secret, timestamp, content_type=content_type), secret)


# ---------------------------------------------------------------- slash commands


def slash_command(
    command: str = "/recon",
    text: str = "",
    *,
    user_id: str = "U1",
    user_name: str | None = None,
    channel_id: str = "C1",
    channel_name: str = "billing-incidents",
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    """A slash command: a form-encoded POST with every field Slack sends."""
    n = _unique()
    fields: dict[str, str] = {"token": VERIFICATION_TOKEN, "team_id": team_id, "team_domain": team_domain}
    if enterprise_id is not None:
        fields["enterprise_id"] = enterprise_id
        fields["enterprise_name"] = enterprise_name or enterprise_id
    fields |= {
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "true" if enterprise_id is not None else "false",
        "response_url": response_url or f"https://hooks.slack.com/commands/{team_id}/{n}/resp{n:08d}",
        "trigger_id": trigger_id or f"{n}.{n}.trigger{n:08d}",
    }
    return _signed(urlencode(fields).encode(), FORM, secret, timestamp)


# ---------------------------------------------------------------- Events API


def event_callback(
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    authorizations: Sequence[Mapping[str, Any]] | None = None,
    authed_users: Sequence[str] | None = None,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    """The Events API envelope around ``event`` (JSON). ``event_id`` defaults to a fresh
    unique ``Ev…``; pass the same one to build a redelivery."""
    n = _unique()
    envelope: dict[str, Any] = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or f"Ev{n:09d}TEST",
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [dict(a) for a in authorizations]
        if authorizations is not None
        else [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-eyJldCI6InRlc3QiLCJuIjo{n}",
        "authed_users": list(authed_users) if authed_users is not None else [BOT_USER_ID],
    }
    return _signed(json.dumps(envelope).encode(), JSON, secret, timestamp)


def url_verification(
    challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    *,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    return _signed(json.dumps(body).encode(), JSON, secret, timestamp)


def reaction_added(
    user: str,
    reaction: str,
    channel: str,
    ts: str,
    item_user: str | None = None,
    *,
    event_ts: str | None = None,
) -> dict[str, Any]:
    """A ``reaction_added`` event; ``item_user`` is absent for messages not written by a
    user (webhooks, some bots), as in Slack."""
    return _reaction("reaction_added", user, reaction, channel, ts, item_user, event_ts)


def reaction_removed(
    user: str,
    reaction: str,
    channel: str,
    ts: str,
    item_user: str | None = None,
    *,
    event_ts: str | None = None,
) -> dict[str, Any]:
    return _reaction("reaction_removed", user, reaction, channel, ts, item_user, event_ts)


def _reaction(
    kind: str, user: str, reaction: str, channel: str, ts: str, item_user: str | None, event_ts: str | None
) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": kind, "user": user, "reaction": reaction}
    if item_user is not None:
        ev["item_user"] = item_user
    ev["item"] = {"type": "message", "channel": channel, "ts": ts}
    ev["event_ts"] = event_ts or _now_ts()
    return ev


def message(
    channel: str,
    text: str = "",
    user: str | None = None,
    bot_id: str | None = None,
    subtype: str | None = None,
    thread_ts: str | None = None,
    attachments: Sequence[Mapping[str, Any]] | None = None,
    blocks: Sequence[Mapping[str, Any]] | None = None,
    ts: str | None = None,
    *,
    username: str | None = None,
    app_id: str | None = None,
    channel_type: str = "channel",
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``message`` event (``message.channels``). A modern bot message has ``bot_id``
    (+ ``bot_profile``, ``app_id``) and no subtype; a classic integration has
    ``subtype="bot_message"`` with ``username``; a user message has ``user``."""
    ts = ts or _now_ts()
    ev: dict[str, Any] = {"type": "message"}
    if subtype is not None:
        ev["subtype"] = subtype
    ev["text"] = text
    if user is not None:
        ev["user"] = user
    if bot_id is not None:
        ev["bot_id"] = bot_id
        if subtype == "bot_message":
            ev["username"] = username or "alerts"
        else:
            aid = app_id or ("A" + bot_id[1:])
            ev["app_id"] = aid
            ev["bot_profile"] = {
                "id": bot_id,
                "app_id": aid,
                "name": username or "alerts",
                "deleted": False,
                "team_id": team,
            }
    if attachments is not None:
        ev["attachments"] = [dict(a) for a in attachments]
    if blocks is not None:
        ev["blocks"] = [dict(b) for b in blocks]
    ev["ts"] = ts
    if thread_ts is not None:
        ev["thread_ts"] = thread_ts
        if user is not None or bot_id is not None:
            ev["parent_user_id"] = BOT_USER_ID
    if user is not None or bot_id is not None:
        ev["team"] = team
    ev["channel"] = channel
    ev["event_ts"] = ts
    ev["channel_type"] = channel_type
    return ev


def app_mention(
    user: str, text: str, channel: str, *, ts: str | None = None, thread_ts: str | None = None
) -> dict[str, Any]:
    """An ``app_mention`` event (text carries ``<@U0RECON>``)."""
    ts = ts or _now_ts()
    ev: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "team": TEAM_ID,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        ev["thread_ts"] = thread_ts
    return ev


# ---------------------------------------------------------------- interactivity


def button(
    action_id: str, value: str, *, block_id: str | None = None, text: str | None = None, action_ts: str | None = None
) -> dict[str, Any]:
    """One ``actions[]`` entry of a button click."""
    return {
        "action_id": action_id,
        "block_id": block_id or f"blk-{action_id}",
        "text": {"type": "plain_text", "text": text or action_id, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": action_ts or _now_ts(),
    }


def block_actions(
    actions: Sequence[Mapping[str, Any]],
    *,
    user_id: str = "U1",
    user_name: str | None = None,
    channel_id: str = "C1",
    channel_name: str = "billing-incidents",
    message_ts: str = "1700000000.000100",
    message: Mapping[str, Any] | None = None,
    container: Mapping[str, Any] | None = None,
    thread_ts: str | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    state: Mapping[str, Any] | None = None,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    """A ``block_actions`` interaction on a message: form body ``payload=<JSON>``.
    ``message`` defaults to a minimal bot message at ``message_ts``."""
    n = _unique()
    msg = (
        dict(message)
        if message is not None
        else {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": "",
            "ts": message_ts,
            "team": team_id,
            "blocks": [],
        }
    )
    if thread_ts is not None:
        msg.setdefault("thread_ts", thread_ts)
    cont = (
        dict(container)
        if container is not None
        else {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False}
    )
    if thread_ts is not None and container is None:
        cont["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_name or user_id.lower(),
            "name": user_name or user_id.lower(),
            "team_id": team_id,
        },
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": cont,
        "trigger_id": trigger_id or f"{n}.{n}.trigger{n:08d}",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": msg,
        "state": dict(state) if state is not None else {"values": {}},
        "response_url": response_url or f"https://hooks.slack.com/actions/{team_id}/{n}/resp{n:08d}",
        "actions": [dict(a) for a in actions],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return _signed(body, FORM, secret, timestamp)


def _interaction(payload: dict[str, Any], secret: str, timestamp: int | None) -> SlackRequest:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return _signed(body, FORM, secret, timestamp)


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def message_shortcut(
    callback_id: str,
    message: Mapping[str, Any],
    *,
    trigger_id: str,
    channel_id: str = "C1",
    channel_name: str = "billing-disputes",
    user_id: str = "U1",
    team_id: str = TEAM_ID,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    """A message shortcut (``message_action``) on ``message`` (a message event's fields:
    text, attachments, blocks, files…); ``trigger_id`` from ``SlackStandIn.trigger()``."""
    n = _unique()
    payload: dict[str, Any] = {
        "type": "message_action", "token": VERIFICATION_TOKEN, "action_ts": _now_ts(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN}, "user": _user(user_id, team_id),
        "channel": {"id": channel_id, "name": channel_name}, "is_enterprise_install": False,
        "enterprise": None, "callback_id": callback_id, "trigger_id": trigger_id,
        "response_url": f"https://hooks.slack.com/app/{team_id}/{n}/resp{n:08d}",
        "message_ts": message["ts"], "message": {"type": "message", **dict(message)},
    }
    return _interaction(payload, secret, timestamp)


def global_shortcut(
    callback_id: str,
    *,
    trigger_id: str,
    user_id: str = "U1",
    team_id: str = TEAM_ID,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    """A global shortcut (``shortcut``): no channel, no message."""
    payload = {
        "type": "shortcut", "token": VERIFICATION_TOKEN, "action_ts": _now_ts(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN}, "user": _user(user_id, team_id),
        "is_enterprise_install": False, "enterprise": None, "callback_id": callback_id, "trigger_id": trigger_id,
    }
    return _interaction(payload, secret, timestamp)


def view_submission(
    view: Mapping[str, Any],
    values: Mapping[str, Mapping[str, Any]],
    *,
    user_id: str = "U1",
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
) -> SlackRequest:
    """A ``view_submission`` of ``view`` (as ``views.open``/``views.update`` answered it,
    or ``View.to_api()`` of the stand-in) with ``values``: ``{block_id: {action_id: value}}``
    where value is the element's state (``{"type": "plain_text_input", "value": "…"}``)."""
    n = _unique()
    v = dict(view)
    v["state"] = {"values": {b: dict(a) for b, a in values.items()}}
    payload = {
        "type": "view_submission", "team": {"id": team_id, "domain": TEAM_DOMAIN}, "user": _user(user_id, team_id),
        "api_app_id": APP_ID, "token": VERIFICATION_TOKEN, "trigger_id": trigger_id or f"{n}.{n}.trigger{n:08d}",
        "view": v, "response_urls": [], "is_enterprise_install": False, "enterprise": None,
    }
    return _interaction(payload, secret, timestamp)


def file_share(
    channel: str,
    files: Sequence[Mapping[str, Any]],
    *,
    user: str = "U1",
    text: str = "",
    thread_ts: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """A ``message`` event of subtype ``file_share``: a person shared ``files``
    (``SlackFile.to_api()``), in ``thread_ts``'s thread when given."""
    ev = message(channel, text, user=user, subtype="file_share", thread_ts=thread_ts, ts=ts)
    ev["files"] = [dict(f) for f in files]
    ev["upload"] = False
    ev["display_as_bot"] = False
    return ev


# ---------------------------------------------------------------- sending


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes | SlackRequest,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST a built request (or a raw body with ``headers``) to the bot."""
    if isinstance(body, SlackRequest):
        raw, hdrs = body.body, dict(body.headers)
    else:
        raw, hdrs = body, {}
    if headers is not None:
        hdrs |= dict(headers)
    return await client.post(url, content=raw, headers=hdrs)


def bolt_request(req: SlackRequest) -> AsyncBoltRequest:
    """An ``AsyncBoltRequest`` for ``await app.async_dispatch(...)`` (no HTTP server)."""
    return AsyncBoltRequest(body=req.text, headers={k.lower(): [v] for k, v in req.headers.items()})
