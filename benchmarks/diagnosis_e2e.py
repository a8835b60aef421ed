"""End-to-end time of one diagnosis through Slack, against the dependency chain's own minimum.

Usage::

    .venv/bin/python benchmarks/diagnosis_e2e.py [--delays 0.05,0.2] [--runs 10] [--modes data,sequential] [--json PATH]

Setup: an embedded PostgreSQL (``durable=False``) in a temp dir under ``/dev/shm`` holds
the bot's store and the demo platform's billing database (``build_platform(demo_spec(),
now=<now>, seed=7)``); the same platform's log lines and traces are served by the Loki
and Tempo stand-ins (``tests/standins``), which answer each request at its arrival + D.
D stands for a real Loki's or Tempo's whole response time (spent on many cores, in
parallel), so the stand-ins' own CPU work (LogQL evaluation, JSON encoding) is kept off
that path: each distinct answer is computed once, when first asked (the warm-up run),
and kept, keyed by what it depends on (path, query but its window, and, for Loki, which
of the queried id's entries the window holds: the data does not change within a run);
a request is computed or taken from that cache at arrival and the rest of D is slept
(the stand-ins' own ``delay_s``, which sleeps first and computes after, is not used).
An answer that takes longer than D to compute leaves when ready: the "stand-in beyond
D" column shows it. The stand-ins run in a child process (this script with
``--standins-child``), so their work does not run on the bot's event loop either, as a
real Loki and Tempo's would not; they record every request's arrival and answer time on
the system-wide monotonic clock. The Loki stand-in pre-selects the entries whose JSON
line carries the queried ``correlation_id`` / ``app_instance_id`` before its own LogQL
evaluation (same answers, less CPU). A Slack Web API stand-in and
``recon serve`` (HTTP mode, ``LOKI_URL``/``TEMPO_URL`` pointing at the stand-ins,
``BILLING_DATABASE_URL`` at PostgreSQL) run in this process.

Two subjects: the disputed call (``acme-ml-launch``: its billing rows name its four
instances and its trace) and a logs-only call (the first call with no usage row: only
its log lines name its instance and trace). Two modes, each a fresh ``recon serve``:
``data`` (the default: a trace or an instance's logs is asked as soon as any source names
it) and ``sequential`` (``RECON_DIAGNOSIS_SEQUENTIAL=true``: the runbook's order).

Measured, ``--runs`` times per mode, subject and D after one warm-up: from just before
the signed ``/recon <correlation id>`` request is sent to the moment the Slack stand-in
receives the ``chat.update`` of the parent message with the verdict (the bot sends it as
soon as the diagnosis is assembled: step replies may still follow it, so they are counted,
and the last one timed, once the job is done). For each run: the Loki and Tempo requests
made (and whether one was repeated), how many ran at once, and the sequential "waves"
they formed (overlapping requests merged).

The minimum: the Loki/Tempo round trips on the critical path, each at least D, plus
``billing``, the median time of the same billing queries alone (same arguments and
concurrency as the bot issues them, read with the bot's ``PostgresBillingReader``),
measured separately. In the data order the disputed call's billing rows name every
trace and instance, so the logs by correlation id, the trace and the instances' logs run
at once: ``D + billing``; the logs-only call asks its trace and instance once the logs
name them: ``2 × D + billing``. In the runbook's order both are ``3 × D + billing`` (logs →
trace → instances' logs). Reported: measured − minimum; target: median ≤ 150 ms above
(p95 alongside). Results: a table on stdout, JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform as host_platform
import shutil
import statistics
import sys
import tempfile
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import pct, serving  # noqa: E402
from bot.diagnosis.model import Window  # noqa: E402
from bot.scenario import Platform, build_platform, demo_spec  # noqa: E402
from bot.scenario.load import load_billing  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources.billing import PostgresBillingReader  # noqa: E402
from bot.store.db import with_database  # noqa: E402
from bot.store.embedded import ensure_database, ensure_embedded, stop_embedded  # noqa: E402
from tests.standins.loki import LogqlParseError, LokiStandIn, Matcher, parse_logql  # noqa: E402
from tests.standins.slack import SlackCall, SlackStandIn  # noqa: E402
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET, slash_command  # noqa: E402
from tests.standins.tempo import TempoStandIn  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CHANNEL = "C0E2EBENCH"
SEED = 7
# Loki/Tempo round trips on the critical path, by (mode, subject)
HOPS = {("data", "disputed"): 1, ("data", "logs-only"): 2, ("sequential", "disputed"): 3,
        ("sequential", "logs-only"): 3}
TARGET_ABOVE_MIN_MS = 150.0
STEPS = 6
INDEXED_FIELDS = ("correlation_id", "app_instance_id")




def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def demo_platform(now: datetime) -> Platform:
    return build_platform(demo_spec(), now=now, seed=SEED)


# ------------------------------------------------------------------ the stand-ins' child process


class _Timed:
    """Records (kind, arrival, answered, what was asked) of every request on ``time.monotonic()``,
    and answers each request at its arrival + ``answer_after_s`` (D).

    D stands for a real Loki's or Tempo's whole response time, which they spend on many
    cores at once. Here the stand-ins' own CPU work (LogQL evaluation, JSON encoding)
    would run one request after another in one process and push the later answers past
    D, so it is taken off that path: each distinct answer is computed once, when first
    asked (the warm-up run), and kept (``answer_key``: the data does not change within a
    run); a request is computed or taken from the cache at arrival, and the rest of D is
    slept. An answer that takes longer than D to compute leaves when it is ready."""

    timings: list[tuple[str, float, float, str]]
    answer_after_s: float
    answers: dict[tuple[Any, ...], tuple[int, bytes, str]]

    def kind_of(self, request: web.Request) -> str:
        return request.path

    def answer_key(self, request: web.Request) -> tuple[Any, ...] | None:
        """What the answer depends on; ``None``: not kept."""
        return None

    def _cached(self, handler: Any) -> Any:
        async def answer(request: web.Request) -> web.StreamResponse:
            key = self.answer_key(request)
            hit = self.answers.get(key) if key is not None else None
            if hit is not None:
                return web.Response(status=hit[0], body=hit[1], headers={"Content-Type": hit[2]})
            resp: web.StreamResponse = await handler(request)
            if key is not None and isinstance(resp, web.Response) and resp.status == 200 \
                    and isinstance(resp.body, bytes):
                self.answers[key] = (resp.status, resp.body, resp.headers.get("Content-Type", "application/json"))
            return resp
        return answer

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        t0 = time.monotonic()
        try:
            resp: web.StreamResponse = await super()._middleware(request, self._cached(handler))  # type: ignore[misc]
            rest = t0 + self.answer_after_s - time.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)
            return resp
        finally:
            what = f"{request.path}?{request.query.get('query', '')}"
            self.timings.append((self.kind_of(request), t0, time.monotonic(), what))


def _without_window(request: web.Request) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in request.query.items() if k not in ("start", "end")))


class BenchLoki(_Timed, LokiStandIn):
    """The Loki stand-in, timed, with entries pre-selected by the queried id."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.timings = []
        self.answer_after_s = 0.0
        self.answers = {}
        self._by: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self._ts: dict[tuple[str, str], list[int]] = {}

    def index(self) -> None:
        self._by.clear()
        for e in self.entries:
            try:
                obj = json.loads(e.line)
            except ValueError:
                continue
            for f in INDEXED_FIELDS:
                v = obj.get(f) if isinstance(obj, dict) else None
                if isinstance(v, str):
                    self._by[(f, v)].append(e)
        for key, entries in self._by.items():
            entries.sort(key=lambda e: e.ts_ns)
            self._ts[key] = [e.ts_ns for e in entries]

    def _key(self, request: web.Request) -> tuple[str, str] | None:
        try:
            parsed = parse_logql(request.query.get("query", ""))
        except LogqlParseError:
            return None
        for st in parsed.stages:
            if isinstance(st, Matcher) and st.op == "=" and st.name in INDEXED_FIELDS:
                return (st.name, st.value)
        return None

    def kind_of(self, request: web.Request) -> str:
        key = self._key(request)
        return f"loki:{key[0]}" if key else "loki:other"

    def answer_key(self, request: web.Request) -> tuple[Any, ...] | None:
        """The query but its window, and which of the id's entries the window holds:
        the same entries and the same query give the same answer."""
        key = self._key(request)
        try:
            start, end = int(request.query["start"]), int(request.query["end"])
        except (KeyError, ValueError):
            return None
        if key is None:
            return None
        ts = self._ts.get(key, [])
        return (request.path, _without_window(request), request.headers.get("X-Loki-Response-Encoding-Flags"),
                request.headers.get("X-Scope-OrgID"), bisect_left(ts, start), bisect_left(ts, end))

    async def _query_range(self, request: web.Request) -> web.Response:
        key = self._key(request)
        if key is None:
            return await super()._query_range(request)
        everything = self.entries
        self.entries = self._by.get(key, [])
        try:  # the stand-in's handler never awaits: the swap is invisible to other requests
            return await super()._query_range(request)
        finally:
            self.entries = everything


