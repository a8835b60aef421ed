"""Alert storm: 5,000 alerts in 50 groups posted to ``POST /alerts/alertmanager``.

Usage::

    .venv/bin/python benchmarks/alert_storm.py [--modes am,hammer] [--alerts 5000] [--groups 50]
                                               [--am-waves 4] [--concurrency 50] [--slack-rate 1000]
                                               [--slack-burst 5] [--slots 4] [--timeout 240] [--json PATH]
                                               [--sender process|loop]

Setup (as ``slack_ack.py``): an embedded PostgreSQL (``durable=False``) in a temp dir
under ``/dev/shm``; the demo platform (``build_platform(demo_spec(), now, seed=7)``)
loaded into a billing database, its logs and traces written as an offline evidence
folder; a Slack Web API stand-in and ``recon serve`` (HTTP mode) **in this process**
(``bot.commands.serve``) with ``ALERT_WEBHOOK_TOKEN`` and ``RECON_ALERT_CHANNEL`` set.
Each mode runs on a fresh store database, a fresh stand-in and a fresh ``recon serve``.

The alerts: ``--groups`` groups (Alertmanager ``group_by: [alertname, app_instance_id]``)
of ``--alerts / --groups`` alerts each, all firing, all routed to one channel. Groups
cycle through 5 alert names and 5 severities (critical, page, warning, info, low); the
alerts of a group differ by an ``instance`` label. Each group names an ``org_id`` and an
``app_instance_id``; all but 3 are ids that exist nowhere (cheap diagnoses: nothing
found); 2 groups name drifted app instances of the demo platform and 1 group only a
real org (an org-scope diagnosis), so real diagnoses with findings (and freeze prompts)
run during the storm too.

How alerts map to notifications (Alertmanager webhook payload version 4, bearer token):

* ``am`` ("Alertmanager-like"): what Alertmanager sends when a storm ramps up. Every
  group gets ``--am-waves`` notifications (default 4: after ``group_wait`` and then after
  each ``group_interval``, compressed to no wait), and notification k of a group carries
  all the group's alerts firing so far (the first k/waves of its alerts), as Alertmanager
  resends every current alert of a group. A wave is one notification per group, sent
  concurrently; the next wave starts when the previous one is answered. 5,000 distinct
  alerts, 200 notifications, 12,500 alert entries carried.
* ``hammer``: 5,000 notifications of one alert each (the group's key, the alert's own
  labels), in a seeded random order, ``--concurrency`` (50) in flight at once over
  loopback: the worst case of a sender that does not batch (or a retry storm). The
  first notification of a group opens it, the other 99 are repeats.

Who sends (``--sender``): by default a sender process of its own (this script with
``--sender-plan``), as Alertmanager is, with its own event loop; ``loop`` runs the
sender in the bot's event loop instead (the previous way: the sender's work then delays
the bot's, which a real sender never does; kept for comparison). Either way the sender
opens ``--concurrency`` keep-alive connections once and sends every wave over them, as
Alertmanager's webhook client keeps its connections (prometheus/common
``config/http_config.go``: keep-alives on, up to 1000 idle connections per host).

Measured per mode: the webhook's answer latency per request, by the sender (from just
before the pre-serialised request is sent to its answer read); the time of
``AlertStore.intake`` (a handler's wait for its notification to be stored, timed by a
wrapper the benchmark installs) and of every batch the intake writes (size and time of
one ``recon_alert_intake`` call); the bot's event-loop stalls while sending (a 5 ms
ticker); the CPU that the bot, PostgreSQL and the sender used while sending (from the
sender's ``go`` to its last answer), and the bot's by thread (from /proc: on 2 cores,
whatever else runs delays the bot); accepted notifications and alerts per second over
the same span; in the Slack stand-in: top-level messages, storm
summaries and replies, the distinct alert groups that got an anchor (must equal
``--groups``), duplicate anchors, ``chat.update`` calls; the time from the first request
until every group has a verdict and until everything is settled (every job ended, no
unhandled notification), awaited on ``NOTIFY recon_jobs_done`` as
``tests/e2e/slackbot.jobs_settled`` does, never by sleeping; the Slack posting rate per
channel (messages/s overall, the most in any 1 s window, and the calls that a token
bucket of ``RECON_SLACK_RATE_PER_S`` / ``RECON_SLACK_BURST`` would not have let
through). Storm settings are the defaults (threshold 5 groups in 120 s, gather 3 s);
``RECON_WORKER_POLL_S`` is the default 2 s.

``--slack-rate`` sets ``RECON_SLACK_RATE_PER_S`` (default here 1000: throughput of the
bot itself; the bot's default is 1/s per channel, Slack's own posting limit, under which
50 groups' triage takes minutes: see the README section). Results: a table on stdout,
JSON in ``benchmarks/results/``. Loopback only; a run is bounded by ``--timeout`` per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import logging
import os
import platform as host_platform
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import fmt_row, serving, summary  # noqa: E402
from bot.scenario import build_platform, demo_spec  # noqa: E402
from bot.scenario.evidence_files import write_evidence  # noqa: E402
from bot.scenario.load import load_billing  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.store.alerts import AlertStore  # noqa: E402
from bot.store.db import with_database  # noqa: E402
from bot.store.embedded import ensure_database, ensure_embedded, stop_embedded  # noqa: E402
from bot.store.intake import IntakeWriter  # noqa: E402
from bot.store.jobs import DONE_CHANNEL  # noqa: E402
from tests.standins.slack import SlackStandIn  # noqa: E402
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SCRIPT = Path(__file__).resolve()
CHANNEL = "C0STORMBENCH"
TOKEN = "alert-storm-bench-token"
TARGET_P99_MS = 100.0
SEED = 7
ALERTNAMES = ("AppRuntimeMeteringDrift", "UsageLedgerMismatch", "BillingWorkerLag", "OutboxBacklog",
              "ControlPlaneChargeSpike")
SEVERITIES = ("critical", "page", "warning", "info", "low")
POSTING = ("chat.postMessage", "chat.update")


# ------------------------------------------------------------------ small helpers








class LoopLag:
    """A ticker that measures how late the event loop wakes it (stalls by CPU work)."""

    def __init__(self, tick_s: float = 0.005) -> None:
        self.tick_s = tick_s
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.tick_s)  # a probe, not a wait for something
            self.lags_ms.append((time.perf_counter() - t - self.tick_s) * 1000)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class IntakeTimes:
    """Times ``AlertStore.intake`` (a webhook's wait for its notification to be stored)
    while installed, and every batch the intake writes (``IntakeWriter._call``: one
    round trip of ``recon_alert_intake``): its size and time."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.batches: list[tuple[int, float]] = []
        self._orig: Callable[..., Awaitable[Any]] | None = None
        self._orig_call: Callable[..., Awaitable[Any]] | None = None

    def clear(self) -> None:
        self.ms.clear()
        self.batches.clear()

    def __enter__(self) -> IntakeTimes:
        orig, orig_call = AlertStore.intake, IntakeWriter._call
        self._orig, self._orig_call = orig, orig_call
        times, batches = self.ms, self.batches

        async def timed(store: AlertStore, *a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await orig(store, *a, **kw)
            finally:
                times.append((time.perf_counter() - t0) * 1000)

        async def call(writer: IntakeWriter, conn: Any, batch: Sequence[Any]) -> Any:
            t0 = time.perf_counter()
            try:
                return await orig_call(writer, conn, batch)
            finally:
                batches.append((len(batch), (time.perf_counter() - t0) * 1000))

        AlertStore.intake = timed  # type: ignore[method-assign]
        IntakeWriter._call = call  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        AlertStore.intake = self._orig  # type: ignore[method-assign, assignment]
        IntakeWriter._call = self._orig_call  # type: ignore[method-assign, assignment]


def thread_cpu() -> dict[str, float]:
    """CPU time (s) of each of this process's threads, by name (from /proc: Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Counter[str] = Counter()
    for task in Path("/proc/self/task").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            comm = (task / "comm").read_text().strip()
            parts = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out["event loop (main thread)" if task.name == str(os.getpid()) else
                f"other threads ({comm.rstrip('_0123456789')})"
                ] += (int(parts[11]) + int(parts[12])) / tick
    return dict(out)


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far (user + system, s): this process (the bot, its workers and the
    Slack stand-in), its waited-for children (the sender process), and every PostgreSQL
    process on the machine (read from /proc; the embedded server is the only one here)."""
    tick = os.sysconf("SC_CLK_TCK")
    pg = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)
            if fields[0].endswith("(postgres"):
                parts = fields[1].split()
                pg += (int(parts[11]) + int(parts[12])) / tick
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"bot": me.ru_utime + me.ru_stime, "sender": kids.ru_utime + kids.ru_stime, "postgres": pg}


