"""Three ``recon serve`` processes under a mixed load on one store: no lost work, no doubled work.

Usage::

    .venv/bin/python benchmarks/load_three.py [--duration 180] [--chaos] [--rate-slash 2] [--rate-alerts 2]
                                              [--rate-reactions 2] [--rate-events 0.5] [--max-requests 5000]
                                              [--slots 4] [--lease-s 10] [--seed 7] [--json PATH] [--keep]

What it does: starts an embedded PostgreSQL (``durable=False``) in a temp dir under
``/dev/shm``, loads the demo platform (``tests.e2e.slackbot.live_platform``: 17
correlation ids, 16 app instances) into a billing database and writes its logs and
traces as an offline evidence folder, starts a Slack Web API stand-in **in this
process**, and three real ``recon serve`` subprocesses on one store database
(``tests.e2e.slackbot.start_bot_process``). There is no load balancer: the client
sends each request to the next process, round-robin. For ``--duration`` seconds it
offers an open-loop mixed load (each kind paced on its own clock, at most
``--max-inflight`` requests in flight, at most ``--max-requests`` in all):

* ``slash``: signed ``/recon <correlation_id>``, ``/recon app <app_instance_id>`` over
  the platform's ids, and unknown ids (each new);
* ``alert``: Alertmanager v4 webhooks with the bearer token for up to ``--max-groups``
  groups over two routed channels: opens, repeats, resolves and re-fires; a fifth of
  them are sent twice at once to two processes (an HA Alertmanager pair). Five groups
  opening in a channel within two minutes is an alert storm;
* ``reaction``: ``reaction_added`` events on the freeze prompts as they appear
  (eligible once the bot has added its two reactions): approvers
  (``RECON_APPROVERS``, quorum ``--quorum``) mostly approve, others try to vote or add
  an unrelated emoji; a quarter are delivered 2-3 times;
* ``event``: Slack event redeliveries: an ``app_mention`` (``@recon <id>``) or an
  Alertmanager post in a watched channel, each delivered 2 or 3 times with the same
  ``event_id`` to different processes (``X-Slack-Retry-Num``), at once or staggered.

``--chaos``: from ``--chaos-at`` of the run, ``--chaos-kills`` times (evenly to the
end) the process holding the most running jobs gets SIGKILL and is restarted
``--chaos-down-s`` later (as ``tests/e2e/test_slack_durability.py`` does); the time
from the kill until each job it held runs under another process is measured (polled
every 20 ms; target <= 3 s, p50 and max reported); requests
caught in flight are sent again to the next process (as Slack and Alertmanager retry),
and the round-robin skips the process while it is down.

At the end the load stops, the run waits (LISTEN ``recon_jobs_done``) until no job is
queued or running and the stand-in has seen no call for 2 s, then checks:

* no lost work: every diagnose job is done and has exactly one thread (its parent and
  the 6 step replies, parent showing the verdict); every ``Diagnosing`` ack has its
  job; every alert group's generation has exactly one anchor (non-Slack sources: one
  ``parent`` post) and every notification was handled; every vote-emoji reaction on a
  prompt is in the approval audit exactly once; every redelivered event was handled
  once (a mention: one job or one "already running" reply; an alert post: one group
  with one notification and one verdict);
* no doubled work: no ``(ns, key)`` posted twice (messages carry metadata
  ``event_payload {ns, key}``); no two jobs of one dedup key active at once; one done
  diagnosis run per done diagnose job;

and reports: RSS per process sampled every second (max and end; target <= 200 MB),
CPU per process, throughput held (requests/s by kind, per 30 s window; jobs completed
per second; the job backlog), request latency percentiles by kind (ms, client-side:
sent to answer read), job turnaround (queued to finished), and errors. Results: a table
on stdout, JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform as host_platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import pct, summary  # noqa: E402
from bot.scenario.evidence_files import write_evidence  # noqa: E402
from bot.scenario.load import load_billing  # noqa: E402
from bot.store.embedded import ensure_database, ensure_embedded, stop_embedded  # noqa: E402
from bot.store.jobs import DONE_CHANNEL  # noqa: E402
from tests.e2e.slackbot import STEPS, BotProcess, bot_env, live_platform, start_bot_process  # noqa: E402
from tests.standins.slack import BOT_USER_ID, SlackStandIn  # noqa: E402
from tests.standins.slack_requests import (  # noqa: E402
    SlackRequest,
    app_mention,
    event_callback,
    message,
    reaction_added,
    slash_command,
)

RESULTS = ROOT / "benchmarks" / "results"
SLASH = "C0LOADRECON"
ALERTS = "C0LOADALERTS"
LEDGER = "C0LOADLEDGER"
WATCHED = "C0LOADWATCH"
MENTION = "C0LOADMENTION"
TOKEN = "alert-token-for-load"
APPROVERS = ("U0APPROVER1", "U0APPROVER2", "U0APPROVER3")
OTHERS = ("U0ONCALL1", "U0ONCALL2", "U0SUPPORT", "U0INTERN")
ROUTES = json.dumps([{"name": "ledger", "match": {"alertname": "UsageLedgerMismatch"}, "channel": LEDGER}])
ALERTNAMES = ("AppRuntimeMeteringDrift", "UsageLedgerMismatch", "BillingWorkerLag", "MeteringEmitterGap")
SEVERITIES = ("critical", "page", "warning", "info", "low")
TARGET_RSS_MB = 200.0
TARGET_ACK_P99_MS = 300.0  # the house target for a slash-command ack (benchmarks/slack_ack.py)
SLACK_DEADLINE_MS = 3000.0  # Slack's own: an answer later than this is a failed request
WINDOW_S = 30.0
TARGET_RESUME_S = 3.0  # a SIGKILLed process's running job resumes elsewhere within this


def chaos_summary(kills: list[dict[str, Any]]) -> dict[str, Any]:
    """Kill-to-resumed times over all the kills: each job the killed process held."""
    times = [t for k in kills for t in k.get("resumed_after_s", {}).values()]
    held = sum(len(k.get("jobs_held", [])) for k in kills)
    return {"kills": len(kills), "jobs": held, "resumed": len(times), "times_s": sorted(times),
            "p50_s": statistics.median(times) if times else None, "max_s": max(times) if times else None,
            "target_met": bool(times) and len(times) == held and max(times) <= TARGET_RESUME_S}
FREEZE_PROMPT = "Freeze manual customer-facing adjustments?"


# ------------------------------------------------------------------ small helpers






def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or v != v else f"{v:.{digits}f}"


def fast_tmp_dir(prefix: str) -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


async def create_db(server_uri: str, name: str) -> str:
    from bot.store.db import with_database

    await ensure_database(server_uri, name)
    return with_database(server_uri, name)


def git_head() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"head": run("rev-parse", "--short", "HEAD"), "dirty_files": len(run("status", "--short").splitlines())}


# ------------------------------------------------------------------ the processes


@dataclass(slots=True)
class Slot:
    index: int
    proc: BotProcess | None = None
    generation: int = 0
    alive: bool = False
    pids: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    # (t, pid, rss bytes, cpu seconds so far)
    samples: list[tuple[float, int, int, float]] = field(default_factory=list)


class Cluster:
    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.slots = [Slot(i) for i in range(3)]
        self._rr = 0
        self.kills: list[dict[str, Any]] = []

    async def start(self, i: int) -> None:
        s = self.slots[i]
        s.generation += 1
        log = self.logdir / f"recon-{i}-{s.generation}.log"
        s.proc = await start_bot_process(self.env, log)
        s.pids.append(s.proc.proc.pid)
        s.logs.append(log)
        s.alive = True

    def url(self, i: int) -> str:
        p = self.slots[i].proc
        assert p is not None
        return p.url

    def pick(self, avoid: Sequence[int] = ()) -> int:
        """The next live process, round-robin."""
        for _ in range(6):
            i = self._rr % 3
            self._rr += 1
            if self.slots[i].alive and i not in avoid:
                return i
        return next((s.index for s in self.slots if s.alive), 0)

    def kill(self, i: int) -> None:
        s = self.slots[i]
        assert s.proc is not None
        s.alive = False
        s.proc.proc.send_signal(signal.SIGKILL)
        s.proc.proc.wait(timeout=10)

    async def stop_all(self) -> list[int | None]:
        codes: list[int | None] = []
        for s in self.slots:
            if s.proc is not None and s.proc.proc.poll() is None:
                s.proc.proc.send_signal(signal.SIGTERM)
        for s in self.slots:
            if s.proc is None:
                codes.append(None)
                continue
            try:
                codes.append(await asyncio.to_thread(s.proc.proc.wait, 60))
            except subprocess.TimeoutExpired:
                s.proc.proc.kill()
                codes.append(-9)
            s.alive = False
        return codes


# ------------------------------------------------------------------ records


@dataclass(slots=True)
class Rec:
    kind: str  # slash, alert, reaction, event
    sub: str  # what exactly (cid/app/unknown, open/repeat/..., approver/other, mention/alert_post)
    proc: int
    t: float  # seconds since the load started, when sent
    ms: float
    status: int  # HTTP status; 0: connection error or timeout
    outcome: str
    retry: int = 0  # 0: first delivery; n: Slack's retry n / a re-send after a connection error


@dataclass(slots=True)
class ReactionSent:
    event_id: str
    user: str
    emoji: str
    channel: str
    ts: str
    approver: bool
    deliveries: int
    acked: bool = False


@dataclass(slots=True)
class EventSent:
    event_id: str
    what: str  # mention_unique, mention_real, alert_post
    ts: str
    subject: str
    deliveries: int
    acked: bool = False
    mode: str = ""  # at once, staggered


@dataclass(slots=True)
class AlertGroupState:
    index: int
    alertname: str
    severity: str
    labels: dict[str, str]
    status: str = "firing"
    sent: int = 0


class Load:
    def __init__(self, args: argparse.Namespace, cluster: Cluster, slack: SlackStandIn, http: aiohttp.ClientSession,
                 cids: list[str], instances: list[str]) -> None:
        self.args = args
        self.cluster = cluster
        self.slack = slack
        self.http = http
        self.cids = cids
        self.instances = instances
        self.rng = random.Random(args.seed)
        self.t0 = 0.0
        self.wall0 = 0.0
        self.recs: list[Rec] = []
        self.deliveries = 0
        self.dropped: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.inflight: set[asyncio.Task[None]] = set()
        self.unknown_n = 0
        self.mention_n = 0
        # what was sent, for the checks
        self.slash_new: Counter[str] = Counter()  # dedup key -> "Diagnosing" acks
        self.slash_running: Counter[str] = Counter()
        self.slash_lost_answer: Counter[str] = Counter()
        self.groups: list[AlertGroupState] = []
        self.alerts_accepted: Counter[str] = Counter()  # group key -> accepted notifications
        self.reactions: list[ReactionSent] = []
        self.events: list[EventSent] = []
        self._calls_seen = 0
        self.prompts: dict[tuple[str, str], float] = {}  # (channel, ts) -> when it became eligible
        self._pending_prompts: dict[tuple[str, str], int] = {}

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -------------------------------------------------------------- sending

    async def _send(self, kind: str, sub: str, i: int, retry: int, do: Callable[[str], Awaitable[tuple[int, str]]]
                    ) -> Rec:
        self.deliveries += 1
        t = self.now()
        t1 = time.perf_counter()
        try:
            status, outcome = await do(self.cluster.url(i))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status, outcome = 0, f"connection error: {type(exc).__name__}"
        rec = Rec(kind, sub, i, t, (time.perf_counter() - t1) * 1000, status, outcome, retry)
        self.recs.append(rec)
        return rec

    async def send(self, kind: str, sub: str, do: Callable[[str], Awaitable[tuple[int, str]]], *,
                   proc: int | None = None, retry: int = 0) -> Rec:
        """Send to ``proc`` (default: the next process); a request caught by a dead process
        is sent again to the next one, once (as Slack and Alertmanager retry)."""
        i = self.cluster.pick() if proc is None else proc
        if not self.cluster.slots[i].alive:
            i = self.cluster.pick(avoid=[i])
        rec = await self._send(kind, sub, i, retry, do)
        if rec.status == 0:
            rec = await self._send(kind, sub, self.cluster.pick(avoid=[i]), retry + 1, do)
        return rec

    def slack_do(self, req: SlackRequest) -> Callable[[str], Awaitable[tuple[int, str]]]:
        async def do(url: str) -> tuple[int, str]:
            async with self.http.post(f"{url}/slack/events", data=req.body, headers=req.headers) as r:
                body = await r.text()
            if r.headers.get("Content-Type", "").startswith("application/json"):
                with contextlib.suppress(ValueError, AttributeError):
                    body = str(json.loads(body).get("text", body))
            return r.status, body
        return do

    # -------------------------------------------------------------- pacing

    async def paced(self, kind: str, rate: float, one: Callable[[], Awaitable[None]], stop_at: float) -> None:
        if rate <= 0:
            return
        interval = 1.0 / rate
        t = time.monotonic() + self.rng.random() * interval
        while True:
            if t >= stop_at or self.deliveries >= self.args.max_requests:
                return
            await asyncio.sleep(max(0.0, t - time.monotonic()))  # pacing the load generator
            t += interval
            if len(self.inflight) >= self.args.max_inflight:
                self.dropped[kind] += 1
                continue
            task = asyncio.create_task(one(), name=f"load-{kind}")
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)

    # -------------------------------------------------------------- slash commands

    async def one_slash(self) -> None:
        r = self.rng.random()
        if r < 0.45:
            cid = self.rng.choice(self.cids)
            text, sub, key = cid, "cid", f"diagnose:correlation_id:{cid}"
        elif r < 0.85:
            aid = self.rng.choice(self.instances)
            text, sub, key = f"app {aid}", "app", f"diagnose:app_instance_id:{aid}"
        else:
            self.unknown_n += 1
            cid = f"corr-unknown-{self.args.seed}-{self.unknown_n:05d}"
            text, sub, key = cid, "unknown", f"diagnose:correlation_id:{cid}"
        user = self.rng.choice(OTHERS)
        req = slash_command(text=text, channel_id=SLASH, user_id=user)
        rec = await self.send("slash", sub, self.slack_do(req))
        if rec.status == 200 and "Diagnosing" in rec.outcome:
            self.slash_new[key] += 1
            rec.outcome = "new"
        elif rec.status == 200 and "already" in rec.outcome:
            self.slash_running[key] += 1
            rec.outcome = "already running"
        elif rec.status == 0:
            self.slash_lost_answer[key] += 1

    # -------------------------------------------------------------- alerts

    def _new_group(self) -> AlertGroupState:
        n = len(self.groups)
        alertname = ALERTNAMES[n % len(ALERTNAMES)]
        r = self.rng.random()
        labels = {"alertname": alertname, "severity": self.rng.choice(SEVERITIES), "env": "prod",
                  "group": f"load-{self.args.seed}-{n}"}
        if r < 0.6:
            labels["correlation_id"] = self.rng.choice(self.cids)
        elif r < 0.85:
            labels["app_instance_id"] = self.rng.choice(self.instances)
        g = AlertGroupState(n, alertname, labels["severity"], labels)
        self.groups.append(g)
        return g

    def _am_payload(self, g: AlertGroupState, status: str) -> dict[str, Any]:
        return {
            "version": "4", "groupKey": f'{{}}:{{alertname="{g.alertname}",group="{g.labels["group"]}"}}',
            "truncatedAlerts": 0, "status": status, "receiver": "recon",
            "groupLabels": {"alertname": g.alertname, "group": g.labels["group"]},
            "commonLabels": dict(g.labels), "commonAnnotations": {"summary": f"{g.alertname} on {g.labels['group']}"},
            "externalURL": "http://alertmanager:9093",
            "alerts": [{"status": status, "labels": dict(g.labels), "annotations": {"summary": "drift"},
                        "startsAt": "2026-11-25T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T11:00:00Z",
                        "generatorURL": "http://prom/graph", "fingerprint": f"fp-{g.labels['group']}"}],
        }

    async def one_alert(self) -> None:
        opened = [g for g in self.groups]
        if len(self.groups) < self.args.max_groups and (not opened or self.rng.random() < 0.3):
            g, status, sub = self._new_group(), "firing", "open"
        else:
            g = self.rng.choice(opened)
            if g.status == "firing":
                status, sub = ("resolved", "resolve") if self.rng.random() < 0.35 else ("firing", "repeat")
            else:
                status, sub = ("firing", "refire") if self.rng.random() < 0.5 else ("resolved", "repeat")
        g.status = status
        g.sent += 1
        doc = self._am_payload(g, status)
        key = doc["groupKey"]

        async def do(url: str) -> tuple[int, str]:
            async with self.http.post(f"{url}/alerts/alertmanager", json=doc,
                                      headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                body = await r.json(content_type=None)
            return r.status, str(body.get("action") or body.get("error") or body)

        async def one(proc: int | None, label: str) -> None:
            rec = await self.send("alert", label, do, proc=proc)
            if rec.status == 200:
                self.alerts_accepted[key] += 1

        if self.rng.random() < 0.2:  # an HA Alertmanager pair: the same notification from both, at once
            a = self.cluster.pick()
            b = self.cluster.pick(avoid=[a])
            await asyncio.gather(one(a, sub), one(b, f"{sub} (HA twin)"))
        else:
            await one(None, sub)

    # -------------------------------------------------------------- reactions on prompts

    def _scan_prompts(self) -> None:
        calls = self.slack.calls
        for c in calls[self._calls_seen:]:
            if not c.ok:
                continue
            if c.method == "chat.postMessage":
                md = c.args.get("metadata") or {}
                payload = md.get("event_payload") or {} if isinstance(md, dict) else {}
                if payload.get("key") == "prompt":
                    self._pending_prompts[(str(c.args.get("channel")), str(c.response.get("ts")))] = 0
            elif c.method == "reactions.add":
                k = (str(c.args.get("channel")), str(c.args.get("timestamp")))
                if k in self._pending_prompts:
                    self._pending_prompts[k] += 1
                    if self._pending_prompts[k] >= 2:  # the bot has recorded the prompt's message by then
                        self.prompts[k] = self.now()
                        del self._pending_prompts[k]
        self._calls_seen = len(calls)

    def _is_open(self, channel: str, ts: str) -> bool:
        m = self.slack.message(channel, ts)
        return m is not None and "open until" in json.dumps(m.blocks)

    async def one_reaction(self) -> None:
        self._scan_prompts()
        if not self.prompts:
            self.skipped["reaction (no prompt yet)"] += 1
            return
        keys = list(self.prompts)
        open_ = [k for k in keys if self._is_open(*k)]
        channel, ts = self.rng.choice(open_ if open_ and self.rng.random() < 0.8 else keys)
        if self.rng.random() < 0.6:
            user, approver = self.rng.choice(APPROVERS), True
            emoji = "white_check_mark" if self.rng.random() < 0.85 else "x"
        else:
            user, approver = self.rng.choice(OTHERS), False
            emoji = self.rng.choice(("white_check_mark", "x", "eyes", "eyes"))
        req = event_callback(reaction_added(user, emoji, channel, ts))
        event_id = req.json()["event_id"]
        n = self.rng.choice((2, 3)) if self.rng.random() < 0.25 else 1
        sent = ReactionSent(event_id, user, emoji, channel, ts, approver, n)
        self.reactions.append(sent)
        sub = "approver" if approver else "other"
        recs, _ = await self._deliver("reaction", sub, req, n)
        sent.acked = any(r.status == 200 for r in recs)

    async def _deliver(self, kind: str, sub: str, req: SlackRequest, n: int) -> tuple[list[Rec], str]:
        """Deliver an event ``n`` times to different processes: at once, or staggered
        like Slack's retries."""
        first = self.cluster.pick()
        procs = [first]
        while len(procs) < n:
            procs.append(self.cluster.pick(avoid=procs))
        if n == 1:
            return [await self.send(kind, sub, self.slack_do(req), proc=first)], "once"
        if self.rng.random() < 0.5:
            return list(await asyncio.gather(*(
                self.send(kind, f"{sub} x{n} at once", self.slack_do(req if k == 0 else req.retried(k)), proc=p,
                          retry=k) for k, p in enumerate(procs)))), "at once"
        out = []
        for k, p in enumerate(procs):
            if k:
                await asyncio.sleep(self.rng.uniform(0.3, 1.5))  # pacing: Slack's retry delay
            out.append(await self.send(kind, f"{sub} x{n} staggered",
                                       self.slack_do(req if k == 0 else req.retried(k)), proc=p, retry=k))
        return out, "staggered"

    # -------------------------------------------------------------- redelivered events

    async def one_event(self) -> None:
        n = self.rng.choice((2, 3))
        if self.rng.random() < 0.6:
            self.mention_n += 1
            unique = self.rng.random() < 0.6
            subject = f"corr-mention-{self.args.seed}-{self.mention_n:05d}" if unique else self.rng.choice(self.cids)
            text = f"<@{BOT_USER_ID}> {subject}"
            seeded = self.slack.add_message(MENTION, text, user=self.rng.choice(OTHERS))
            req = event_callback(app_mention(seeded.user or "U0ONCALL1", text, MENTION, ts=seeded.ts))
            what = "mention_unique" if unique else "mention_real"
        else:
            subject = self.rng.choice(self.cids)
            attachments = [{"color": "danger", "title": "[FIRING:1] AppRuntimeMeteringDrift",
                            "text": "*Alert:* metering drift - `page`\n*Details:*\n"
                                    "  • *alertname:* `AppRuntimeMeteringDrift`\n"
                                    f"  • *severity:* `page`\n  • *correlation_id:* `{subject}`\n"}]
            seeded = self.slack.add_message(WATCHED, "", bot_id="B0ALERTMGR", attachments=attachments)
            req = event_callback(message(WATCHED, "", bot_id="B0ALERTMGR", attachments=attachments, ts=seeded.ts))
            what = "alert_post"
        sent = EventSent(req.json()["event_id"], what, seeded.ts, subject, n)
        self.events.append(sent)
        recs, sent.mode = await self._deliver("event", what, req, n)
        sent.acked = any(r.status == 200 for r in recs)

    # -------------------------------------------------------------- chaos

    async def chaos(self, at: float, victim: int, down_s: float, kills: int, store_url: str) -> None:
        """``kills`` SIGKILLs, evenly over the run from ``at``: each of a process holding
        running jobs (``victim`` if none does), restarted ``down_s`` later; the time from
        the kill until each of its jobs is taken by another process is measured."""
        conn = await asyncpg.connect(store_url)
        try:
            span = (self.t0 + self.args.duration - at) / max(1, kills)
            for n in range(kills):
                await asyncio.sleep(max(0.0, at + n * span - time.monotonic()))  # pacing: the moment of a kill
                await self._kill_one(conn, victim, down_s)
        finally:
            await conn.close()

    async def _kill_one(self, conn: asyncpg.Connection, default: int, down_s: float) -> None:
        held = await self._wait_for_held(conn, default)
        victim = held[0] if held else default
        jobs = held[1] if held else []
        pid = self.cluster.slots[victim].pids[-1]
        t_kill = self.now()
        k0 = time.monotonic()
        await asyncio.to_thread(self.cluster.kill, victim)
        print(f"  chaos: SIGKILL process {victim} (pid {pid}) holding {len(jobs)} running job(s) at {t_kill:.1f} s",
              file=sys.stderr)
        restart = asyncio.create_task(self._restart(victim, down_s))
        resumed = await resume_times(conn, jobs, k0, pid)
        await restart
        t_start, t_ready = restart.result()
        self.cluster.kills.append({"process": victim, "pid_killed": pid, "killed_at_s": t_kill,
                                   "restart_at_s": t_start, "ready_at_s": t_ready,
                                   "pid_new": self.cluster.slots[victim].pids[-1], "jobs_held": jobs,
                                   "resumed_after_s": resumed})
        print(f"  chaos: its jobs resumed elsewhere after {[fmt(v, 2) for v in resumed.values()]} s; restarted, "
              f"ready at {t_ready:.1f} s", file=sys.stderr)

    async def _wait_for_held(self, conn: asyncpg.Connection, default: int,
                             limit_s: float = 30.0) -> tuple[int, list[int]] | None:
        """A live process with running jobs (the one with most), and their ids."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            rows = await conn.fetch("select job_id, lease_owner from jobs where status = 'running'")
            by_pid: dict[int, list[int]] = defaultdict(list)
            for r in rows:
                with contextlib.suppress(IndexError, ValueError, TypeError):
                    by_pid[int(str(r["lease_owner"]).split(":")[1])].append(int(r["job_id"]))
            live = [(s.index, by_pid[s.pids[-1]]) for s in self.cluster.slots if s.alive and by_pid.get(s.pids[-1])]
            if live:
                return max(live, key=lambda x: len(x[1]))
            await asyncio.sleep(0.1)  # polling the store for a process that holds work
        return None

    async def _restart(self, victim: int, down_s: float) -> tuple[float, float]:
        await asyncio.sleep(down_s)  # pacing: how long it stays down
        t_start = self.now()
        await self.cluster.start(victim)
        return t_start, self.now()


async def resume_times(conn: asyncpg.Connection, jobs: list[int], k0: float, pid: int,
                       limit_s: float = 120.0) -> dict[int, float]:
    """Seconds from the kill (``k0``) until each job is running under another process
    (or has ended there); polled every 20 ms."""
    out: dict[int, float] = {}
    deadline = k0 + limit_s
    while len(out) < len(jobs) and time.monotonic() < deadline:
        rows = await conn.fetch("select job_id, status, lease_owner from jobs where job_id = any($1::bigint[])",
                                [j for j in jobs if j not in out])
        t = time.monotonic() - k0
        for r in rows:
            owner = str(r["lease_owner"] or "")
            if r["status"] != "running" or f":{pid}:" not in owner:
                out[int(r["job_id"])] = t
        await asyncio.sleep(0.02)  # the measurement's resolution
    return out


# ------------------------------------------------------------------ sampling


class Sampler:
    """Every second: RSS and CPU time of each process, and the job backlog."""

    def __init__(self, cluster: Cluster, store_url: str) -> None:
        self.cluster = cluster
        self.store_url = store_url
        self.backlog: list[tuple[float, int, int]] = []  # t, queued, running
        self.max_active_per_key = 0
        self.t0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self._procs: dict[int, psutil.Process] = {}
        self.self_cpu: list[tuple[float, float]] = []

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.store_url)
        me = psutil.Process()
        try:
            while True:
                t = time.monotonic() - self.t0
                for s in self.cluster.slots:
                    if not s.alive or not s.pids:
                        continue
                    pid = s.pids[-1]
                    try:
                        p = self._procs.setdefault(pid, psutil.Process(pid))
                        cpu = p.cpu_times()
                        s.samples.append((t, pid, p.memory_info().rss, cpu.user + cpu.system))
                    except psutil.Error:
                        pass
                c = me.cpu_times()
                self.self_cpu.append((t, c.user + c.system))
                with contextlib.suppress(asyncpg.PostgresError, OSError):
                    rows = await conn.fetch("select status, count(*) as n from jobs where status in "
                                            "('queued', 'running') group by status")
                    by = {r["status"]: int(r["n"]) for r in rows}
                    self.backlog.append((t, by.get("queued", 0), by.get("running", 0)))
                    dup = await conn.fetchval("select coalesce(max(n), 0) from (select count(*) as n from jobs "
                                              "where status in ('queued', 'running') group by dedup_key) x")
                    self.max_active_per_key = max(self.max_active_per_key, int(dup))
                await asyncio.sleep(1.0)  # the sampling period
        finally:
            await conn.close()

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._task = asyncio.create_task(self._run(), name="sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def settle(store_url: str, limit_s: float) -> float:
    """Wait until no job is queued or running (woken by each job's end). Returns seconds waited."""
    conn = await asyncpg.connect(store_url)
    changed = asyncio.Event()
    await conn.add_listener(DONE_CHANNEL, lambda *_: changed.set())
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(limit_s):
            while True:
                changed.clear()
                n = await conn.fetchval("select count(*) from jobs where status in ('queued', 'running')")
                if n == 0:
                    return time.monotonic() - t0
                # woken by a job's end; re-checked at least every 5 s (a job released or
                # re-queued for a retry ends nothing)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 5.0)
    finally:
        await conn.close()


async def slack_quiet(slack: SlackStandIn, quiet_s: float = 2.0, limit_s: float = 120.0) -> None:
    """Until the stand-in has received no call for ``quiet_s`` (what event listeners
    post after their ack has been sent)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        n = len(slack.calls)
        try:
            await slack.wait_for(lambda calls, n=n: len(calls) > n, timeout=quiet_s)  # type: ignore[misc]
        except AssertionError:
            return


# ------------------------------------------------------------------ checks


def post_index(slack: SlackStandIn) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], int]:
    """(ns, key) -> the posts under it (channel, ts, thread_ts); and posts without a key."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    unkeyed = 0
    for c in slack.calls_to("chat.postMessage"):
        if not c.ok:
            continue
        md = c.args.get("metadata")
        payload = (md.get("event_payload") or {}) if isinstance(md, dict) else {}
        if "key" not in payload:
            unkeyed += 1
            continue
        by[(str(payload.get("ns")), str(payload.get("key")))].append(
            {"channel": c.args.get("channel"), "ts": c.response.get("ts"), "thread_ts": c.args.get("thread_ts")})
    return by, unkeyed


async def verify(load: Load, slack: SlackStandIn, store_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(store_url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        jobs = [dict(r) for r in await conn.fetch(
            "select job_id, kind, dedup_key, payload, status, attempts, last_error, created_at, finished_at "
            "from jobs order by job_id")]
        runs = {r["job_id"]: int(r["n"]) for r in await conn.fetch(
            "select job_id, count(*) filter (where status = 'done') as n from diagnosis_runs "
            "where job_id is not null group by job_id")}
        running_runs = await conn.fetchval("select count(*) from diagnosis_runs where status = 'running'")
        groups = [dict(r) for r in await conn.fetch(
            "select group_id, source, group_key, generation, anchor_ts, thread_ts, channel, notifications "
            "from alert_groups order by group_id")]
        notes = {r["group_id"]: int(r["n"]) for r in await conn.fetch(
            "select group_id, count(*) as n from alert_notifications group by group_id")}
        unhandled = await conn.fetchval("select count(*) from alert_notifications where handled_at is null")
        storms = [dict(r) for r in await conn.fetch("select storm_id, channel, summary_ts from alert_storms")]
        audit = Counter(r["dedup_key"] for r in await conn.fetch(
            "select dedup_key from approval_events where dedup_key like 'slack:%'"))
        audit_types = Counter(r["type"] for r in await conn.fetch("select type from approval_events"))
        prompts = Counter(r["status"] for r in await conn.fetch("select status from approval_prompts"))
        freezes = await conn.fetchval("select count(*) from freezes")
        events_seen = {r["event_id"] for r in await conn.fetch("select event_id from slack_events")}
    finally:
        await conn.close()

    posts, unkeyed = post_index(slack)
    problems: dict[str, list[str]] = defaultdict(list)
    doubled = {f"{ns} {key}": len(v) for (ns, key), v in posts.items() if len(v) > 1}
    for k, n in sorted(doubled.items())[:20]:
        problems["doubled: a (ns, key) posted more than once"].append(f"{k} x{n}")

    # diagnose jobs: one thread each, parent + 6 steps, finished
    diag = [j for j in jobs if j["kind"] == "diagnose"]
    threads_ok = 0
    for j in diag:
        ns = f"job:{j['job_id']}"
        if j["status"] != "done":
            problems["lost: a diagnose job not done"].append(f"job {j['job_id']} {j['status']}: {j['last_error']}")
            continue
        parent = posts.get((ns, "parent"), [])
        steps = [(k, v) for (n2, k), v in posts.items() if n2 == ns and k.startswith("step:")]
        if len(parent) != 1:
            problems["lost: a diagnose job without exactly one parent"].append(f"job {j['job_id']}: {len(parent)}")
            continue
        pts = parent[0]["ts"]
        if len(steps) != STEPS or any(len(v) != 1 or v[0]["thread_ts"] != pts for _, v in steps):
            problems["lost: a thread without its 6 step replies"].append(
                f"job {j['job_id']}: {sorted(k for k, _ in steps)}")
            continue
        m = slack.message(str(parent[0]["channel"]), str(pts))
        if m is None or "rift found" not in json.dumps(m.blocks):
            problems["lost: a parent not showing its verdict"].append(f"job {j['job_id']}")
            continue
        threads_ok += 1
        if runs.get(j["job_id"], 0) != 1:
            problems["doubled: a done job without exactly one done run"].append(
                f"job {j['job_id']}: {runs.get(j['job_id'], 0)}")
    # one active job per dedup key: diagnose jobs of one key never overlap in time
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in diag:
        by_key[j["dedup_key"]].append(j)
    overlaps = 0
    for same in by_key.values():
        same.sort(key=lambda j: j["created_at"])
        for a, b in itertools.pairwise(same):
            if a["finished_at"] is None or b["created_at"] < a["finished_at"]:
                overlaps += 1
    if overlaps:
        problems["doubled: two diagnose jobs of one key active at once"].append(str(overlaps))
    # every "Diagnosing" ack has its job (slash channel)
    slash_jobs = Counter(j["dedup_key"] for j in diag if j["payload"].get("channel") == SLASH)
    for key, n in load.slash_new.items():
        if slash_jobs.get(key, 0) < n:
            problems["lost: an accepted /recon without its job"].append(f"{key}: {n} acks, {slash_jobs.get(key, 0)}")
    jobs_without_ack = sum(max(0, n - load.slash_new.get(k, 0)) for k, n in slash_jobs.items())

    # alert groups: one anchor per generation; every notification handled
    anchors_ok = 0
    for g in groups:
        if g["channel"] is None:
            continue
        for gen in range(1, g["generation"] + 1):
            ns = f"alert:{g['group_id']}:{gen}"
            if g["source"] == "slack":
                n = len(posts.get((ns, "verdict"), []))
                ok = n == 1 and g["anchor_ts"] is not None
            else:
                n = len(posts.get((ns, "parent"), []))
                ok = n == 1 and (gen < g["generation"] or posts[(ns, "parent")][0]["ts"] == g["anchor_ts"])
            if ok:
                anchors_ok += 1
            else:
                problems["lost or doubled: an alert group generation without exactly one anchor"].append(
                    f"group {g['group_id']} ({g['source']}) gen {gen}: {n} posts, anchor {g['anchor_ts']}")
    if unhandled:
        problems["lost: alert notifications never handled"].append(str(unhandled))
    for s in storms:
        n = len(posts.get((f"storm:{s['storm_id']}", "summary"), []))
        if n != 1:
            problems["lost or doubled: a storm without exactly one summary"].append(f"storm {s['storm_id']}: {n}")
    am_groups = {g["group_key"]: g for g in groups if g["source"] == "alertmanager"}
    for key, n in load.alerts_accepted.items():
        g = am_groups.get(key)
        got = notes.get(g["group_id"], 0) if g else 0
        if got != n:
            problems["lost or doubled: accepted webhooks vs stored notifications"].append(f"{key}: {n} vs {got}")

    # reactions: every vote-emoji reaction on a prompt audited exactly once
    votes_ok = 0
    approver_votes = 0
    for r in load.reactions:
        if r.emoji not in ("white_check_mark", "x") or not r.acked:
            continue
        approver_votes += r.approver
        n = audit.get(f"slack:{r.event_id}", 0)
        if n == 1:
            votes_ok += 1
        else:
            problems["lost: a vote reaction not in the audit exactly once"].append(
                f"{r.event_id} {r.user} :{r.emoji}: x{r.deliveries}: {n}")

    # redelivered events: handled once
    events_ok = 0
    by_group_key = {g["group_key"]: g for g in groups if g["source"] == "slack"}
    mention_jobs = [j for j in diag if j["payload"].get("channel") == MENTION]
    mention_job_keys = Counter(j["dedup_key"] for j in mention_jobs)
    replies: Counter[str] = Counter()
    for c in slack.calls_to("chat.postMessage"):
        if c.ok and c.args.get("channel") == MENTION and c.args.get("thread_ts") and "already" in str(
                c.args.get("text") or ""):
            replies[str(c.args.get("thread_ts"))] += 1
    real_mentions = 0
    for e in load.events:
        if not e.acked:
            continue
        ok = e.event_id in events_seen
        if e.what == "alert_post":
            g = by_group_key.get(f"slack:{WATCHED}:{e.ts}")
            ok = ok and g is not None and notes.get(g["group_id"], 0) == 1 and \
                len(posts.get((f"alert:{g['group_id']}:1", "verdict"), [])) == 1
            detail = f"group {g and g['group_id']}, notifications {g and notes.get(g['group_id'], 0)}"
        elif e.what == "mention_unique":
            n = mention_job_keys.get(f"diagnose:correlation_id:{e.subject}", 0)
            ok = ok and n == 1 and replies.get(e.ts, 0) == 0
            detail = f"{n} jobs, {replies.get(e.ts, 0)} replies"
        else:
            real_mentions += 1
            ok = ok and replies.get(e.ts, 0) <= 1
            detail = f"{replies.get(e.ts, 0)} replies"
        if ok:
            events_ok += 1
        else:
            problems["lost or doubled: a redelivered event not handled exactly once"].append(
                f"{e.what} {e.event_id} x{e.deliveries} {e.mode}: {detail}")
    real_cids = set(load.cids)
    real_mention_jobs = sum(1 for j in mention_jobs if j["dedup_key"].rsplit(":", 1)[-1] in real_cids)
    real_replies = sum(v for ts, v in replies.items()
                       if any(e.ts == ts and e.what == "mention_real" for e in load.events))
    if real_mention_jobs + real_replies != real_mentions:
        problems["lost or doubled: mentions of real ids: jobs + 'already running' replies != events"].append(
            f"{real_mention_jobs} jobs + {real_replies} replies vs {real_mentions} events")

    failed_jobs = [j for j in jobs if j["status"] == "failed"]
    for j in failed_jobs[:10]:
        problems["errors: jobs failed for good"].append(f"job {j['job_id']} {j['kind']}: {j['last_error']}")
    retried = [j for j in jobs if j["attempts"] > 1]
    return {
        "jobs": {"total": len(jobs), "by_kind": dict(Counter(j["kind"] for j in jobs)),
                 "by_status": dict(Counter(j["status"] for j in jobs)),
                 "attempts_gt_1": len(retried),
                 "attempts_gt_1_jobs": [f"{j['job_id']} {j['kind']} x{j['attempts']}: {j['last_error']}"
                                        for j in retried[:20]],
                 "diagnosis_runs_left_running": int(running_runs),
                 "max_active_jobs_per_dedup_key_sampled": None},
        "diagnose_threads_ok": threads_ok, "diagnose_jobs": len(diag),
        "slash_new_acks": sum(load.slash_new.values()), "slash_jobs": sum(slash_jobs.values()),
        "slash_jobs_without_an_ack": jobs_without_ack,
        "alert_groups": len(groups), "alert_anchors_ok": anchors_ok, "storms": len(storms),
        "alert_notifications": sum(notes.values()), "alert_webhooks_accepted": sum(load.alerts_accepted.values()),
        "vote_reactions_checked": votes_ok + len(problems.get("lost: a vote reaction not in the audit exactly once",
                                                               [])),
        "vote_reactions_ok": votes_ok, "approver_votes": approver_votes,
        "audit_types": dict(audit_types), "prompts": dict(prompts), "freezes": int(freezes),
        "events_redelivered": sum(1 for e in load.events if e.acked), "events_ok": events_ok,
        "events_by_what": dict(Counter(e.what for e in load.events)),
        "events_not_once_by_mode": dict(Counter(
            " ".join(p.split(": ")[0].split(" ", 3)[::3]) for p in problems.get(
                "lost or doubled: a redelivered event not handled exactly once", []))),
        "posts_keyed": sum(len(v) for v in posts.values()), "posts_unkeyed": unkeyed,
        "doubled_posts": len(doubled),
        "problems": {k: v[:20] for k, v in problems.items()},
        "problem_counts": {k: len(v) for k, v in problems.items()},
    }


def log_errors(paths: Sequence[Path]) -> dict[str, Any]:
    """Warnings, errors and tracebacks in each process's log (JSON lines)."""
    out: dict[str, Any] = {}
    for p in paths:
        text = p.read_text(errors="replace") if p.exists() else ""
        levels: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        for ln in text.splitlines():
            try:
                doc = json.loads(ln)
            except ValueError:
                continue
            level = str(doc.get("level", "")).lower() if isinstance(doc, dict) else ""
            levels[level] += 1
            if level in ("warning", "error", "critical"):
                kinds[f"{level}: {re.sub(r'[0-9]+', 'N', str(doc.get('msg', '')))[:140]}"] += 1
        out[p.name] = {"lines": sum(levels.values()), "errors": levels["error"] + levels["critical"],
                       "warnings": levels["warning"], "tracebacks": text.count("Traceback"),
                       "top": kinds.most_common(8)}
    return out


# ------------------------------------------------------------------ report


def report(args: argparse.Namespace, load: Load, cluster: Cluster, sampler: Sampler, checks: dict[str, Any],
           jobs_rows: list[dict[str, Any]], load_s: float, settle_s: float) -> dict[str, Any]:
    kinds = ("slash", "alert", "reaction", "event")
    rates = {"slash": args.rate_slash, "alert": args.rate_alerts, "reaction": args.rate_reactions,
             "event": args.rate_events}
    print()
    print(f"Three recon serve processes, {load_s:.0f} s of mixed load"
          f"{' with a SIGKILL + restart' if args.chaos else ''}; {args.slots} job slots each, lease {args.lease_s} s")
    print()
    print("| kind | offered /s | requests | answered /s | 2xx | errors | p50 ms | p95 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    lat: dict[str, Any] = {}
    for k in kinds:
        rs = [r for r in load.recs if r.kind == k]
        ok = [r for r in rs if 200 <= r.status < 300]
        ms = [r.ms for r in ok]
        s = summary(ms)
        errors = len(rs) - len(ok)
        lat[k] = {"offered_per_s": rates[k], "requests": len(rs), "answered_per_s": len(ok) / load_s,
                  "ok": len(ok), "errors": errors, "latency_ms": s,
                  "outcomes": dict(Counter(r.outcome if len(r.outcome) < 60 else r.outcome[:60] for r in rs)),
                  "by_sub": {sub: summary([r.ms for r in ok if r.sub == sub]) for sub in sorted({r.sub for r in rs})},
                  "retries": summary([r.ms for r in ok if r.retry])}
        print(f"| {k} | {rates[k]:g} | {len(rs)} | {len(ok) / load_s:.2f} | {len(ok)} | {errors} | "
              f"{fmt(s.get('median'))} | {fmt(s.get('p95'))} | {fmt(s.get('p99'))} | {fmt(s.get('max'))} |")
    # per-window throughput and latency: is it held?
    print()
    windows: list[dict[str, Any]] = []
    n_win = max(1, round(load_s / WINDOW_S))
    finished = [(j["finished_at"].timestamp() - load.wall0) for j in jobs_rows if j["finished_at"] is not None]
    print("| window (s) | requests/s | slash p95 ms | alert p95 ms | jobs done/s | backlog max (queued+running) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w in range(n_win):
        a, b = w * WINDOW_S, (w + 1) * WINDOW_S if w < n_win - 1 else load_s
        rs = [r for r in load.recs if a <= r.t < b]
        sl = [r.ms for r in rs if r.kind == "slash" and r.status == 200]
        al = [r.ms for r in rs if r.kind == "alert" and r.status == 200]
        done = sum(1 for f in finished if a <= f < b)
        bl = [q + r for t, q, r in sampler.backlog if a <= t < b]
        row = {"from_s": a, "to_s": b, "requests_per_s": len(rs) / (b - a), "slash_p95_ms": pct(sl, 95),
               "alert_p95_ms": pct(al, 95), "jobs_done_per_s": done / (b - a), "backlog_max": max(bl, default=0)}
        windows.append(row)
        print(f"| {a:.0f}–{b:.0f} | {row['requests_per_s']:.2f} | {fmt(row['slash_p95_ms'])} | "
              f"{fmt(row['alert_p95_ms'])} | {row['jobs_done_per_s']:.2f} | {row['backlog_max']} |")
    done_in_load = sum(1 for f in finished if 0 <= f < load_s)
    turnaround = [(j["finished_at"] - j["created_at"]).total_seconds() for j in jobs_rows
                  if j["finished_at"] is not None and j["status"] == "done"]
    by_kind_turn = {k: summary([(j["finished_at"] - j["created_at"]).total_seconds() for j in jobs_rows
                                if j["kind"] == k and j["finished_at"] is not None])
                    for k in sorted({j["kind"] for j in jobs_rows})}
    print()
    print(f"jobs: {len(jobs_rows)} ({', '.join(f'{k} {v}' for k, v in checks['jobs']['by_kind'].items())}); "
          f"{done_in_load / load_s:.2f} done/s during the load, {len(finished) / (load_s + settle_s):.2f}/s "
          f"including the drain ({settle_s:.1f} s after the load stopped); turnaround median "
          f"{fmt(statistics.median(turnaround) if turnaround else None, 2)} s, p95 {fmt(pct(turnaround, 95), 2)} s")
    # memory
    print()
    print("| process | pid | RSS after start MB | RSS max MB | RSS end MB | CPU s | CPU % | target <= 200 MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    mem: list[dict[str, Any]] = []
    for s in cluster.slots:
        for pid in s.pids:
            smp = [x for x in s.samples if x[1] == pid]
            if not smp:
                continue
            rss = [x[2] / 2**20 for x in smp]
            cpu = smp[-1][3]
            span = max(1e-9, smp[-1][0] - smp[0][0])
            row = {"process": s.index, "pid": pid, "rss_first_mb": rss[0], "rss_max_mb": max(rss),
                   "rss_end_mb": rss[-1], "cpu_s": cpu, "cpu_pct": 100 * (cpu - smp[0][3]) / span,
                   "samples": len(rss), "target_met": max(rss) <= TARGET_RSS_MB,
                   "rss_mb_every_10_s": [round(r, 1) for r in rss[::10]]}
            mem.append(row)
            print(f"| {s.index} | {pid} | {rss[0]:.1f} | {max(rss):.1f} | {rss[-1]:.1f} | {cpu:.1f} | "
                  f"{row['cpu_pct']:.0f} | {'met' if row['target_met'] else 'MISSED'} |")
    me = sampler.self_cpu
    bench_cpu = 100 * (me[-1][1] - me[0][1]) / max(1e-9, me[-1][0] - me[0][0]) if len(me) > 1 else float("nan")
    print(f"(this process: load generator + Slack stand-in, {bench_cpu:.0f} % CPU)")
    # checks
    print()
    print(f"diagnose threads complete: {checks['diagnose_threads_ok']}/{checks['diagnose_jobs']}; "
          f"'Diagnosing' acks {checks['slash_new_acks']} → slash jobs {checks['slash_jobs']} "
          f"({checks['slash_jobs_without_an_ack']} without an ack)")
    print(f"alert groups {checks['alert_groups']} (storms {checks['storms']}): anchors ok {checks['alert_anchors_ok']};"
          f" webhooks accepted {checks['alert_webhooks_accepted']}, notifications stored "
          f"{checks['alert_notifications']}")
    print(f"vote reactions audited exactly once: {checks['vote_reactions_ok']}/{checks['vote_reactions_checked']} "
          f"({checks['approver_votes']} by approvers); prompts {checks['prompts']}, freezes {checks['freezes']}")
    print(f"redelivered events handled once: {checks['events_ok']}/{checks['events_redelivered']} "
          f"{checks['events_by_what']}; not once, by delivery: {checks['events_not_once_by_mode']}")
    print(f"posts: {checks['posts_keyed']} keyed, {checks['posts_unkeyed']} unkeyed; (ns, key) posted twice: "
          f"{checks['doubled_posts']}; jobs with attempts > 1: {checks['jobs']['attempts_gt_1']}; max active jobs "
          f"per dedup key (sampled): {sampler.max_active_per_key}")
    if load.dropped:
        print(f"load generator dropped (max in flight reached): {dict(load.dropped)}")
    if load.skipped:
        print(f"skipped: {dict(load.skipped)}")
    failover = chaos_summary(cluster.kills)
    if failover["kills"]:
        print(f"failover: {failover['kills']} SIGKILLs of a process holding running jobs; {failover['jobs']} jobs "
              f"held, {failover['resumed']} resumed by another process; kill to resumed p50 "
              f"{fmt(failover['p50_s'], 2)} s, max {fmt(failover['max_s'], 2)} s (target <= {TARGET_RESUME_S:.0f} s: "
              f"{'met' if failover['target_met'] else 'MISSED'})")
    if checks["problems"]:
        print("\nPROBLEMS:")
        for k, v in checks["problems"].items():
            print(f"  {k}: {checks['problem_counts'][k]}, e.g. {v[:3]}")
    else:
        print("\nno lost work, no doubled work")
    checks["jobs"]["max_active_jobs_per_dedup_key_sampled"] = sampler.max_active_per_key
    return {"requests": lat, "windows": windows, "memory": mem, "bench_process_cpu_pct": bench_cpu,
            "jobs_done_per_s_during_load": done_in_load / load_s,
            "jobs_done_per_s_including_drain": len(finished) / (load_s + settle_s),
            "settle_s": settle_s, "job_turnaround_s": summary(turnaround), "job_turnaround_s_by_kind": by_kind_turn,
            "backlog_max": max((q + r for _, q, r in sampler.backlog), default=0),
            "backlog_every_10_s": [(round(t), q, r) for t, q, r in sampler.backlog[::10]],
            "checks": checks, "dropped": dict(load.dropped), "skipped": dict(load.skipped),
            "chaos": cluster.kills, "failover": failover, "deliveries": load.deliveries}


# ------------------------------------------------------------------ main


async def main_async(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    root = fast_tmp_dir("recon-bench-load3-")
    pgdata = root / "pgdata"
    logdir = root / "logs"
    logdir.mkdir()
    cluster: Cluster | None = None
    try:
        server = await ensure_embedded(pgdata, durable=False)
        plat = live_platform()
        billing_url = await create_db(server.base_uri, "load_billing")
        conn = await asyncpg.connect(billing_url)
        try:
            await load_billing(conn, plat, replace=True)
        finally:
            await conn.close()
        write_evidence(plat, root / "evidence")
        cids = sorted({c.correlation_id for c in plat.calls})
        instances = sorted({i.app_instance_id for i in plat.instances})
        store_url = await create_db(server.base_uri, "load_store")
        print(f"setup: embedded PostgreSQL + demo platform ({len(cids)} correlation ids, {len(instances)} app "
              f"instances) in {time.perf_counter() - started:.1f} s; logs in {logdir}", file=sys.stderr)
        async with SlackStandIn() as slack:
            extra = {"RECON_APPROVERS": ",".join(APPROVERS), "RECON_APPROVAL_QUORUM": str(args.quorum),
                     "ALERT_WEBHOOK_TOKEN": TOKEN, "RECON_ALERT_CHANNEL": ALERTS, "RECON_ALERT_ROUTES": ROUTES,
                     "RECON_WATCH_CHANNELS": WATCHED, "RECON_WORKER_SLOTS": str(args.slots),
                     "RECON_JOB_LEASE_S": str(args.lease_s), "RECON_SHUTDOWN_GRACE_S": "10",
                     "RECON_DATA_DIR": str(root / "data")}
            if args.slack_rate:
                extra["RECON_SLACK_RATE_PER_S"] = str(args.slack_rate)
            env = bot_env(store_url, billing_url, root / "evidence", slack, **extra)
            cluster = Cluster(env, logdir)
            t = time.perf_counter()
            await cluster.start(0)  # migrates the store
            await asyncio.gather(cluster.start(1), cluster.start(2))
            print(f"three recon serve processes ready in {time.perf_counter() - t:.1f} s "
                  f"(pids {[s.pids[-1] for s in cluster.slots]})", file=sys.stderr)
            sampler = Sampler(cluster, store_url)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
                load = Load(args, cluster, slack, http, cids, instances)
                load.t0 = time.monotonic()
                load.wall0 = time.time()
                sampler.start(load.t0)
                stop_at = load.t0 + args.duration
                tasks = [asyncio.create_task(load.paced("slash", args.rate_slash, load.one_slash, stop_at)),
                         asyncio.create_task(load.paced("alert", args.rate_alerts, load.one_alert, stop_at)),
                         asyncio.create_task(load.paced("reaction", args.rate_reactions, load.one_reaction, stop_at)),
                         asyncio.create_task(load.paced("event", args.rate_events, load.one_event, stop_at))]
                if args.chaos:
                    tasks.append(asyncio.create_task(load.chaos(load.t0 + args.duration * args.chaos_at,
                                                                args.chaos_victim, args.chaos_down_s,
                                                                args.chaos_kills, store_url)))
                tick = asyncio.create_task(progress(load, sampler, args.duration))
                await asyncio.gather(*tasks)
                if load.inflight:
                    await asyncio.wait(set(load.inflight))
                tick.cancel()
                load_s = time.monotonic() - load.t0
                print(f"load done: {load.deliveries} deliveries in {load_s:.1f} s; waiting for the jobs to settle",
                      file=sys.stderr)
                try:
                    settle_s = await settle(store_url, args.settle_timeout)
                except TimeoutError:
                    settle_s = float(args.settle_timeout)
                    print(f"  jobs did not settle within {args.settle_timeout} s", file=sys.stderr)
                await slack_quiet(slack)
                await asyncio.sleep(1.5)  # one more RSS sample after the drain (the sampling period)
                await sampler.stop()
            checks = await verify(load, slack, store_url)
            c2 = await asyncpg.connect(store_url)
            try:
                jobs_rows = [dict(r) for r in await c2.fetch(
                    "select kind, status, created_at, finished_at from jobs")]
            finally:
                await c2.close()
            out = report(args, load, cluster, sampler, checks, jobs_rows, load_s, settle_s)
            codes = await cluster.stop_all()
            out["exit_codes"] = codes
            out["process_logs"] = log_errors([p for s in cluster.slots for p in s.logs])
    finally:
        if cluster is not None:
            for s in cluster.slots:
                if s.proc is not None and s.proc.proc.poll() is None:
                    s.proc.proc.kill()
        await stop_embedded(pgdata)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)
    mem_ok = all(m["target_met"] for m in out["memory"])
    slash = out["requests"]["slash"]["latency_ms"]
    integrity_ok = not out["checks"]["problems"]
    print(f"\ntarget RSS <= {TARGET_RSS_MB:.0f} MB per process: {'met' if mem_ok else 'MISSED'} (max "
          f"{max(m['rss_max_mb'] for m in out['memory']):.1f} MB)")
    print(f"slash ack p99 {fmt(slash.get('p99'))} ms: Slack's 3 s deadline "
          f"{'met' if slash.get('p99', 1e9) <= SLACK_DEADLINE_MS else 'MISSED'}, house target "
          f"{TARGET_ACK_P99_MS:.0f} ms {'met' if slash.get('p99', 1e9) <= TARGET_ACK_P99_MS else 'MISSED'}")
    print(f"no lost work, no doubled work: {'met' if integrity_ok else 'MISSED'}")
    doc = {
        "benchmark": "load_three",
        "when": datetime.now(UTC).isoformat(),
        "host": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "machine": host_platform.machine(),
                 "mem_total_mb": psutil.virtual_memory().total / 2**20},
        "git": git_head(),
        "params": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "store": "embedded PostgreSQL, durable=False (fsync off), /dev/shm",
        "targets": {"rss_mb": TARGET_RSS_MB, "slash_ack_p99_ms": TARGET_ACK_P99_MS,
                    "slack_deadline_ms": SLACK_DEADLINE_MS},
        "targets_met": {"rss": mem_ok, "integrity": integrity_ok,
                        "resume_after_sigkill": out["failover"]["target_met"] if args.chaos else None,
                        "slash_ack_p99_house": slash.get("p99", 1e9) <= TARGET_ACK_P99_MS,
                        "slash_ack_p99_slack": slash.get("p99", 1e9) <= SLACK_DEADLINE_MS},
        "results": out,
        "elapsed_s": time.perf_counter() - started,
    }
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    path = Path(args.json) if args.json else RESULTS / f"load_three{'-chaos' if args.chaos else ''}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str))
    print(f"\nJSON: {path}  ({time.perf_counter() - started:.0f} s)")
    return 0 if mem_ok and integrity_ok else 1


async def progress(load: Load, sampler: Sampler, duration: float) -> None:
    """A line every 30 s on stderr."""
    while True:
        await asyncio.sleep(WINDOW_S)  # a progress ticker
        rss = [f"{s.samples[-1][2] / 2**20:.0f}" for s in load.cluster.slots if s.samples]
        bl = sampler.backlog[-1] if sampler.backlog else (0, 0, 0)
        print(f"  {load.now():5.0f}/{duration:.0f} s: {load.deliveries} deliveries, RSS MB {rss}, backlog "
              f"queued {bl[1]} running {bl[2]}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180)")
    p.add_argument("--rate-slash", type=float, default=2.0, help="slash commands per second (default 2)")
    p.add_argument("--rate-alerts", type=float, default=2.0, help="Alertmanager notifications per second (default 2)")
    p.add_argument("--rate-reactions", type=float, default=2.0, help="reactions per second (default 2)")
    p.add_argument("--rate-events", type=float, default=0.5,
                   help="redelivered events (mentions, alert posts) per second, each sent 2-3 times (default 0.5)")
    p.add_argument("--max-requests", type=int, default=5000, help="at most this many deliveries in all")
    p.add_argument("--max-inflight", type=int, default=200, help="at most this many requests in flight")
    p.add_argument("--max-groups", type=int, default=30, help="alert groups (default 30)")
    p.add_argument("--slots", type=int, default=4, help="RECON_WORKER_SLOTS per process (default 4)")
    p.add_argument("--lease-s", type=float, default=10.0, help="RECON_JOB_LEASE_S (default 10)")
    p.add_argument("--quorum", type=int, default=2, help="RECON_APPROVAL_QUORUM (default 2)")
    p.add_argument("--slack-rate", type=float, default=0.0,
                   help="RECON_SLACK_RATE_PER_S (default: the bot's own, 1 message/s per channel)")
    p.add_argument("--chaos", action="store_true", help="SIGKILL one process mid-run and restart it")
    p.add_argument("--chaos-at", type=float, default=0.5, help="when, as a fraction of the run (default 0.5)")
    p.add_argument("--chaos-victim", type=int, default=1, choices=(0, 1, 2))
    p.add_argument("--chaos-down-s", type=float, default=3.0, help="how long it stays down (default 3)")
    p.add_argument("--chaos-kills", type=int, default=4,
                   help="SIGKILLs, evenly from --chaos-at to the end, each of a process holding running jobs "
                        "(default 4)")
    p.add_argument("--settle-timeout", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", help="where to write the JSON (default benchmarks/results/load_three-<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, evidence, process logs)")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
