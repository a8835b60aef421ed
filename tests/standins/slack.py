"""A Slack Web API stand-in: the methods the bot calls, on loopback, with in-memory conversations.

Point the real client at it (``url`` ends with ``/api/``; slack_sdk joins base_url and
the method name)::

    async with SlackStandIn() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.url)
        app = AsyncApp(client=client, signing_secret=DEFAULT_SIGNING_SECRET)
        ...
        await slack.wait_for(lambda calls: any(c.method == "chat.update" for c in calls))
        assert slack.thread("C1", parent_ts)[1].text == "…"

or through the ``slack_standin`` fixture (a conftest imports it from here).

What slack_sdk 3.48 ``AsyncWebClient`` sends, and what this server accepts (it merges
query string, form body and JSON body, so any of them works for any method):

* ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``: ``POST`` JSON body
  (``application/json;charset=utf-8``), token in ``Authorization: Bearer``.
* ``auth.test``, ``reactions.add``: ``POST`` with the arguments in the *query string*
  and an empty form-encoded body.
* ``chat.getPermalink``, ``conversations.replies``, ``usergroups.users.list``,
  ``users.info``: ``GET`` with query parameters (booleans sent as ``1``/``0``).
* ``response_url`` posts (bolt's ``respond``, ``AsyncWebhookClient``): ``POST`` JSON,
  no token.

Methods served, with Slack's documented answers: ``auth.test``, ``chat.postMessage``,
``chat.update``, ``chat.postEphemeral``, ``chat.getPermalink``, ``conversations.replies``,
``reactions.add``, ``usergroups.users.list``, ``users.info``, ``views.open``,
``views.update``, ``files.info``, and the file upload flow
(``files.getUploadURLExternal``, a POST of the bytes to its ``upload_url``,
``files.completeUploadExternal``; ``files`` keeps what arrived); anything else is
``200 {"ok":false,"error":"unknown_method"}``. A request without a token gets
``not_authed``; a token not starting with ``xox`` gets ``invalid_auth``.

Deliberate strictness: a ``thread_ts`` naming a reply (not a thread's parent) is
``thread_not_found`` (protocols.md: "use the parent's ts, never a reply's"; switch off
with ``strict_thread_ts=False``, which files the reply under the parent as Slack's UI
does). ``conversations.replies`` returns ``metadata`` only with
``include_all_metadata=true``, as Slack does.

Modals (protocols.md §7): ``trigger()`` issues a trigger_id as an interaction does (the
test puts it in the signed request it sends); ``views.open`` refuses one it never issued
(``invalid_trigger_id``), one older than 3 s (``expired_trigger_id``) and one already
used (``exchanged_trigger_id``). ``views.update`` takes ``view_id`` (or ``external_id``)
and, when given, ``hash``: a stale one is ``hash_conflict``. Both check the view as Slack
does (a modal, a title of at most 24 characters, a ``submit`` when it has inputs) and
keep it in ``views``. Files: ``add_file`` stores a file someone shared (``shared``); ``files.info`` answers it with
its ``url_private_download`` on this server, where a download with a bot token gets the
bytes and one without gets Slack's HTML sign-in page with status 200 (recorded as
method ``file_download``).

``hold(method)`` keeps every answer of ``method`` until the returned event is set (to
see what a caller does while a call is pending); ``held`` lists the requests waiting.

Every request lands in ``calls`` (``SlackCall``: method, merged args, headers, arrival
time on ``time.monotonic()``, HTTP status answered, body answered), once it has been
answered; ``wait_for`` wakes on each one.

Failure modes, for the next ``times`` calls of ``method`` (``None``: every Web API
method; ``times=None``: until ``reset()``): ``rate_limit`` (429 + ``Retry-After``),
``fail`` (5xx with Slack's HTML error page), ``error`` (200 ``ok:false``),
``drop_connection`` (hang up without answering). ``delay_s`` delays every answer.
``error(..., where=pred)`` answers so only the calls whose merged args ``pred`` accepts
(one reply of a thread, say); the others are served as usual.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from tests.standins import LoopbackServer

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Ephemeral",
    "Message",
    "SlackCall",
    "SlackFile",
    "SlackStandIn",
    "UploadedFile",
    "View",
    "slack_standin",
]

TEAM_ID = "T0TEST"
TEAM_DOMAIN = "recon-test"
BOT_USER_ID = "U0RECON"
BOT_ID = "B0RECON"
APP_ID = "A0RECON"
WORKSPACE_URL = f"https://{TEAM_DOMAIN}.slack.com/"

# Slack's edge answers 5xx with an HTML page, not JSON (as python-slack-sdk's mock does).
SERVER_ERROR_HTML = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Server Error | Slack</title></head>'
    "<body><h1>Server Error</h1><p>It seems like there's a problem connecting to our servers.</p></body></html>"
)

_JSON_ARGS = ("blocks", "attachments", "metadata", "user_auth_blocks", "view")
TRIGGER_TTL_S = 3.0
MAX_TITLE = 24
SIGN_IN_HTML = ('<!DOCTYPE html><html lang="en"><head><title>Slack</title></head><body>'
                '<h1>Sign in to your workspace</h1><form action="/signin"></form></body></html>')
_MAX_BLOCKS = 50
_MAX_TEXT = 40_000


def _truthy(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    return str(v).strip().lower() in ("1", "true", "yes")


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One request the stand-in received, and what it answered.

    ``status`` is the HTTP status sent (0 when the connection was dropped on purpose);
    ``response`` the JSON body sent (a dict), the text sent for 5xx and response_url
    posts, or None for a dropped connection. ``at`` is ``time.monotonic()`` on arrival.
    """

    seq: int
    method: str  # "chat.postMessage", …; "response_url" for response_url posts
    args: Mapping[str, Any]  # query, form and JSON body merged; JSON-string blocks/metadata decoded
    headers: Mapping[str, str]  # names lower-cased
    at: float
    status: int
    response: Any
    http_method: str = "POST"
    content_type: str = ""
    path: str = ""
    token: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.response, dict) and self.response.get("ok") is True

    @property
    def error(self) -> str | None:
        if isinstance(self.response, dict):
            err = self.response.get("error")
            return str(err) if err is not None else None
        return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def brief(self) -> str:
        shown = {k: v for k, v in self.args.items() if k in ("channel", "ts", "thread_ts", "text", "name", "user")}
        outcome = "ok" if self.ok else (self.error or f"HTTP {self.status}")
        return f"#{self.seq} {self.http_method} {self.method} -> {self.status} {outcome} {shown}"