def fast_tmp_dir(prefix: str) -> Path:
    """A new temp dir on tmpfs (``/dev/shm``) when there is one."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


# ------------------------------------------------------------------ the alerts


@dataclass(frozen=True, slots=True)
class Group:
    index: int
    alertname: str
    severity: str
    labels: dict[str, str]  # the group's common labels (alertname, severity, org_id, app_instance_id, …)
    real: str  # "" or what the real id is ("app_instance", "org")

    @property
    def key(self) -> str:
        scope = self.labels.get("app_instance_id") or self.labels.get("org_id", "")
        return f'{{}}/{{severity=~".+"}}:{{alertname="{self.alertname}", app_instance_id="{scope}"}}'


def make_groups(n: int, real_instances: Sequence[tuple[str, str]], real_org: str) -> list[Group]:
    out = []
    real_at = {n // 5: "app_instance", n // 2: "app_instance", (4 * n) // 5: "org"}
    inst = iter(real_instances)
    for i in range(n):
        name, sev = ALERTNAMES[i % len(ALERTNAMES)], SEVERITIES[(i // len(ALERTNAMES) + i) % len(SEVERITIES)]
        labels = {"alertname": name, "severity": sev, "team": "billing"}
        kind = real_at.get(i, "")
        if kind == "app_instance":
            aid, org = next(inst)
            labels |= {"org_id": org, "app_instance_id": aid}
        elif kind == "org":
            labels |= {"org_id": real_org}
        else:
            labels |= {"org_id": f"org-storm-{i % 7}", "app_instance_id": f"ai-storm-{i:04d}"}
        out.append(Group(i, name, sev, labels, kind))
    return out


def alert_doc(g: Group, j: int, starts: datetime) -> dict[str, Any]:
    labels = {**g.labels, "instance": f"node-{g.index:03d}-{j:04d}:9100"}
    return {"status": "firing", "labels": labels,
            "annotations": {"summary": f"{g.alertname} on {labels['instance']}"},
            "startsAt": (starts + timedelta(seconds=j)).isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"{g.index:04x}{j:012x}"}


def notification(g: Group, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    common = dict(alerts[0]["labels"]) if len(alerts) == 1 else dict(g.labels)
    return {"version": "4", "groupKey": g.key, "truncatedAlerts": 0, "status": "firing", "receiver": "recon",
            "groupLabels": {"alertname": g.alertname, "app_instance_id": g.labels.get("app_instance_id", "")},
            "commonLabels": common,
            "commonAnnotations": {"summary": f"{g.alertname}: {len(alerts)} alert(s)"} if len(alerts) > 1
            else dict(alerts[0]["annotations"]),
            "externalURL": "http://alertmanager:9093", "alerts": alerts}


@dataclass(slots=True)
class Plan:
    """The requests of a mode: waves of (group index, alerts carried, new alerts, body)."""

    waves: list[list[tuple[int, int, int, bytes]]]
    distinct_alerts: int
    entries: int

    @property
    def requests(self) -> int:
        return sum(len(w) for w in self.waves)


def plan(mode: str, groups: list[Group], per_group: int, waves: int, seed: int) -> Plan:
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    alerts = {g.index: [alert_doc(g, j, starts) for j in range(per_group)] for g in groups}
    out: list[list[tuple[int, int, int, bytes]]] = []
    if mode == "am":
        cut = [0] + [-(-per_group * k // waves) for k in range(1, waves + 1)]
        for k in range(1, waves + 1):
            out.append([(g.index, cut[k], cut[k] - cut[k - 1],
                         json.dumps(notification(g, alerts[g.index][:cut[k]])).encode()) for g in groups])
    elif mode == "hammer":
        one = [(g.index, j) for g in groups for j in range(per_group)]
        random.Random(seed).shuffle(one)
        out.append([(gi, 1, 1, json.dumps(notification(groups[gi], [alerts[gi][j]])).encode()) for gi, j in one])
    else:
        raise SystemExit(f"unknown mode {mode!r} (am, hammer)")
    return Plan(out, per_group * len(groups), sum(n for w in out for _, n, _, _ in w))


# ------------------------------------------------------------------ environment


@dataclass(slots=True)
class Env:
    root: Path
    server_uri: str
    billing_url: str
    evidence: Path
    real_instances: list[tuple[str, str]]
    real_org: str


@contextlib.asynccontextmanager
async def environment(keep: bool) -> AsyncIterator[Env]:
    root = fast_tmp_dir("recon-bench-storm-")
    pgdata = root / "pgdata"
    try:
        t0 = time.perf_counter()
        server = await ensure_embedded(pgdata, durable=False)
        plat = build_platform(demo_spec(), now=datetime.now(UTC).replace(microsecond=0), seed=SEED)
        await ensure_database(server.base_uri, "bench_billing")
        billing_url = with_database(server.base_uri, "bench_billing")
        conn = await asyncpg.connect(billing_url)
        try:
            await load_billing(conn, plat, replace=True)
        finally:
            await conn.close()
        write_evidence(plat, root / "evidence")
        drifted = sorted({(e.app_instance_id, e.org_id) for e in plat.expected})
        org = next(o for _, o in drifted if o != drifted[0][1])
        print(f"setup: embedded PostgreSQL + demo platform ({len(plat.instances)} instances, {len(plat.usage)} usage "
              f"rows) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        env = Env(root, server.base_uri, billing_url, root / "evidence", drifted[:2], org)
        del plat
        gc.collect()
        yield env
    finally:
        await stop_embedded(pgdata)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_bot(env: Env, store_url: str, slack: SlackStandIn, args: argparse.Namespace) -> AsyncIterator[str]:
    settings = Settings(**{  # type: ignore[arg-type]
        "DATABASE_URL": store_url,
        "BILLING_DATABASE_URL": env.billing_url,
        "RECON_EVIDENCE_DIR": str(env.evidence),
        "RECON_DATA_DIR": str(env.root / "data"),
        "SLACK_BOT_TOKEN": "xoxb-recon-bench-token",
        "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": slack.url.rstrip("/"),
        "ALERT_WEBHOOK_TOKEN": TOKEN,
        "RECON_ALERT_CHANNEL": CHANNEL,
        "RECON_SLACK_RATE_PER_S": str(args.slack_rate),
        "RECON_SLACK_BURST": str(args.slack_burst),
        "RECON_WORKER_SLOTS": str(args.slots),
        "RECON_SHUTDOWN_GRACE_S": "30",
        "LOKI_URL": "",
        "TEMPO_URL": "",
    })
    async with serving(settings, stop_timeout=90) as url:
        yield url


# ------------------------------------------------------------------ sending and waiting


@dataclass(slots=True)
class Answer:
    group: int
    alerts: int
    ms: float
    status: int
    action: str
    at: float  # monotonic, when answered


def http_requests(url: str, reqs: Sequence[tuple[int, int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Each request of ``reqs`` as the bytes of an HTTP/1.1 POST to ``url`` (bearer token, JSON)."""
    u = urlsplit(url)
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()
    return [(gi, n, head + str(len(body)).encode() + b"\r\n\r\n" + body) for gi, n, _, body in reqs]