class BenchTempo(_Timed, TempoStandIn):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.timings = []
        self.answer_after_s = 0.0
        self.answers = {}

    def kind_of(self, request: web.Request) -> str:
        return "tempo:trace"

    def answer_key(self, request: web.Request) -> tuple[Any, ...] | None:
        """The stand-in answers a trace by its id whatever the window (``start``/``end``)."""
        return (request.path, _without_window(request), request.headers.get("X-Scope-OrgID"))


async def standins_child(now_iso: str) -> int:
    plat = demo_platform(datetime.fromisoformat(now_iso))
    loki, tempo = BenchLoki(), BenchTempo()
    async with loki, tempo:
        for e in plat.logs:
            loki.push(e.labels, e.line, e.ts)
        loki.index()
        tempo.add_trace(plat.spans)
        print(json.dumps({"loki": loki.url, "tempo": tempo.url, "entries": len(loki.entries),
                          "traces": len(tempo.traces)}), flush=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return 0
            cmd = json.loads(line)
            if "delay" in cmd:
                loki.answer_after_s = tempo.answer_after_s = float(cmd["delay"])
                print(json.dumps({"ok": True}), flush=True)
            elif cmd.get("take"):
                out = sorted([*loki.timings, *tempo.timings], key=lambda t: t[1])
                loki.timings.clear()
                tempo.timings.clear()
                print(json.dumps({"requests": out}), flush=True)
            elif cmd.get("quit"):
                return 0


class StandIns:
    """The parent's handle on the child process."""

    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info

    @property
    def loki_url(self) -> str:
        return str(self.info["loki"])

    @property
    def tempo_url(self) -> str:
        return str(self.info["tempo"])

    async def _ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the stand-ins' process exited")
        doc: dict[str, Any] = json.loads(line)
        return doc

    async def set_delay(self, d: float) -> None:
        await self._ask({"delay": d})

    async def take(self) -> list[tuple[str, float, float, str]]:
        return [(k, a, b, w) for k, a, b, w in (await self._ask({"take": True}))["requests"]]


@contextlib.asynccontextmanager
async def standins(now: datetime) -> AsyncIterator[StandIns]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--standins-child", "--now", now.isoformat(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT))
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the stand-ins' process did not start")
        yield StandIns(proc, json.loads(line))
    finally:
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(b'{"quit": true}\n')
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# ------------------------------------------------------------------ the bot and its databases


def fast_tmp_dir(prefix: str) -> Path:
    """A new temp dir on tmpfs (``/dev/shm``) when there is one."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@dataclass(slots=True)
class Env:
    root: Path
    store_url: str
    billing_url: str
    platform: Platform
    now: datetime


@contextlib.asynccontextmanager
async def environment(keep: bool) -> AsyncIterator[Env]:
    root = fast_tmp_dir("recon-bench-e2e-")
    pgdata = root / "pgdata"
    try:
        server = await ensure_embedded(pgdata, durable=False)
        now = datetime.now(UTC).replace(microsecond=0)
        plat = demo_platform(now)
        for name in ("bench_store", "bench_billing"):
            await ensure_database(server.base_uri, name)
        billing_url = with_database(server.base_uri, "bench_billing")
        conn = await asyncpg.connect(billing_url)
        try:
            await load_billing(conn, plat, replace=True)
        finally:
            await conn.close()
        yield Env(root, with_database(server.base_uri, "bench_store"), billing_url, plat, now)
    finally:
        await stop_embedded(pgdata)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_bot(env: Env, si: StandIns, slack: SlackStandIn, mode: str) -> AsyncIterator[str]:
    settings = Settings(**{  # type: ignore[arg-type]
        "RECON_DIAGNOSIS_SEQUENTIAL": "true" if mode == "sequential" else "false",
        "DATABASE_URL": env.store_url,
        "BILLING_DATABASE_URL": env.billing_url,
        "LOKI_URL": si.loki_url,
        "TEMPO_URL": si.tempo_url,
        "RECON_DATA_DIR": str(env.root / "data"),
        "SLACK_BOT_TOKEN": "xoxb-recon-bench-token",
        "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": slack.url.rstrip("/"),
        "RECON_WORKER_POLL_S": "2",
        "RECON_SHUTDOWN_GRACE_S": "30",
    })
    async with serving(settings, stop_timeout=60) as url:
        yield url


# ------------------------------------------------------------------ one diagnosis through Slack


Req = tuple[str, float, float, str]  # kind, sent, answered, what was asked


def waves(reqs: Sequence[Req]) -> list[tuple[float, float, list[str]]]:
    """Requests merged into sequential groups of overlapping intervals."""
    out: list[tuple[float, float, list[str]]] = []
    for kind, a, b, _ in sorted(reqs, key=lambda r: r[1]):
        if out and a < out[-1][1]:
            s, e, kinds = out[-1]
            out[-1] = (s, max(e, b), [*kinds, kind])
        else:
            out.append((a, b, [kind]))
    return out


def max_concurrency(reqs: Sequence[Req]) -> int:
    events = sorted([(a, 1) for _, a, _, _ in reqs] + [(b, -1) for _, _, b, _ in reqs])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


async def job_done(store_url: str, timeout_s: float = 20.0) -> None:
    """Until the newest job is done: the worker marks it right after the last Slack call,
    and nothing signals it, so this polls the store (outside any measured interval)."""
    conn = await asyncpg.connect(store_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            status = await conn.fetchval("select status from jobs order by job_id desc limit 1")
            if status in ("done", "failed"):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"job still {status} after {timeout_s} s")
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


def updates(slack: SlackStandIn) -> list[SlackCall]:
    return [c for c in slack.calls if c.method == "chat.update"]


async def one_run(http: aiohttp.ClientSession, url: str, slack: SlackStandIn, si: StandIns, env: Env,
                  cid: str) -> dict[str, Any]:
    n_calls = len(slack.calls)
    n_updates = len(updates(slack))
    req = slash_command(text=cid, channel_id=CHANNEL, user_id="U0BENCH")
    t0 = time.monotonic()
    async with http.post(f"{url}/slack/events", data=req.body, headers=req.headers) as r:
        text = await r.text()
    t_ack = time.monotonic()
    if r.status != 200 or "Diagnosing" not in text:
        raise RuntimeError(f"unexpected ack: {r.status} {text[:200]}")
    await slack.wait_for(lambda _: len(updates(slack)) > n_updates, timeout=60)
    upd = updates(slack)[n_updates]
    t_end = upd.at
    verdict = json.dumps(upd.args.get("blocks") or upd.args.get("text"))
    await job_done(env.store_url)
    # the replies still on their way when the verdict was shown are posted by now
    posts = [c for c in slack.calls[n_calls:] if c.method == "chat.postMessage"]
    reqs = await si.take()
    ws = waves(reqs)
    kinds: dict[str, int] = defaultdict(int)
    for k, _, _, _ in reqs:
        kinds[k] += 1
    parent_at = posts[0].at if posts else float("nan")
    timeline = [((t_ack - t0) * 1000, "ack received")]
    timeline += [((c.at - t0) * 1000, "slack: parent posted" if i == 0 else f"slack: step {i}/{STEPS} posted"
                  if i <= STEPS else "slack: follow-ups posted") for i, c in enumerate(posts)]
    timeline += [((a - t0) * 1000, f"{k} sent") for k, a, _, _ in reqs] + [((b - t0) * 1000, f"{k} answered")
                                                                           for k, _, b, _ in reqs]
    timeline.append(((t_end - t0) * 1000, "slack: parent updated with the verdict"))
    timeline.sort()
    last_src = max((b for _, _, b, _ in reqs), default=float("nan"))
    return {
        "e2e_ms": (t_end - t0) * 1000,
        "ack_ms": (t_ack - t0) * 1000,
        "to_parent_posted_ms": (parent_at - t0) * 1000,
        "to_last_reply_ms": (posts[-1].at - t0) * 1000 if len(posts) > 1 else None,
        "to_first_source_request_ms": ((ws[0][0] - t0) * 1000) if ws else None,
        "last_source_answer_to_update_ms": (t_end - last_src) * 1000,
        "slack_posts": len(posts),
        "verdict_in_update": "running" not in verdict,
        "requests": dict(kinds),
        "n_requests": len(reqs),
        "repeated_requests": len(reqs) - len({w for _, _, _, w in reqs}),
        "max_concurrent": max_concurrency(reqs),
        "waves": [{"start_ms": (a - t0) * 1000, "end_ms": (b - t0) * 1000, "requests": len(k),
                   "kinds": sorted(set(k))} for a, b, k in ws],
        "gaps_between_waves_ms": [(ws[i + 1][0] - ws[i][1]) * 1000 for i in range(len(ws) - 1)],
        "standin_excess_ms": [((b - a) * 1000) for _, a, b, _ in reqs],
        "critical_path_standin_beyond_d_ms": sum((b - a) * 1000 for a, b, _ in ws),  # minus hops x D later
        "timeline_ms": [[round(t, 1), what] for t, what in timeline],
    }


# ------------------------------------------------------------------ the billing queries alone


async def billing_chain(reader: PostgresBillingReader, cid: str, window: Window,
                        instance_ids: Sequence[str]) -> dict[str, float]:
    """The billing calls of one diagnosis of ``cid``, as the flow issues them."""
    out: dict[str, float] = {}
    t = time.perf_counter()
    got_u, got_l = await asyncio.gather(reader.usage_by_correlation(cid, window),
                                        reader.ledger_by_correlation(cid, window))
    corr_usage, corr_ledger = list(got_u.items), list(got_l.items)
    known = {u.usage_record_id for u in corr_usage}
    refs = sorted({e.usage_record_id for e in corr_ledger if e.usage_record_id} - known)
    if refs:
        corr_usage += (await reader.usage_by_ids(refs)).items
    out["billing_rows"] = time.perf_counter() - t

    t = time.perf_counter()
    got_i, _got_c = await asyncio.gather(reader.app_instances(instance_ids), reader.components(instance_ids))
    instances = got_i.items
    out["pivot_metadata"] = time.perf_counter() - t

    t = time.perf_counter()
    ids = [i.app_instance_id for i in instances]
    orgs = sorted({i.org_id for i in instances} | {u.org_id for u in corr_usage} | {e.org_id for e in corr_ledger})

    async def prices() -> None:
        accts = (await reader.billing_accounts(orgs)).items
        await reader.rate_cards(sorted({a.currency for a in accts}))

    got_usage, _ = await asyncio.gather(reader.usage_for_instances(ids, window), prices())
    usage = list(got_usage.items)
    seen = {u.usage_record_id for u in usage}
    usage += [u for u in corr_usage if u.usage_record_id not in seen]
    out["attribution"] = time.perf_counter() - t

    t = time.perf_counter()
    cids = sorted({c for c in (cid, *(u.correlation_id for u in usage)) if c})
    await asyncio.gather(reader.ledger_for_usage([u.usage_record_id for u in usage]),
                         reader.orphan_debits_by_correlation(cids, window))
    out["reconciliation"] = time.perf_counter() - t
    return {k: v * 1000 for k, v in out.items()}


async def measure_billing(env: Env, cid: str, runs: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    window = Window(now - timedelta(days=7), now)
    ids = env.platform.subject_instances(cid)
    samples: list[dict[str, float]] = []
    async with PostgresBillingReader(env.billing_url, statement_timeout_ms=15000) as reader:
        await billing_chain(reader, cid, window, ids)  # warm-up: pool, prepared statements
        for _ in range(runs):
            samples.append(await billing_chain(reader, cid, window, ids))
    totals = [sum(s.values()) for s in samples]
    stages = {k: med([s[k] for s in samples]) for k in samples[0]}
    return {"instances": ids, "runs": runs, "total_median_ms": med(totals), "total_p95_ms": pct(totals, 95),
            "stages_median_ms": stages,
            # strict critical path: rows overlap Loki by cid, metadata overlaps the pivot logs
            "after_last_hop_median_ms": stages["attribution"] + stages["reconciliation"]}


# ------------------------------------------------------------------ main


def subjects(plat: Platform) -> dict[str, str]:
    """The disputed call (its rows name everything) and the first call no usage row carries."""
    cid = plat.disputed_correlation_id
    assert cid
    with_rows = {u.correlation_id for u in plat.usage}
    logs_only = next(c.correlation_id for c in plat.calls if c.correlation_id not in with_rows)
    return {"disputed": cid, "logs-only": logs_only}


def summarise(mode: str, subject: str, d: float, billing: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    hops = HOPS[(mode, subject)]
    e2e = [r["e2e_ms"] for r in runs]
    minimum = hops * d * 1000 + billing["total_median_ms"]
    excess = [(x - d * 1000) for r in runs for x in r["standin_excess_ms"]]
    for r in runs:
        r["critical_path_standin_beyond_d_ms"] -= len(r["waves"]) * d * 1000
        r["bot_overhead_ms"] = r["e2e_ms"] - minimum - r["critical_path_standin_beyond_d_ms"]
    median_run = sorted(runs, key=lambda r: r["e2e_ms"])[len(runs) // 2]

    def per_wave(key: Any, offset: int = 0) -> list[float]:
        n = max(len(r["waves"]) for r in runs) - offset
        return [med([key(r, i) for r in runs if len(r["waves"]) - offset > i]) for i in range(n)]

    return {
        "mode": mode, "subject": subject, "hops": hops, "delay_ms": d * 1000, "runs": runs,
        "e2e_median_ms": med(e2e), "e2e_p95_ms": pct(e2e, 95), "e2e_min_ms": min(e2e), "e2e_max_ms": max(e2e),
        "minimum_ms": minimum, "above_min_median_ms": med(e2e) - minimum, "above_min_p95_ms": pct(e2e, 95) - minimum,
        "ack_median_ms": med([r["ack_ms"] for r in runs]),
        "to_parent_posted_median_ms": med([r["to_parent_posted_ms"] for r in runs]),
        "to_last_reply_median_ms": med([r["to_last_reply_ms"] for r in runs if r["to_last_reply_ms"] is not None]),
        "to_first_source_request_median_ms": med([r["to_first_source_request_ms"] for r in runs]),
        "last_source_answer_to_update_median_ms": med([r["last_source_answer_to_update_ms"] for r in runs]),
        "gaps_between_waves_median_ms": per_wave(lambda r, i: r["gaps_between_waves_ms"][i], 1),
        "standin_time_beyond_d_median_ms": med(excess), "standin_time_beyond_d_max_ms": max(excess),
        "wave_durations_median_ms": per_wave(lambda r, i: r["waves"][i]["end_ms"] - r["waves"][i]["start_ms"]),
        "requests": runs[0]["requests"], "n_requests": runs[0]["n_requests"],
        "repeated_requests": max(r["repeated_requests"] for r in runs),
        "n_waves": sorted({len(r["waves"]) for r in runs}),
        "max_concurrent": max(r["max_concurrent"] for r in runs),
        "target_met": med(e2e) - minimum <= TARGET_ABOVE_MIN_MS,
        "standin_beyond_d_on_critical_path_median_ms": med([r["critical_path_standin_beyond_d_ms"] for r in runs]),
        "bot_overhead_median_ms": med([r["bot_overhead_ms"] for r in runs]),
        "bot_overhead_p95_ms": pct([r["bot_overhead_ms"] for r in runs], 95),
        "median_run_timeline_ms": median_run["timeline_ms"],
        # the parent, one reply per step, and the follow-ups reply when there are findings
        "verdicts_ok": all(r["verdict_in_update"] and r["slack_posts"] >= 1 + STEPS for r in runs),
    }


def print_tables(results: list[dict[str, Any]], billing: dict[str, dict[str, Any]], runs: int) -> None:
    print()
    print(f"One diagnosis end to end (/recon → parent updated with the verdict), {runs} runs per row; "
          "minimum = round trips × D + billing queries alone ("
          + ", ".join(f"{k} {v['total_median_ms']:.1f} ms" for k, v in billing.items()) + " median)")
    print()
    print("| order | subject | D | e2e median | e2e p95 | minimum | median − min | p95 − min "
          "| target: median ≤ min + 150 | stand-in beyond D (critical path) | bot's own (median / p95) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['mode']} | {r['subject']} | {r['delay_ms']:.0f} ms | {r['e2e_median_ms']:.0f} ms | "
              f"{r['e2e_p95_ms']:.0f} ms | {r['hops']} × D + b = {r['minimum_ms']:.0f} ms | "
              f"{r['above_min_median_ms']:.0f} ms | {r['above_min_p95_ms']:.0f} ms | "
              f"{'met' if r['target_met'] else 'MISSED'} | {r['standin_beyond_d_on_critical_path_median_ms']:.0f} ms | "
              f"{r['bot_overhead_median_ms']:.0f} / {r['bot_overhead_p95_ms']:.0f} ms |")
    print()
    print("| order | subject | D | Loki/Tempo requests | repeated | waves | max at once | ack | → parent posted "
          "| → first source request | wave durations | gaps between waves | last answer → update | → last reply "
          "| stand-in beyond D |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        reqs = ", ".join(f"{k} {v}" for k, v in sorted(r["requests"].items()))
        print(f"| {r['mode']} | {r['subject']} | {r['delay_ms']:.0f} ms | {r['n_requests']} ({reqs}) | "
              f"{r['repeated_requests']} | {'/'.join(map(str, r['n_waves']))} | "
              f"{r['max_concurrent']} | {r['ack_median_ms']:.1f} | {r['to_parent_posted_median_ms']:.1f} | "
              f"{r['to_first_source_request_median_ms']:.1f} | "
              f"{' / '.join(f'{x:.0f}' for x in r['wave_durations_median_ms'])} | "
              f"{' / '.join(f'{x:.1f}' for x in r['gaps_between_waves_median_ms'])} | "
              f"{r['last_source_answer_to_update_median_ms']:.1f} | {r['to_last_reply_median_ms']:.1f} | "
              f"{r['standin_time_beyond_d_median_ms']:.1f} (max {r['standin_time_beyond_d_max_ms']:.1f}) |")
    print("(medians in ms, measured from the moment the /recon request was sent)")
    for r in results:
        print(f"\ntimeline of the median run, {r['mode']} order, {r['subject']}, D = {r['delay_ms']:.0f} ms "
              "(ms after the /recon request was sent):")
        for t, what in r["median_run_timeline_ms"]:
            print(f"  {t:8.1f}  {what}")
    for name, b in billing.items():
        print(f"\nbilling queries alone, {name} (median ms): " + ", ".join(
            f"{k} {v:.1f}" for k, v in b["stages_median_ms"].items()) + f"; total {b['total_median_ms']:.1f}")


async def main_async(args: argparse.Namespace) -> int:
    delays = [float(d) for d in args.delays.split(",") if d.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    async with environment(args.keep) as env, standins(env.now) as si, SlackStandIn() as slack, \
            aiohttp.ClientSession() as http:
        subj = subjects(env.platform)
        print(f"stand-ins: {si.info['entries']} log lines, {si.info['traces']} traces; subjects "
              + ", ".join(f"{k} {v} ({len(env.platform.subject_instances(v))} instances)" for k, v in subj.items()),
              file=sys.stderr)
        billing = {name: await measure_billing(env, cid, args.billing_runs) for name, cid in subj.items()}
        for mode in modes:
            async with running_bot(env, si, slack, mode) as url:
                for name, cid in subj.items():
                    for d in delays:
                        await si.set_delay(d)
                        await one_run(http, url, slack, si, env, cid)  # warm-up for this D
                        runs = []
                        for i in range(args.runs):
                            r = await one_run(http, url, slack, si, env, cid)
                            runs.append(r)
                            print(f"  {mode} {name} D={d * 1000:.0f} ms run {i + 1}: {r['e2e_ms']:.0f} ms, "
                                  f"{r['n_requests']} requests in {len(r['waves'])} waves, "
                                  f"max {r['max_concurrent']} at once", file=sys.stderr)
                        results.append(summarise(mode, name, d, billing[name], runs))
    load_after = os.getloadavg()
    print_tables(results, billing, args.runs)
    print(f"\nload average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} CPUs)")

    doc = {
        "benchmark": "diagnosis_e2e",
        "when": datetime.now(UTC).isoformat(),
        "host": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "machine": host_platform.machine(),
                 "loadavg_before": load_before, "loadavg_after": load_after},
        "params": {"delays_s": delays, "runs": args.runs, "modes": modes, "hops": {f"{m}/{s}": h for (m, s), h
                                                                                    in HOPS.items()},
                   "seed": SEED, "subjects": subj},
        "billing": billing,
        "results": results,
        "elapsed_s": time.perf_counter() - started,
    }
    path = Path(args.json) if args.json else RESULTS / f"diagnosis_e2e-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    print(f"\nJSON: {path}  ({time.perf_counter() - started:.0f} s)")
    ok = all(r["verdicts_ok"] and r["repeated_requests"] == 0 for r in results)
    return 0 if ok and all(r["target_met"] for r in results if r["mode"] == "data") else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--delays", default="0.05,0.2", help="Loki/Tempo answer delays D in seconds, comma-separated")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--modes", default="data,sequential",
                   help="data: reads as soon as a source names them; sequential: the runbook's order")
    p.add_argument("--billing-runs", type=int, default=20)
    p.add_argument("--json", help="where to write the JSON (default benchmarks/results/diagnosis_e2e-<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--standins-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--now", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.standins_child:
        return asyncio.run(standins_child(args.now))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