@dataclass(slots=True)
class Message:
    """A message in a stand-in channel (posted by the bot, or seeded by a test)."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = None  # the parent's ts, on replies only
    parent_user_id: str | None = None  # on replies: who wrote the parent
    metadata: dict[str, Any] | None = None
    user: str | None = BOT_USER_ID
    bot_id: str | None = BOT_ID
    subtype: str | None = None  # "thread_broadcast" for reply_broadcast replies
    edited_ts: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier versions, before each chat.update
    extra: dict[str, Any] = field(default_factory=dict)  # other posted args: unfurl_links, mrkdwn, …

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self, *, replies: Sequence[Message] = (), include_metadata: bool = True) -> dict[str, Any]:
        """The message as the Web API shows it."""
        out: dict[str, Any] = {"type": "message"}
        if self.subtype:
            out["subtype"] = self.subtype
        out["text"] = self.text
        if self.user:
            out["user"] = self.user
        if self.bot_id:
            out["bot_id"] = self.bot_id
            if self.bot_id == BOT_ID:
                out["app_id"] = APP_ID
                out["bot_profile"] = {
                    "id": BOT_ID,
                    "app_id": APP_ID,
                    "name": "recon",
                    "deleted": False,
                    "team_id": TEAM_ID,
                }
        out["ts"] = self.ts
        out["team"] = TEAM_ID
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.is_reply:
            out["thread_ts"] = self.thread_ts
            out["parent_user_id"] = self.parent_user_id or BOT_USER_ID
        elif replies:
            users = list(dict.fromkeys(r.user or r.bot_id or "" for r in replies))
            out.update(
                thread_ts=self.ts,
                reply_count=len(replies),
                reply_users_count=len(users),
                latest_reply=replies[-1].ts,
                reply_users=users,
                is_locked=False,
                subscribed=False,
            )
        if self.edited_ts:
            out["edited"] = {"user": self.user or BOT_USER_ID, "ts": self.edited_ts}
        if self.reactions:
            out["reactions"] = [{"name": n, "users": list(u), "count": len(u)} for n, u in self.reactions.items()]
        if self.metadata is not None and include_metadata:
            out["metadata"] = self.metadata
        return out


@dataclass(slots=True)
class UploadedFile:
    """A file uploaded through ``files.getUploadURLExternal`` + the upload URL +
    ``files.completeUploadExternal`` (``content``: the bytes received)."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """A ``chat.postEphemeral`` message (only ``user`` sees it; not in any conversation)."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None


@dataclass(slots=True)
class _Rule:
    method: str | None
    kind: Literal["rate_limit", "status", "error", "drop"]
    times: int | None
    status: int = 200
    retry_after: int = 1
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    where: Callable[[Mapping[str, Any]], bool] | None = None  # only the calls whose args it accepts

    def matches(self, method: str, args: Mapping[str, Any]) -> bool:
        if self.where is not None and not self.where(args):
            return False
        if self.method is None:
            return method != "response_url"
        return self.method == method


@dataclass(slots=True)
class View:
    """A modal the bot opened: its latest version, hash, and every version before."""

    id: str
    hash: str
    view: dict[str, Any]
    trigger_id: str
    versions: list[dict[str, Any]] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {**self.view, "id": self.id, "hash": self.hash, "team_id": TEAM_ID, "app_id": APP_ID,
                "bot_id": BOT_ID, "state": {"values": {}}, "previous_view_id": None, "root_view_id": self.id}

    def block(self, block_id: str) -> dict[str, Any] | None:
        return next((b for b in self.view.get("blocks", []) if b.get("block_id") == block_id), None)