Lane = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def send_all(lanes: Sequence[Lane], reqs: Sequence[tuple[int, int, bytes]]) -> list[Answer]:
    """``reqs`` over the keep-alive connections ``lanes``, each sending the next request
    when its last is answered. A bare HTTP/1.1 client (prepared bytes out, status line,
    headers and ``Content-Length`` body in), so that the sender costs the machine little
    CPU, as a real sender (Alertmanager is a compiled program) would."""
    out: list[Answer] = []
    it = iter(reqs)

    async def lane(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for gi, n, request in it:
            t0 = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            text = await reader.readexactly(length)
            ms = (time.perf_counter() - t0) * 1000
            action = ""
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(text)
                action = str(doc.get("action") or doc.get("error") or "")
            out.append(Answer(gi, n, ms, status, action, time.monotonic()))

    await asyncio.gather(*(lane(r, w) for r, w in lanes))
    return out


async def send_plan(url: str, waves: Sequence[Sequence[tuple[int, int, bytes]]], concurrency: int
                    ) -> tuple[list[Answer], list[float]]:
    """Every wave (prepared by ``http_requests``), one after another, over ``concurrency``
    connections kept open from one wave to the next, as Alertmanager's webhook client
    keeps them (prometheus/common ``config/http_config.go``: keep-alives on, up to 1000
    idle connections per host, idle for up to 5 minutes). The answers and each wave's
    time."""
    u = urlsplit(url)
    assert u.hostname is not None and u.port is not None
    lanes = [await asyncio.open_connection(u.hostname, u.port) for _ in range(concurrency)]
    answers: list[Answer] = []
    wave_s = []
    try:
        for w in waves:
            tw = time.monotonic()
            answers += await send_all(lanes, w)
            wave_s.append(time.monotonic() - tw)
    finally:
        for _, writer in lanes:
            writer.close()
    return answers, wave_s


async def send_from_process(url: str, pl: Plan, concurrency: int, work: Path, on_go: Callable[[float], object],
                            on_sent: Callable[[], object]) -> tuple[list[Answer], list[float], float, float]:
    """The plan sent by a sender process of its own (as Alertmanager is one): this
    script with ``--sender-plan``. It loads the plan, says ``ready``, sends on ``go``,
    says ``sent`` after its last answer and writes its answers. ``on_go`` and
    ``on_sent`` are called as it is told ``go`` and says ``sent``. Returns the answers,
    the waves' times and when ``go`` was said (monotonic; the clock is the machine's,
    shared by both processes), and the CPU the sender used from ``go`` to its last
    answer."""
    plan_file, out_file = work / "plan.json", work / "answers.json"
    await asyncio.to_thread(plan_file.write_text, json.dumps(
        {"url": url, "concurrency": concurrency,
         "waves": [[[g, n, new, body.decode()] for g, n, new, body in w] for w in pl.waves]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--sender-plan", str(plan_file), "--sender-out", str(out_file),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    line = await proc.stdout.readline()
    if line.strip() != b"ready":
        raise SystemExit(f"the sender process did not start: {line!r}")
    go = time.monotonic()
    on_go(go)
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    line = await proc.stdout.readline()
    if line.strip() == b"sent":
        on_sent()
    if await proc.wait() != 0:
        raise SystemExit(f"the sender process failed with exit code {proc.returncode}")
    doc = json.loads(await asyncio.to_thread(out_file.read_text))
    return [Answer(**a) for a in doc["answers"]], doc["wave_s"], go, doc["cpu_s"]


async def sender_main(doc: dict[str, Any]) -> dict[str, Any]:
    """The sender process's work: ``doc`` is the plan ``send_from_process`` wrote."""
    waves = [http_requests(doc["url"], [(g, n, new, body.encode()) for g, n, new, body in w]) for w in doc["waves"]]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    gc.collect()
    cpu0 = time.process_time()
    answers, wave_s = await send_plan(doc["url"], waves, doc["concurrency"])
    cpu_s = time.process_time() - cpu0
    print("sent", flush=True)
    return {"answers": [dataclasses.asdict(a) for a in answers], "wave_s": wave_s,
            "cpu_s": cpu_s}


@dataclass(slots=True)
class Settled:
    triaged_s: float | None = None  # every group has a verdict (seen at a job's end)
    settled_s: float | None = None  # every job ended, no notification unhandled
    jobs: dict[str, int] = field(default_factory=dict)
    failed_jobs: list[str] = field(default_factory=list)


async def until_settled(store_url: str, groups: int, t0: float, limit_s: float) -> Settled:
    """Woken by ``NOTIFY recon_jobs_done`` (each job's end), as ``jobs_settled`` is."""
    res = Settled()
    conn = await asyncpg.connect(store_url)
    changed = asyncio.Event()
    await conn.add_listener(DONE_CHANNEL, lambda *_: changed.set())
    try:
        async with asyncio.timeout(limit_s):
            while True:
                changed.clear()
                row = await conn.fetchrow(
                    "select (select count(*) from alert_groups where verdict is not null) as verdicts,"
                    " (select count(*) from jobs where status not in ('done', 'failed')) as active,"
                    " (select count(*) from alert_notifications where handled_at is null) as unhandled")
                assert row is not None
                now = time.monotonic() - t0
                if res.triaged_s is None and row["verdicts"] >= groups:
                    res.triaged_s = now
                if row["active"] == 0 and row["unhandled"] == 0 and row["verdicts"] >= groups:
                    res.settled_s = now
                    break
                await changed.wait()
        for r in await conn.fetch("select kind, status, count(*) n from jobs group by 1, 2"):
            res.jobs[f"{r['kind']}:{r['status']}"] = int(r["n"])
        res.failed_jobs = [f"{r['job_id']} {r['kind']}: {r['last_error']}" for r in
                           await conn.fetch("select job_id, kind, last_error from jobs where status = 'failed'")]
    finally:
        await conn.close()
    return res


# ------------------------------------------------------------------ the Slack side


def paced_violations(times: Sequence[float], rate: float, burst: int, tolerance_s: float = 0.01) -> list[int]:
    """Indices (into ``times``, ascending) of the calls a token bucket (``rate``/s,
    ``burst``) would not have let through at their time."""
    tokens, last, over = float(burst), None, []
    for i, t in enumerate(times):
        if last is not None:
            tokens = min(burst, tokens + (t - last) * rate)
        last = t
        if tokens + tolerance_s * rate < 1:
            over.append(i)
            tokens = 0.0
        else:
            tokens = max(0.0, tokens - 1)
    return over


def max_in_window(times: Sequence[float], w: float = 1.0) -> int:
    s, best, i = sorted(times), 0, 0
    for j, t in enumerate(s):
        while s[i] < t - w:
            i += 1
        best = max(best, j - i + 1)
    return best


def slack_side(slack: SlackStandIn, t0: float, args: argparse.Namespace) -> dict[str, Any]:
    tops = slack.messages(CHANNEL)
    ns_of: dict[str, tuple[str, str]] = {}
    for m in slack.conversation(CHANNEL):
        p = (m.metadata or {}).get("event_payload") or {}
        ns_of[m.ts] = (str(p.get("ns", "")), str(p.get("key", "")))
    storms = [m for m in tops if ns_of.get(m.ts, ("", ""))[0].startswith("storm:")]
    storm_replies = [r for s in storms for r in slack.thread(CHANNEL, s.ts)[1:]]
    anchors: dict[int, list[str]] = defaultdict(list)
    for m in slack.conversation(CHANNEL):
        ns, key = ns_of.get(m.ts, ("", ""))
        if ns.startswith("alert:") and key == "parent":
            anchors[int(ns.split(":")[1])].append(m.ts)
    top_alert = sum(1 for m in tops if ns_of.get(m.ts, ("", ""))[0].startswith("alert:"))
    in_storm = sum(1 for r in storm_replies if ns_of.get(r.ts, ("", ""))[1] == "parent")
    calls = sorted((c for c in slack.calls if c.method in POSTING and c.ok and c.args.get("channel") == CHANNEL),
                   key=lambda c: c.at)
    times = [c.at for c in calls]
    over = paced_violations(times, args.slack_rate, args.slack_burst)

    def kind(c: Any) -> str:
        if c.method == "chat.postMessage":
            p = (c.args.get("metadata") or {}).get("event_payload") or {}
            key = str(p.get("key", "?"))
            return f"post {str(p.get('ns', '?')).split(':')[0]}:{key.split(':')[0]}"
        ns, key = ns_of.get(str(c.args.get("ts")), ("?", "?"))
        return f"update {ns.split(':')[0]}:{key.split(':')[0]}"

    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    updates_by_ts = Counter(str(c.args.get("ts")) for c in calls if c.method == "chat.update")
    anchor_ts = {ts: gid for gid, tss in anchors.items() for ts in tss}
    updates_per_anchor = [updates_by_ts.get(ts, 0) for ts in anchor_ts]
    # a group's triage is shown by the first update of its anchor (the verdict)
    first_update: dict[str, float] = {}
    for c in calls:
        ts = str(c.args.get("ts"))
        if c.method == "chat.update" and ts in anchor_ts and ts not in first_update:
            first_update[ts] = c.at - t0
    other_methods = Counter(c.method for c in slack.calls if c.method not in POSTING)
    return {
        "top_level_messages": len(tops),
        "top_level_alert_threads": top_alert,
        "storm_summaries": len(storms),
        "storm_replies": len(storm_replies),
        "storm_replies_that_are_group_anchors": in_storm,
        "groups_with_anchor": len(anchors),
        "groups_with_duplicate_anchor": sum(1 for v in anchors.values() if len(v) > 1),
        "replies_total": sum(1 for m in slack.conversation(CHANNEL) if m.is_reply),
        "posts": sum(1 for c in calls if c.method == "chat.postMessage"),
        "updates": sum(1 for c in calls if c.method == "chat.update"),
        "updates_per_anchor": summary(updates_per_anchor),
        "other_api_calls": dict(other_methods),
        "failed_api_calls": sum(1 for c in slack.calls if not c.ok),
        "posting_span_s": span,
        "posting_rate_per_s": (len(times) / span) if span else float("nan"),
        "max_calls_in_1s": max_in_window(times),
        "over_rate_calls": len(over),
        "over_rate_calls_by_kind": dict(Counter(kind(calls[i]) for i in over)),
        "calls_by_kind": dict(Counter(kind(c) for c in calls)),
        "storm_summary_posted_s": [round(c.at - t0, 3) for c in calls if kind(c) == "post storm:summary"],
        "last_group_verdict_shown_s": max(first_update.values()) if first_update else None,
        "first_slack_call_s": (min(times) - t0) if times else None,
    }


# ------------------------------------------------------------------ a mode


async def run_mode(env: Env, mode: str, groups: list[Group], args: argparse.Namespace) -> dict[str, Any]:
    per_group = args.alerts // args.groups
    pl = plan(mode, groups, per_group, args.am_waves, SEED)
    store_db = f"bench_storm_{mode}"
    await ensure_database(env.server_uri, store_db)
    store_url = with_database(env.server_uri, store_db)
    with IntakeTimes() as intake:
        async with SlackStandIn() as slack, running_bot(env, store_url, slack, args) as base:
            url = f"{base}/alerts/alertmanager"
            intake.clear()
            gc.collect()
            # CPU from the first request to the last answer (read synchronously: a few ms of
            # /proc, before "go" and after "sent")
            snaps: list[tuple[dict[str, float], dict[str, float]]] = []

            def snapshot() -> None:
                snaps.append((cpu_seconds(), thread_cpu()))

            if args.sender == "process":
                started: list[asyncio.Task[Settled]] = []

                def on_go(at: float) -> None:
                    snapshot()
                    started.append(asyncio.create_task(until_settled(store_url, args.groups, at, args.timeout)))

                with LoopLag() as lag:
                    answers, wave_s, t0, sender_cpu = await send_from_process(url, pl, args.concurrency,
                                                                              env.root, on_go, snapshot)
                    lag_ms = list(lag.lags_ms)
                settle = started[0]
                if len(snaps) != 2:
                    raise SystemExit("the sender process did not say it had sent its plan")
            else:
                waves = [http_requests(url, w) for w in pl.waves]
                snapshot()
                t0 = time.monotonic()
                settle = asyncio.create_task(until_settled(store_url, args.groups, t0, args.timeout))
                with LoopLag() as lag:
                    answers, wave_s = await send_plan(url, waves, args.concurrency)
                    lag_ms = list(lag.lags_ms)
                snapshot()
                sender_cpu = float("nan")  # inside the bot's process: counted there
            send_s = sum(wave_s)  # the waves back to back: first request to last answer, connecting left out
            (cpu0, threads0), (cpu1, threads1) = snaps
            bot_threads = {k: round(v - threads0.get(k, 0.0), 2) for k, v in threads1.items()}
            cpu = {k: cpu1[k] - cpu0[k] for k in cpu0} | {"sender": sender_cpu}
            print(f"  {mode}: {pl.requests} requests answered in {send_s:.2f} s; waiting for triage",
                  file=sys.stderr)
            try:
                st = await settle
            except TimeoutError:
                st = Settled()
                print(f"  {mode}: NOT settled within {args.timeout:.0f} s", file=sys.stderr)
            slack_res = slack_side(slack, t0, args)
            db = await asyncpg.connect(store_url)
            try:
                counts = dict(await db.fetchrow(
                    "select count(*) groups, count(anchor_ts) anchors, count(verdict) verdicts,"
                    " count(storm_id) in_storm, count(distinct storm_id) storms,"
                    " sum(notifications) notifications from alert_groups") or {})
                actions = {r["action"]: int(r["n"]) for r in await db.fetch(
                    "select action, count(*) n from alert_notifications group by 1")}
            finally:
                await db.close()
    ms = [a.ms for a in answers]
    ok = [a for a in answers if a.status == 200]
    accepted_alerts = sum(a.alerts for a in ok)
    return {
        "mode": mode,
        "requests": pl.requests,
        "waves": len(pl.waves),
        "distinct_alerts": pl.distinct_alerts,
        "alert_entries_sent": pl.entries,
        "accepted_requests": len(ok),
        "refused": Counter(f"{a.status} {a.action}" for a in answers if a.status != 200),
        "answer_actions": dict(Counter(a.action for a in ok)),
        "latency_ms": summary(ms),
        "intake_ms": summary(intake.ms),
        "intake_batch_ms": summary([ms for _, ms in intake.batches]),
        "intake_batch_size": summary([float(n) for n, _ in intake.batches]),
        "loop_lag_ms": summary(lag_ms),
        "send_s": send_s,
        "cpu_while_sending_s": cpu,
        "bot_threads_cpu_while_sending_s": bot_threads,
        "wave_s": wave_s,
        "notifications_per_s": len(ok) / send_s,
        "alert_entries_per_s": accepted_alerts / send_s,
        "distinct_alerts_per_s": pl.distinct_alerts / send_s,
        "all_groups_verdict_s": st.triaged_s,
        "settled_s": st.settled_s,
        "jobs": st.jobs,
        "failed_jobs": st.failed_jobs,
        "store": {k: (int(v) if v is not None else None) for k, v in counts.items()},
        "notification_actions": actions,
        "slack": slack_res,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": summary(ms).get("p99", 1e9) <= TARGET_P99_MS,
        "anchors_ok": slack_res["groups_with_anchor"] == args.groups and not slack_res["groups_with_duplicate_anchor"],
        "raw_latency_ms": [round(x, 3) for x in ms],
    }


# ------------------------------------------------------------------ main


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    sender = ("a sender process of its own" if args.sender == "process"
              else "a sender in the bot's own event loop")
    print(f"Alert storm: {args.alerts} alerts in {args.groups} groups, POST /alerts/alertmanager over loopback "
          f"from {sender}, in-process recon serve ({args.slots} worker slots), "
          f"RECON_SLACK_RATE_PER_S={args.slack_rate:g}, RECON_SLACK_BURST={args.slack_burst}")
    print()
    print("| webhook answer (ms) | n | min | median | p95 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(fmt_row(f"{r['mode']}: answer latency", r["latency_ms"]))
        print(fmt_row(f"{r['mode']}:   AlertStore.intake alone", r["intake_ms"]))
        print(fmt_row(f"{r['mode']}:   a batch written (recon_alert_intake)", r["intake_batch_ms"]))
        print(fmt_row(f"{r['mode']}:   notifications per batch (count, not ms)", r["intake_batch_size"]))
        print(fmt_row(f"{r['mode']}:   event-loop stall while sending", r["loop_lag_ms"]))
    print()
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("notifications sent (waves) / concurrency", lambda r: f"{r['requests']} ({r['waves']}) / {args.concurrency}"),
        ("alert entries carried / distinct alerts", lambda r: f"{r['alert_entries_sent']} / {r['distinct_alerts']}"),
        ("accepted (answers: open/repeat/…)", lambda r: f"{r['accepted_requests']} "
         f"({', '.join(f'{k} {v}' for k, v in sorted(r['answer_actions'].items()))})"),
        ("time to answer all", lambda r: f"{r['send_s']:.2f} s"),
        ("CPU meanwhile (2 cores: at most 2 s per s): bot / PostgreSQL / sender",
         lambda r: " / ".join(f"{r['cpu_while_sending_s'][k]:.2f} s" for k in ("bot", "postgres", "sender"))),
        ("notifications / s", lambda r: f"{r['notifications_per_s']:.0f}"),
        ("alert entries / s (distinct alerts / s)",
         lambda r: f"{r['alert_entries_per_s']:.0f} ({r['distinct_alerts_per_s']:.0f})"),
        ("top-level messages (alert threads + storm summaries)", lambda r: f"{r['slack']['top_level_messages']} "
         f"({r['slack']['top_level_alert_threads']} + {r['slack']['storm_summaries']})"),
        ("storm replies (of which group anchors)", lambda r: f"{r['slack']['storm_replies']} "
         f"({r['slack']['storm_replies_that_are_group_anchors']})"),
        ("groups with an anchor (duplicates)", lambda r: f"{r['slack']['groups_with_anchor']} "
         f"({r['slack']['groups_with_duplicate_anchor']})"),
        ("chat.postMessage / chat.update", lambda r: f"{r['slack']['posts']} / {r['slack']['updates']}"),
        ("chat.update per anchor (median / max)", lambda r: f"{r['slack']['updates_per_anchor'].get('median', 0):.0f}"
         f" / {r['slack']['updates_per_anchor'].get('max', 0):.0f}"),
        ("every group has a verdict (from 1st request)", lambda r: _s(r["all_groups_verdict_s"])),
        ("last verdict shown in Slack", lambda r: _s(r["slack"]["last_group_verdict_shown_s"])),
        ("everything settled (jobs ended, all shown)", lambda r: _s(r["settled_s"])),
        ("jobs", lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["jobs"].items()))),
        ("Slack posting rate (calls/s over the span)", lambda r: f"{r['slack']['posting_rate_per_s']:.1f} over "
         f"{r['slack']['posting_span_s']:.1f} s"),
        ("most calls in any 1 s / over the token bucket", lambda r: f"{r['slack']['max_calls_in_1s']} / "
         f"{r['slack']['over_rate_calls']} {r['slack']['over_rate_calls_by_kind'] or ''}"),
        ("storm summary posted", lambda r: ", ".join(f"{x:.2f} s" for x in r["slack"]["storm_summary_posted_s"])),
    ]
    print("| | " + " | ".join(r["mode"] for r in results) + " |")
    print("| --- |" + " --- |" * len(results))
    for label, f in rows:
        print(f"| {label} | " + " | ".join(f(r) for r in results) + " |")
    print()
    for r in results:
        print(f"the bot's CPU by thread while sending, {r['mode']} (s): "
              + ", ".join(f"{k} {v}" for k, v in r["bot_threads_cpu_while_sending_s"].items()))
    print()
    for r in results:
        verdict = "met" if r["target_met"] else "MISSED"
        print(f"target p99 <= {TARGET_P99_MS:.0f} ms, {r['mode']}: {verdict} (p99 {r['latency_ms'].get('p99', 0):.1f}"
              f" ms); anchors = {args.groups}: {'yes' if r['anchors_ok'] else 'NO'}")
        if r["refused"]:
            print(f"  refused: {dict(r['refused'])}")
        if r["failed_jobs"]:
            print(f"  failed jobs: {r['failed_jobs'][:3]}")


def _s(v: float | None) -> str:
    return f"{v:.1f} s" if v is not None else "not within the timeout"


@contextlib.contextmanager
def store_pool_size(n: int | None) -> Any:
    """Experiment: ``recon serve``'s store pool with ``n`` connections (the bot has 10)."""
    import bot.server.services as services

    orig = services.open_store
    if n:
        services.open_store = functools.partial(orig, max_size=n)  # type: ignore[assignment]
    try:
        yield
    finally:
        services.open_store = orig  # type: ignore[assignment]


async def main_async(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    started = time.perf_counter()
    results = []
    async with environment(args.keep) as env:
        groups = make_groups(args.groups, env.real_instances, env.real_org)
        with store_pool_size(args.experiment_pool_size):
            for mode in modes:
                results.append(await run_mode(env, mode, groups, args))
    report(results, args)
    doc = {
        "benchmark": "alert_storm",
        "when": datetime.now(UTC).isoformat(),
        "host": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "machine": host_platform.machine()},
        "params": {k: v for k, v in vars(args).items() if k not in ("json", "keep")}
        | {"store": "embedded PostgreSQL, durable=False (fsync off), /dev/shm",
           "storm": "defaults: RECON_STORM_THRESHOLD=5, RECON_STORM_WINDOW_S=120, RECON_STORM_GATHER_S=3",
           "groups": [{"key": g.key, "severity": g.severity, "real": g.real} for g in groups]},
        "results": {r["mode"]: {k: (dict(v) if isinstance(v, Counter) else v) for k, v in r.items()} for r in results},
        "elapsed_s": time.perf_counter() - started,
    }
    path = Path(args.json) if args.json else RESULTS / f"alert_storm-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    print(f"\nJSON: {path}  ({time.perf_counter() - started:.0f} s)")
    good = all(r["target_met"] and r["anchors_ok"] and r["settled_s"] is not None and not r["refused"]
               for r in results)
    return 0 if good else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--modes", default="am,hammer", help="comma-separated: am, hammer")
    p.add_argument("--alerts", type=int, default=5000)
    p.add_argument("--groups", type=int, default=50)
    p.add_argument("--am-waves", type=int, default=4, help="am mode: notifications per group")
    p.add_argument("--concurrency", type=int, default=50, help="requests in flight at once")
    p.add_argument("--slack-rate", type=float, default=1000.0,
                   help="RECON_SLACK_RATE_PER_S (the bot's default is 1: Slack's posting limit per channel)")
    p.add_argument("--slack-burst", type=int, default=5, help="RECON_SLACK_BURST (the bot's default 5)")
    p.add_argument("--slots", type=int, default=4, help="RECON_WORKER_SLOTS (the bot's default 4)")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for triage, per mode")
    p.add_argument("--json", help="where to write the JSON (default benchmarks/results/alert_storm-<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, evidence)")
    p.add_argument("--experiment-pool-size", type=int, default=None,
                   help="experiment: recon serve's store pool with this many connections (the bot has 10)")
    p.add_argument("--sender", choices=("process", "loop"), default="process",
                   help="process: the alerts come from a sender process of its own, as from Alertmanager "
                        "(default); loop: the sender runs in the bot's own event loop, so its work delays the bot")
    p.add_argument("--sender-plan", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--sender-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sender_plan is not None:  # this process is the sender of another run
        out = asyncio.run(sender_main(json.loads(args.sender_plan.read_text())))
        args.sender_out.write_text(json.dumps(out))
        return 0
    if args.groups < 4 or args.alerts < args.groups:
        p.error("--groups must be at least 4 and --alerts at least --groups")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