@dataclass(slots=True)
class SlackFile:
    """A file shared in the workspace (``add_file``)."""

    id: str
    name: str
    content: bytes
    mimetype: str
    filetype: str
    user: str
    url_private_download: str

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "created": 1_700_000_000, "timestamp": 1_700_000_000, "name": self.name,
                "title": self.name, "mimetype": self.mimetype, "filetype": self.filetype,
                "pretty_type": self.filetype.upper(), "user": self.user, "user_team": TEAM_ID, "editable": False,
                "size": len(self.content), "mode": "hosted", "is_external": False, "is_public": True,
                "url_private": self.url_private_download.replace("/download/", "/"),
                "url_private_download": self.url_private_download}


class _SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# ---------------------------------------------------------------- the server


class SlackStandIn(LoopbackServer):
    """The Slack Web API on ``127.0.0.1`` (see the module docstring)."""

    name = "slack stand-in"

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        ts_base: float | None = 1_700_000_000.0,
        ts_step_us: int = 100,
        strict_thread_ts: bool = True,
        replies_default_limit: int = 1000,
    ) -> None:
        """``ts_base``: the first message ts is ``ts_base`` + ``ts_step_us`` µs, then one
        step per message (``"1700000000.000100"``, ``"1700000000.000200"``, …); ``None``
        uses the wall clock (still strictly increasing)."""
        super().__init__()
        self.delay_s = delay_s
        self.strict_thread_ts = strict_thread_ts
        self.replies_default_limit = replies_default_limit
        self.calls: list[SlackCall] = []
        self.channels: set[str] | None = None  # None: every channel id exists
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}  # extra fields merged into users.info answers
        self.strict_users = False  # True: users not in ``users`` are user_not_found
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, UploadedFile] = {}
        self.response_posts: dict[str, list[dict[str, Any]]] = {}
        self._conversations: dict[str, dict[str, Message]] = {}
        self._rules: list[_Rule] = []
        self._last_us = int(ts_base * 1_000_000) if ts_base is not None else 0
        self._wall_clock = ts_base is None
        self._ts_step_us = ts_step_us
        self._seq = 0
        self._cond = asyncio.Condition()
        self.socket_connections: list[web.WebSocketResponse] = []
        self.socket_acks: list[dict[str, Any]] = []
        self._envelope_seq = itertools.count(1)
        self.views: dict[str, View] = {}
        self.shared: dict[str, SlackFile] = {}  # files people shared (add_file), for files.info
        self._triggers: dict[str, float] = {}  # trigger_id -> issued at (monotonic)
        self._used_triggers: set[str] = set()
        self._holds: dict[str, asyncio.Event] = {}
        self.held: list[str] = []  # methods whose request arrived and waits at its hold
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/api/``: pass as ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "default") -> str:
        """A ``response_url`` on this server; JSON posted there lands in ``responses(name)``."""
        return f"{self.base_url}/response_url/{name}"

    def application(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._api),
                web.route("*", "/upload/{file_id}", self._upload),
                web.post("/response_url/{name}", self._response_url),
                web.get("/socket", self._socket),
                web.get("/files-pri/{key}/download/{name}", self._download),
            ]
        )
        return app

    # ------------------------------------------------------------ failure modes

    def rate_limit(self, method: str | None = None, *, times: int | None = 1, retry_after: int = 1) -> None:
        """Answer ``429``, ``Retry-After: <retry_after>``, ``{"ok":false,"error":"ratelimited"}``."""
        self._rules.append(_Rule(method, "rate_limit", times, status=429, retry_after=retry_after))

    def fail(self, method: str | None = None, status: int = 500, *, times: int | None = 1) -> None:
        """Answer HTTP ``status`` (500, 503, …) with Slack's HTML error page."""
        self._rules.append(_Rule(method, "status", times, status=status))

    def error(self, method: str | None, error: str, *, times: int | None = 1,
              where: Callable[[Mapping[str, Any]], bool] | None = None, **extra: Any) -> None:
        """Answer ``200 {"ok":false,"error":error, **extra}`` (e.g. ``needed="chat:write"``),
        to the calls whose merged args ``where`` accepts when it is given."""
        self._rules.append(_Rule(method, "error", times, error=error, extra=dict(extra), where=where))

    def drop_connection(self, method: str | None = None, *, times: int | None = 1) -> None:
        """Hang up without answering (the client sees ``ServerDisconnectedError``)."""
        self._rules.append(_Rule(method, "drop", times))

    def allow_channels(self, *channel_ids: str) -> None:
        """Only these channels exist from now on; others are ``channel_not_found``."""
        self.channels = set(channel_ids)

    def hold(self, method: str) -> asyncio.Event:
        """Keep every answer of ``method`` until the returned event is set."""
        gate = self._holds.setdefault(method, asyncio.Event())
        return gate

    def trigger(self, *, issued_ago_s: float = 0.0) -> str:
        """A trigger_id as Slack puts in an interaction sent now (or ``issued_ago_s`` ago)."""
        n = next(self._ids)
        tid = f"{n}.{TEAM_ID[1:]}.{n:016x}trigger"
        self._triggers[tid] = time.monotonic() - issued_ago_s
        return tid

    def add_file(self, name: str, content: bytes, *, mimetype: str = "text/csv", filetype: str = "csv",
                 user: str = "U1") -> SlackFile:
        """A file someone uploaded; ``to_api()`` is what ``files[]`` of its message carries."""
        fid = f"F{next(self._ids):08d}TEST"
        url = f"{self.base_url}/files-pri/{TEAM_ID}-{fid}/download/{name}"
        f = SlackFile(fid, name, content, mimetype, filetype, user, url)
        self.shared[fid] = f
        return f

    def reset(self) -> None:
        """Normal service: no failure rules, no delay (the data and ``calls`` stay)."""
        self._rules.clear()
        self.delay_s = 0.0

    def _take_rule(self, method: str, args: Mapping[str, Any]) -> _Rule | None:
        for rule in self._rules:
            if rule.matches(method, args):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                return rule
        return None

    # ------------------------------------------------------------ data helpers

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    def conversation(self, channel: str) -> list[Message]:
        """Every message in ``channel`` (top-level and replies), in ts order."""
        return sorted(self._conversations.get(channel, {}).values(), key=lambda m: _ts_key(m.ts))

    def messages(self, channel: str, *, broadcasts: bool = False) -> list[Message]:
        """Top-level messages in ts order (with ``broadcasts``: also reply_broadcast replies,
        which Slack shows in the channel too)."""
        return [
            m for m in self.conversation(channel) if not m.is_reply or (broadcasts and m.subtype == "thread_broadcast")
        ]

    def message(self, channel: str, ts: str) -> Message | None:
        return self._conversations.get(channel, {}).get(ts)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent (``ts``) and its replies in ts order; [] when ``ts`` is unknown."""
        parent = self.message(channel, ts)
        if parent is None:
            return []
        return [parent, *self._replies(parent)]

    def responses(self, name: str = "default") -> list[dict[str, Any]]:
        """JSON bodies posted to ``response_url(name)``, in order."""
        return self.response_posts.get(name, [])

    def add_message(
        self,
        channel: str,
        text: str = "",
        *,
        user: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        ts: str | None = None,
    ) -> Message:
        """Seed a message written by someone else (a user, or an alerting bot with
        ``bot_id``), so the bot can reply in its thread or react to it."""
        if ts is None:
            ts = self._next_ts()
        else:
            self._last_us = max(self._last_us, _ts_us(ts))
        msg = Message(
            channel=channel,
            ts=ts,
            text=text,
            parent_user_id=self._author(channel, thread_ts),
            blocks=blocks,
            attachments=attachments,
            thread_ts=thread_ts,
            metadata=metadata,
            user=user,
            bot_id=bot_id,
            subtype=subtype,
        )
        self._conversations.setdefault(channel, {})[ts] = msg
        return msg

    async def wait_for(self, predicate: Callable[[Sequence[SlackCall]], bool], timeout: float = 5.0) -> list[SlackCall]:
        """Resolve (with ``calls``) as soon as ``predicate(calls)`` holds; re-checked after
        every answered request, no polling. The predicate may also read the stand-in's
        data (``messages``, ``thread``…), which only changes on requests. On timeout,
        raise AssertionError listing the calls received."""
        async with self._cond:
            try:
                async with asyncio.timeout(timeout):
                    await self._cond.wait_for(lambda: predicate(self.calls))
            except TimeoutError:
                raise AssertionError(
                    f"{self.name}: condition not met within {timeout}s; {len(self.calls)} calls:\n" + self.dump()
                ) from None
        return list(self.calls)

    async def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[SlackCall]:
        """Wait until ``method`` has been called ``count`` times; return those calls."""
        await self.wait_for(lambda calls: sum(c.method == method for c in calls) >= count, timeout)
        return self.calls_to(method)

    def dump(self) -> str:
        lines = [f"  {c.brief()}" for c in self.calls]
        for ch, msgs in self._conversations.items():
            lines.append(f"  channel {ch}: " + ", ".join(f"{m.ts}{'↳' if m.is_reply else ''}" for m in msgs.values()))
        return "\n".join(lines) or "  (none)"

    # ------------------------------------------------------------ plumbing

    def _next_ts(self) -> str:
        if self._wall_clock:
            self._last_us = max(int(time.time() * 1_000_000), self._last_us + 1)
        else:
            self._last_us += self._ts_step_us
        secs, us = divmod(self._last_us, 1_000_000)
        return f"{secs}.{us:06d}"

    def _replies(self, parent: Message) -> list[Message]:
        return [m for m in self.conversation(parent.channel) if m.is_reply and m.thread_ts == parent.ts]

    def _check_channel(self, args: Mapping[str, Any]) -> str:
        channel = str(args.get("channel") or "")
        if not channel or (self.channels is not None and channel not in self.channels):
            raise _SlackError("channel_not_found")
        return channel

    async def _record(self, call: SlackCall) -> None:
        async with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    async def _delay(self) -> None:
        if self.delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay_s)

    async def _parse(self, request: web.Request) -> tuple[dict[str, Any], str]:
        args: dict[str, Any] = dict(request.query)
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            form = await request.post()
            for k, field_value in form.items():
                args[k] = (
                    field_value if isinstance(field_value, str) else f"<file {getattr(field_value, 'filename', '')}>"
                )
        else:
            raw = await request.read()
            if raw:
                if ctype == "application/json":
                    body = json.loads(raw)
                    if isinstance(body, dict):
                        args.update(body)
                else:
                    args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        for k in _JSON_ARGS:
            v = args.get(k)
            if isinstance(v, str) and v.strip()[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    args[k] = json.loads(v)
        return args, ctype

    async def _api(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        method = request.match_info["method"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            args, ctype = await self._parse(request)
        except ValueError:
            args, ctype = {}, request.content_type
            parse_failed = True
        else:
            parse_failed = False
        auth = headers.get("authorization", "")
        token: str | None = auth[7:] if auth.lower().startswith("bearer ") else None
        if "token" in args:
            token = str(args.pop("token"))
        await self._delay()
        gate = self._holds.get(method)
        if gate is not None and not gate.is_set():
            async with self._cond:
                self.held.append(method)
                self._cond.notify_all()
            await gate.wait()
            self.held.remove(method)
        self._seq += 1

        def record(status: int, response: Any) -> SlackCall:
            return SlackCall(
                seq=self._seq,
                method=method,
                args=args,
                headers=headers,
                at=at,
                status=status,
                response=response,
                http_method=request.method,
                content_type=ctype,
                path=request.path,
                token=token,
            )

        rule = self._take_rule(method, args)
        if rule is not None and rule.kind == "drop":
            await self._record(record(0, None))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        if rule is not None and rule.kind == "status":
            await self._record(record(rule.status, SERVER_ERROR_HTML))
            return web.Response(status=rule.status, text=SERVER_ERROR_HTML, content_type="text/html")
        if rule is not None and rule.kind == "rate_limit":
            body: dict[str, Any] = {"ok": False, "error": "ratelimited"}
            await self._record(record(429, body))
            return web.json_response(body, status=429, headers={"Retry-After": str(rule.retry_after)})
        if rule is not None:
            body = {"ok": False, "error": rule.error, **rule.extra}
        elif parse_failed:
            body = {"ok": False, "error": "invalid_json"}
        elif not token:
            body = {"ok": False, "error": "not_authed"}
        elif method == "apps.connections.open":
            body = ({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"} if token.startswith("xapp-")
                    else {"ok": False, "error": "not_allowed_token_type"})
        elif not token.startswith("xox"):
            body = {"ok": False, "error": "invalid_auth"}
        else:
            handler = self._methods().get(method)
            if handler is None:
                body = {"ok": False, "error": "unknown_method"}
            else:
                try:
                    body = {"ok": True, **handler(args)}
                except _SlackError as err:
                    body = {"ok": False, "error": err.error, **err.extra}
        await self._record(record(200, body))
        return web.json_response(body)

    # ------------------------------------------------------------ Socket Mode

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket that ``apps.connections.open`` hands out: says hello, then carries
        the envelopes a test sends with ``socket_send`` and records the app's acks."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.socket_connections.append(ws)
        await ws.send_json({"type": "hello", "num_connections": len(self.socket_connections),
                            "debug_info": {"host": "recon-standin"}, "connection_info": {"app_id": APP_ID}})
        async with self._cond:
            self._cond.notify_all()
        try:
            async for msg in ws:
                if msg.type == web.WSMsgType.TEXT:
                    try:
                        doc = json.loads(msg.data)
                    except ValueError:
                        continue
                    async with self._cond:
                        self.socket_acks.append(doc)
                        self._cond.notify_all()
        finally:
            if ws in self.socket_connections:
                self.socket_connections.remove(ws)
        return ws

    async def socket_send(self, type_: str, payload: dict[str, Any], *, retry_attempt: int = 0,
                          retry_reason: str = "") -> str:
        """Send an envelope (``events_api``, ``slash_commands``, ``interactive``) to the
        connected app; returns its ``envelope_id``."""
        envelope_id = f"env-{next(self._envelope_seq)}"
        envelope = {"envelope_id": envelope_id, "type": type_, "payload": payload,
                    "accepts_response_payload": type_ != "events_api", "retry_attempt": retry_attempt,
                    "retry_reason": retry_reason}
        if not self.socket_connections:
            raise RuntimeError("no Socket Mode connection is open")
        await self.socket_connections[-1].send_json(envelope)
        return envelope_id

    async def wait_socket_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(
                lambda: any(a.get("envelope_id") == envelope_id for a in self.socket_acks)), timeout)
        return next(a for a in self.socket_acks if a.get("envelope_id") == envelope_id)

    async def wait_socket_connected(self, timeout: float = 10.0) -> None:
        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(lambda: bool(self.socket_connections)), timeout)

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        name = request.match_info["name"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        args = body if isinstance(body, dict) else {"_body": body}
        await self._delay()
        self._seq += 1

        def record(status: int, response: Any) -> SlackCall:
            return SlackCall(
                seq=self._seq,
                method="response_url",
                args=args,
                headers=headers,
                at=at,
                status=status,
                response=response,
                content_type=request.content_type,
                path=request.path,
            )

        rule = self._take_rule("response_url", args)
        if rule is not None and rule.kind == "drop":
            await self._record(record(0, None))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if rule is not None and rule.kind in ("status", "rate_limit"):
            await self._record(record(rule.status, SERVER_ERROR_HTML))
            return web.Response(status=rule.status, text=SERVER_ERROR_HTML, content_type="text/html")
        if rule is not None:
            await self._record(record(404, rule.error))
            return web.Response(status=404, text=rule.error)
        self.response_posts.setdefault(name, []).append(args)
        await self._record(record(200, "ok"))
        return web.Response(text="ok")

    # ------------------------------------------------------------ methods

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._get_permalink,
            "conversations.replies": self._replies_method,
            "conversations.history": self._history_method,
            "reactions.add": self._reactions_add,
            "usergroups.users.list": self._usergroup_users,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "files.info": self._files_info,
        }

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": WORKSPACE_URL,
            "team": "T",
            "user": "recon",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    @staticmethod
    def _content(args: Mapping[str, Any], *, required: bool = True) -> dict[str, Any]:
        """Validate and pick text/blocks/attachments/metadata."""
        text = args.get("text")
        blocks = args.get("blocks")
        attachments = args.get("attachments")
        if required and not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if blocks is not None and (
            not isinstance(blocks, list)
            or len(blocks) > _MAX_BLOCKS
            or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
        ):
            raise _SlackError("invalid_blocks")
        if attachments is not None and not (
            isinstance(attachments, list) and all(isinstance(a, dict) for a in attachments)
        ):
            raise _SlackError("invalid_attachments")
        if text is not None and len(str(text)) > _MAX_TEXT:
            raise _SlackError("msg_too_long")
        metadata = args.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload", {}), dict)
        ):
            raise _SlackError("invalid_metadata_format")
        out: dict[str, Any] = {}
        if text is not None:
            out["text"] = str(text)
        for k, v in (("blocks", blocks), ("attachments", attachments), ("metadata", metadata)):
            if v is not None:
                out[k] = v
        return out

    def _resolve_thread(self, channel: str, thread_ts: Any) -> str | None:
        if thread_ts in (None, ""):
            return None
        parent = self.message(channel, str(thread_ts))
        if parent is None:
            raise _SlackError("thread_not_found")
        if parent.is_reply:
            if self.strict_thread_ts:
                raise _SlackError("thread_not_found")
            return parent.thread_ts
        return parent.ts

    def _author(self, channel: str, ts: str | None) -> str | None:
        parent = self.message(channel, ts) if ts else None
        return (parent.user or parent.bot_id) if parent else None

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(args)
        content = self._content(args)
        thread_ts = self._resolve_thread(channel, args.get("thread_ts"))
        broadcast = thread_ts is not None and _truthy(args.get("reply_broadcast", False))
        msg = Message(
            channel=channel,
            ts=self._next_ts(),
            text=content.get("text", ""),
            blocks=content.get("blocks"),
            attachments=content.get("attachments"),
            thread_ts=thread_ts,
            parent_user_id=self._author(channel, thread_ts),
            metadata=content.get("metadata"),
            subtype="thread_broadcast" if broadcast else None,
            extra={
                k: v
                for k, v in args.items()
                if k not in ("channel", "text", "blocks", "attachments", "metadata", "thread_ts")
            },
        )
        self._conversations.setdefault(channel, {})[msg.ts] = msg
        return {"channel": channel, "ts": msg.ts, "message": msg.to_api()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(args)
        msg = self.message(channel, str(args.get("ts") or ""))
        if msg is None:
            raise _SlackError("message_not_found")
        if msg.bot_id != BOT_ID:
            raise _SlackError("cant_update_message")
        content = self._content(args)
        msg.history.append({"text": msg.text, "blocks": msg.blocks, "attachments": msg.attachments})
        if "text" in content:
            msg.text = content["text"]
        if "blocks" in content:
            msg.blocks = content["blocks"]
        if "attachments" in content:
            msg.attachments = content["attachments"]
        if "metadata" in content:
            msg.metadata = content["metadata"]
        msg.edited_ts = self._next_ts()
        return {"channel": channel, "ts": msg.ts, "text": msg.text, "message": msg.to_api()}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(args)
        user = str(args.get("user") or "")
        if not user:
            raise _SlackError("user_not_in_channel")
        content = self._content(args)
        thread_ts = args.get("thread_ts")
        eph = Ephemeral(
            channel=channel,
            user=user,
            message_ts=self._next_ts(),
            text=content.get("text", ""),
            blocks=content.get("blocks"),
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        self.ephemerals.append(eph)
        return {"message_ts": eph.message_ts}

    def _get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(args)
        msg = self.message(channel, str(args.get("message_ts") or ""))
        if msg is None:
            raise _SlackError("message_not_found")
        link = f"{WORKSPACE_URL}archives/{channel}/p{msg.ts.replace('.', '')}"
        if msg.is_reply:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _replies_method(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(args)
        target = self.message(channel, str(args.get("ts") or ""))
        if target is None:
            raise _SlackError("thread_not_found")
        parent = self.message(channel, target.thread_ts) if target.is_reply and target.thread_ts else target
        if parent is None:
            raise _SlackError("thread_not_found")
        try:
            limit = int(args.get("limit") or self.replies_default_limit)
        except ValueError:
            raise _SlackError("invalid_limit") from None
        limit = max(1, min(limit, 1000))
        meta = _truthy(args.get("include_all_metadata", False))
        replies = self._replies(parent)
        items = [parent, *replies]
        start = 0
        cursor = str(args.get("cursor") or "")
        if cursor:
            try:
                start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
            except ValueError:
                raise _SlackError("invalid_cursor") from None
            if not 0 < start <= len(items):
                raise _SlackError("invalid_cursor")
        page = items[start : start + limit]
        more = start + limit < len(items)
        out: dict[str, Any] = {
            "messages": [m.to_api(replies=replies if m is parent else (), include_metadata=meta) for m in page],
            "has_more": more,
        }
        out["response_metadata"] = {
            "next_cursor": base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        }
        return out

    def _history_method(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first (Slack's order), paginated."""
        channel = self._check_channel(args)
        try:
            limit = max(1, min(int(args.get("limit") or 100), 1000))
        except ValueError:
            raise _SlackError("invalid_limit") from None
        meta = _truthy(args.get("include_all_metadata", False))
        items = list(reversed(self.messages(channel)))
        start = 0
        cursor = str(args.get("cursor") or "")
        if cursor:
            try:
                start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
            except ValueError:
                raise _SlackError("invalid_cursor") from None
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "messages": [m.to_api(replies=self._replies(m), include_metadata=meta) for m in page],
            "has_more": more,
            "response_metadata": {
                "next_cursor": base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
            },
        }

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(args)
        name = str(args.get("name") or "").strip(":")
        if not name:
            raise _SlackError("invalid_name")
        ts = str(args.get("timestamp") or "")
        if not ts:
            raise _SlackError("no_item_specified")
        msg = self.message(channel, ts)
        if msg is None:
            raise _SlackError("message_not_found")
        users = msg.reactions.setdefault(name, [])
        if BOT_USER_ID in users:
            raise _SlackError("already_reacted")
        users.append(BOT_USER_ID)
        return {}

    def _upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        """Step 1 of Slack's upload flow: a file id and the URL to POST its bytes to."""
        filename = str(args.get("filename") or "")
        try:
            length = int(args.get("length") or 0)
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        if not filename or length <= 0:
            raise _SlackError("invalid_arguments")
        file_id = f"F0{len(self.files) + 1:07d}"
        self.files[file_id] = UploadedFile(file_id, filename, length)
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """Step 2: the bytes, POSTed to the upload URL (raw body, or one multipart part)."""
        f = self.files.get(request.match_info["file_id"])
        if f is None or request.method != "POST":
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next(iter(form.values()), b"")
            data = part.file.read() if hasattr(part, "file") else str(part).encode()
        else:
            data = await request.read()
        f.content = data
        return web.Response(status=200, text=f"OK - {len(data)}")

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        """Step 3: share the uploaded files in ``channel_id`` (a reply when ``thread_ts``)."""
        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                raise _SlackError("invalid_arguments") from None
        if not isinstance(files, list) or not files:
            raise _SlackError("invalid_arguments")
        channel = str(args.get("channel_id") or "")
        thread_ts = self._resolve_thread(channel, args.get("thread_ts")) if channel else None
        out = []
        for item in files:
            f = self.files.get(str((item or {}).get("id") or ""))
            if f is None or f.content is None or len(f.content) != f.length:
                raise _SlackError("file_not_found" if f is None else "file_upload_size_mismatch")
            f.title, f.channel, f.thread_ts = str(item.get("title") or f.filename), channel or None, thread_ts
            out.append({"id": f.file_id, "name": f.filename, "title": f.title, "size": f.length})
            if channel:
                msg = Message(channel=channel, ts=self._next_ts(), text="", thread_ts=thread_ts,
                              parent_user_id=self._author(channel, thread_ts), extra={"files": [out[-1]]})
                self._conversations.setdefault(channel, {})[msg.ts] = msg
        return {"files": out}

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup") or "")
        if group not in self.usergroups:
            raise _SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = str(args.get("user") or "")
        if not uid or (self.strict_users and uid not in self.users and uid != BOT_USER_ID):
            raise _SlackError("user_not_found")
        is_bot = uid == BOT_USER_ID
        name = "recon" if is_bot else uid.lower()
        user: dict[str, Any] = {
            "id": uid,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": name,
            "tz": "Etc/UTC",
            "tz_offset": 0,
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {"real_name": name, "display_name": name, "team": TEAM_ID},
        }
        if is_bot:
            user["profile"]["bot_id"] = BOT_ID
        user.update(self.users.get(uid, {}))
        return {"user": user}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        tid = str(args.get("trigger_id") or "")
        issued = self._triggers.get(tid)
        if issued is None:
            raise _SlackError("invalid_trigger_id")
        if tid in self._used_triggers:
            raise _SlackError("exchanged_trigger_id")
        if time.monotonic() - issued > TRIGGER_TTL_S:
            raise _SlackError("expired_trigger_id")
        view = _check_view(args.get("view"))
        self._used_triggers.add(tid)
        v = View(f"V{next(self._ids):010d}", f"{time.time():.6f}.h{next(self._ids)}", view, tid)
        self.views[v.id] = v
        return {"view": v.to_api()}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        vid = str(args.get("view_id") or "")
        ext = args.get("external_id")
        v = self.views.get(vid) if vid else next((x for x in self.views.values()
                                                   if ext and x.view.get("external_id") == ext), None)
        if v is None:
            raise _SlackError("not_found")
        given = args.get("hash")
        if given not in (None, "") and given != v.hash:
            raise _SlackError("hash_conflict")
        view = _check_view(args.get("view"))
        v.versions.append(v.view)
        v.view = view
        v.hash = f"{time.time():.6f}.h{next(self._ids)}"
        return {"view": v.to_api()}

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        f = self.shared.get(str(args.get("file") or ""))
        if f is None:
            raise _SlackError("file_not_found")
        return {"file": f.to_api(), "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """``url_private_download``: the bytes with a bot token, else the sign-in page (200)."""
        at = time.monotonic()
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        fid = request.match_info["key"].removeprefix(f"{TEAM_ID}-")
        f = self.shared.get(fid)
        self._seq += 1
        if f is None:
            status, body, ctype = 404, b"not found", "text/plain"
        elif token is None or not token.startswith("xoxb-"):
            status, body, ctype = 200, SIGN_IN_HTML.encode(), "text/html"
        else:
            status, body, ctype = 200, f.content, f.mimetype
        await self._record(SlackCall(seq=self._seq, method="file_download", args={"file": fid}, headers=headers,
                                     at=at, status=status, response=ctype, http_method="GET",
                                     path=request.path, token=token))
        return web.Response(status=status, body=body, content_type=ctype)


def _check_view(view: Any) -> dict[str, Any]:
    """The checks Slack makes of a modal view (``invalid_arguments`` with a message)."""
    def bad(why: str) -> _SlackError:
        return _SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {why}"]})

    if not isinstance(view, dict) or view.get("type") != "modal":
        raise bad("must be a modal view [json-pointer:/view/type]")
    title = view.get("title")
    if not isinstance(title, dict) or title.get("type") != "plain_text" or not str(title.get("text") or ""):
        raise bad("a modal needs a plain_text title [json-pointer:/view/title]")
    if len(str(title["text"])) > MAX_TITLE:
        raise bad(f"must be less than {MAX_TITLE + 1} characters [json-pointer:/view/title/text]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > 100 or not all(isinstance(b, dict) for b in blocks):
        raise bad("blocks must be a list of at most 100 blocks [json-pointer:/view/blocks]")
    if any(b.get("type") == "input" for b in blocks) and not view.get("submit"):
        raise bad("a view with input blocks needs a submit [json-pointer:/view/submit]")
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(ids) != len(set(ids)):
        raise bad("block_id must be unique [json-pointer:/view/blocks]")
    if len(str(view.get("private_metadata") or "")) > 3000:
        raise bad("private_metadata must be at most 3000 characters [json-pointer:/view/private_metadata]")
    return dict(view)


def _ts_us(ts: str) -> int:
    secs, _, frac = ts.partition(".")
    return int(secs) * 1_000_000 + int((frac + "000000")[:6])


def _ts_key(ts: str) -> tuple[int, str]:
    try:
        return (_ts_us(ts), ts)
    except ValueError:
        return (0, ts)


@pytest.fixture
async def slack_standin() -> AsyncIterator[SlackStandIn]:
    """A started ``SlackStandIn``: every channel exists, no failure modes."""
    async with SlackStandIn() as s:
        yield s
