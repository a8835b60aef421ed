"""Slack ack latency of ``/recon``: signed slash commands over loopback to ``recon serve``.

Usage::

    .venv/bin/python benchmarks/slack_ack.py [--rounds 5] [--concurrency 50] [--modes idle,busy]
                                             [--idle-slots 1] [--busy-slots 4] [--json PATH]

What it does: starts an embedded PostgreSQL (``durable=False``) in a temp dir under
``/dev/shm``, loads a generated platform (``ScenarioSpec.grid(6, 6, 8)``: 288 app
instances, one start call each, 417 distinct correlation ids) into a billing database
and writes its logs and traces as an offline evidence folder, starts a Slack Web API
stand-in and ``recon serve`` in HTTP mode **in this process** (``bot.commands.serve``),
then sends rounds of ``--concurrency`` concurrent ``/recon <correlation_id>`` slash
commands, each a real signed HTTP request over loopback with a subject never asked
before (so every one stores a new durable job). The time measured per request is from
just before the request is sent to the HTTP answer (the ack) being read.

Modes (each on a fresh store database and a fresh ``recon serve``):

* ``idle``: ``RECON_WORKER_SLOTS=--idle-slots`` (1), subjects that exist nowhere (cheap
  diagnoses: nothing found); after each round the benchmark waits until every job of
  the round has finished (its parent message updated), so each burst meets an idle
  worker (it can start at most one job during the burst).
* ``busy``: ``RECON_WORKER_SLOTS=--busy-slots`` (4, the default), real correlation ids
  of the platform (each diagnosis reads logs, traces and billing and posts a 7-message
  thread). Before each round, ``slots`` primer jobs are started and awaited until they
  are running (their parent message is in Slack); then the primers' subjects are sent
  again (the ack of a subject already running: dedup path + thread link) and the
  burst follows while the worker's slots are busy and the burst's own jobs start as
  slots free up.

Also reported per mode: the server-side time bolt took (from the ``bot.server.app``
debug log line), the event loop's stalls during the bursts (a 5 ms ticker), and how
many diagnoses finished during the bursts. The client runs in the same process and
event loop as the bot (aiohttp, requests signed before the clock starts), so client
overhead is included. Results: a table on stdout, JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform as host_platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import fmt_row, pct, serving, summary  # noqa: E402
from bot.scenario import ScenarioSpec, build_platform  # noqa: E402
from bot.scenario.evidence_files import write_evidence  # noqa: E402
from bot.scenario.load import load_billing  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.store.embedded import ensure_database, ensure_embedded, stop_embedded  # noqa: E402
from tests.standins.slack import SlackCall, SlackStandIn  # noqa: E402
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET, SlackRequest, slash_command  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CHANNEL = "C0ACKBENCH"
TARGET_P99_MS = 300.0
GRID = (6, 6, 8)
SLACK_API_TIMEOUT_S = 120.0


# ------------------------------------------------------------------ small helpers








class ServerTimes(logging.Handler):
    """Collects bolt's dispatch time from ``bot.server.app``'s debug line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("slack request answered") and isinstance(record.args, tuple):
            self.ms.append(float(record.args[1]))


class LoopLag:
    """A ticker that measures how late the event loop wakes it (stalls by CPU work)."""

    def __init__(self, tick_s: float = 0.005) -> None:
        self.tick_s = tick_s
        self.lags_ms: list[float] = []
        self.active = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.tick_s)  # a probe, not a wait for something
            if self.active:
                self.lags_ms.append((time.perf_counter() - t - self.tick_s) * 1000)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class GcWatch:
    """Durations of the cyclic garbage collector's runs (``gc.callbacks``), by generation."""

    def __init__(self) -> None:
        self.active = False
        self.runs: list[tuple[int, float, int]] = []  # generation, ms, objects collected
        self._t0 = 0.0

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self.active:
            self.runs.append((info["generation"], (time.perf_counter() - self._t0) * 1000, info["collected"]))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._cb)

    def gen2_ms(self) -> list[float]:
        return [ms for g, ms, _ in self.runs if g == 2]


# ------------------------------------------------------------------ environment


@dataclass(slots=True)
class Env:
    root: Path
    server_uri: str
    billing_url: str
    evidence: Path
    correlation_ids: list[str]  # the platform itself is dropped: its objects would burden the bot's GC


async def create_db(server_uri: str, name: str) -> str:
    await ensure_database(server_uri, name)
    from bot.store.db import with_database

    return with_database(server_uri, name)


def fast_tmp_dir(prefix: str) -> Path:
    """A new temp dir on tmpfs (``/dev/shm``) when there is one."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@contextlib.asynccontextmanager
async def environment(keep: bool) -> AsyncIterator[Env]:
    root = fast_tmp_dir("recon-bench-ack-")
    pgdata = root / "pgdata"
    try:
        t0 = time.perf_counter()
        server = await ensure_embedded(pgdata, durable=False)
        now = datetime.now(UTC).replace(microsecond=0)
        plat = build_platform(ScenarioSpec.grid(*GRID, project_wide_start=False), now=now, seed=7)
        billing_url = await create_db(server.base_uri, "bench_billing")
        conn = await asyncpg.connect(billing_url)
        try:
            await load_billing(conn, plat, replace=True)
        finally:
            await conn.close()
        write_evidence(plat, root / "evidence")
        print(f"setup: embedded PostgreSQL + platform {GRID} ({len(plat.calls)} calls, {len(plat.usage)} usage rows, "
              f"{len(plat.logs)} log lines) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        cids = [c.correlation_id for c in plat.calls]
        del plat
        gc.collect()
        yield Env(root, server.base_uri, billing_url, root / "evidence", cids)
    finally:
        await stop_embedded(pgdata)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_bot(env: Env, store_db: str, slack: SlackStandIn, slots: int) -> AsyncIterator[str]:
    store_url = await create_db(env.server_uri, store_db)
    settings = Settings(**{  # type: ignore[arg-type]
        "DATABASE_URL": store_url,
        "BILLING_DATABASE_URL": env.billing_url,
        "RECON_EVIDENCE_DIR": str(env.evidence),
        "RECON_DATA_DIR": str(env.root / "data"),
        "SLACK_BOT_TOKEN": "xoxb-recon-bench-token",
        "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": slack.url.rstrip("/"),
        "RECON_WORKER_SLOTS": str(slots),
        "RECON_WORKER_POLL_S": "2",
        "RECON_SHUTDOWN_GRACE_S": "30",
        "LOKI_URL": "",
        "TEMPO_URL": "",
    })
    async with serving(settings, stop_timeout=60) as url:
        yield url


# ------------------------------------------------------------------ sending


@dataclass(slots=True)
class Ack:
    subject: str
    ms: float
    status: int
    text: str


async def send(http: aiohttp.ClientSession, url: str, req: SlackRequest, subject: str) -> Ack:
    t0 = time.perf_counter()
    async with http.post(url, data=req.body, headers=req.headers) as r:
        body = await r.text()
    ms = (time.perf_counter() - t0) * 1000
    if r.headers.get("Content-Type", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            body = str(json.loads(body).get("text", body))
    return Ack(subject, ms, r.status, body)


async def burst(http: aiohttp.ClientSession, url: str, subjects: Sequence[str]) -> list[Ack]:
    reqs = [slash_command(text=s, channel_id=CHANNEL, user_id="U0BENCH") for s in subjects]
    return list(await asyncio.gather(*(send(http, url, r, s) for r, s in zip(reqs, subjects, strict=True))))


def updates(slack: SlackStandIn) -> list[SlackCall]:
    return [c for c in slack.calls if c.method == "chat.update" and c.ok]


def parents(slack: SlackStandIn) -> int:
    return len(slack.messages(CHANNEL))


async def until_updates(slack: SlackStandIn, n: int) -> None:
    """Until ``n`` parent messages have been updated with their verdict (jobs finished)."""
    await slack.wait_for(lambda _: len(updates(slack)) >= n, timeout=SLACK_API_TIMEOUT_S)


async def until_parents(slack: SlackStandIn, n: int) -> None:
    """Until ``n`` threads have been started (their jobs are running)."""
    await slack.wait_for(lambda _: parents(slack) >= n, timeout=SLACK_API_TIMEOUT_S)


# ------------------------------------------------------------------ modes


@dataclass(slots=True)
class ModeResult:
    mode: str
    slots: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    acks_ms: list[float] = field(default_factory=list)
    dup_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    gc_gen2_ms: list[float] = field(default_factory=list)
    gc_runs: int = 0
    bad: list[str] = field(default_factory=list)


async def run_mode(env: Env, mode: str, slots: int, rounds: int, concurrency: int, subjects: list[str],
                   gc_freeze: bool = False) -> ModeResult:
    res = ModeResult(mode, slots)
    server_log = logging.getLogger("bot.server.app")
    times = ServerTimes()
    server_log.addHandler(times)
    server_log.setLevel(logging.DEBUG)
    server_log.propagate = False
    it = iter(subjects)
    jobs = 0
    try:
        async with SlackStandIn() as slack, running_bot(env, f"bench_store_{mode}", slack, slots) as url:
            events = f"{url}/slack/events"
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as http:
                # warm-up: one job end to end (pools, templates, offline index), not measured
                warm = await burst(http, events, [next(it)])
                jobs += 1
                await until_updates(slack, jobs)
                res.bad += [f"warm-up: {a.status} {a.text[:80]}" for a in warm if "Diagnosing" not in a.text]
                if gc_freeze:  # experiment: what the bot would gain by freezing its long-lived state
                    gc.collect()
                    gc.freeze()
                with LoopLag() as lag, GcWatch() as gcw:
                    for r in range(rounds):
                        dup: list[Ack] = []
                        if mode == "busy":
                            primers = [next(it) for _ in range(slots)]
                            before = parents(slack)
                            await burst(http, events, primers)
                            jobs += len(primers)
                            await until_parents(slack, before + slots)
                        done_before = len(updates(slack))
                        times.ms.clear()
                        lag.active = gcw.active = True
                        t_round = time.monotonic()
                        if mode == "busy":
                            dup = await burst(http, events, primers)
                        subj = [next(it) for _ in range(concurrency)]
                        acks = await burst(http, events, subj)
                        t_end = time.monotonic()
                        lag.active = gcw.active = False
                        jobs += len(subj)
                        finished_during = sum(1 for c in updates(slack)[done_before:] if t_round <= c.at <= t_end)
                        server = list(times.ms)
                        for a in acks:
                            if a.status != 200 or "Diagnosing" not in a.text:
                                res.bad.append(f"round {r + 1} {a.subject}: {a.status} {a.text[:100]}")
                        for a in dup:
                            if a.status != 200 or "already running" not in a.text:
                                res.bad.append(f"round {r + 1} duplicate {a.subject}: {a.status} {a.text[:100]}")
                        ms = [a.ms for a in acks]
                        res.acks_ms += ms
                        res.dup_ms += [a.ms for a in dup]
                        res.server_ms += server
                        res.rounds.append({"round": r + 1, "acks": summary(ms),
                                           "duplicates": summary([a.ms for a in dup]), "server": summary(server),
                                           "burst_ms": (t_end - t_round) * 1000,
                                           "diagnoses_finished_during_burst": finished_during})
                        print(f"  {mode} round {r + 1}: ack median {statistics.median(ms):.1f} ms, p99 "
                              f"{pct(ms, 99):.1f} ms, max {max(ms):.1f} ms; burst {(t_end - t_round) * 1000:.0f} ms; "
                              f"{finished_during} diagnoses finished during it", file=sys.stderr)
                        # let every job of the round finish before the next round (awaited on Slack)
                        await until_updates(slack, jobs)
                    res.lag_ms = list(lag.lags_ms)
                    res.gc_gen2_ms = gcw.gen2_ms()
                    res.gc_runs = len(gcw.runs)
    finally:
        server_log.removeHandler(times)
        server_log.propagate = True
    return res


# ------------------------------------------------------------------ main


def report(results: list[ModeResult], args: argparse.Namespace) -> dict[str, Any]:
    print()
    print(f"/recon ack latency: {args.rounds} rounds x {args.concurrency} concurrent signed requests, "
          "in-process recon serve, embedded PostgreSQL store (ms)")
    print()
    print("| case | n | min | median | p95 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    out: dict[str, Any] = {}
    for m in results:
        label = {"idle": f"new job, worker idle ({m.slots} slot)", "busy": f"new job, worker busy ({m.slots} slots)"}
        s = summary(m.acks_ms)
        print(fmt_row(label[m.mode], s))
        if m.dup_ms:
            print(fmt_row(f"subject already running, worker busy ({m.slots} slots)", summary(m.dup_ms)))
        print(fmt_row(f"  server side (bolt dispatch), {m.mode}", summary(m.server_ms)))
        print(fmt_row(f"  event-loop stall during bursts, {m.mode}", summary(m.lag_ms)))
        print(fmt_row(f"  full (gen-2) GC runs during bursts, {m.mode} (of {m.gc_runs} GC runs)",
                      summary(m.gc_gen2_ms)))
        out[m.mode] = {
            "slots": m.slots, "acks_ms": summary(m.acks_ms), "duplicate_acks_ms": summary(m.dup_ms),
            "server_ms": summary(m.server_ms), "loop_lag_ms": summary(m.lag_ms),
            "gc_gen2_ms": summary(m.gc_gen2_ms), "gc_runs_during_bursts": m.gc_runs, "rounds": m.rounds,
            "errors": m.bad, "target_p99_ms": TARGET_P99_MS, "target_met": s.get("p99", 1e9) <= TARGET_P99_MS,
            "raw_acks_ms": [round(x, 3) for x in m.acks_ms], "raw_duplicate_acks_ms": [round(x, 3) for x in m.dup_ms],
        }
    print()
    for m in results:
        s = summary(m.acks_ms)
        verdict = "met" if s.get("p99", 1e9) <= TARGET_P99_MS else "MISSED"
        print(f"target p99 <= {TARGET_P99_MS:.0f} ms, {m.mode}: {verdict} (p99 {s.get('p99', float('nan')):.1f} ms)")
        if m.bad:
            print(f"  {len(m.bad)} unexpected answers, e.g. {m.bad[:3]}")
    return out


async def main_async(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: list[ModeResult] = []
    started = time.perf_counter()
    async with environment(args.keep) as env:
        real = env.correlation_ids
        for mode in modes:
            if mode == "idle":
                n = 1 + args.rounds * args.concurrency
                subjects = [f"bench-idle-{i:05d}" for i in range(n)]
                results.append(await run_mode(env, mode, args.idle_slots, args.rounds, args.concurrency, subjects,
                                              args.experiment_gc_freeze))
            elif mode == "busy":
                n = 1 + args.rounds * (args.concurrency + args.busy_slots)
                if n > len(real):
                    raise SystemExit(f"busy mode needs {n} distinct correlation ids; the platform has {len(real)}")
                results.append(await run_mode(env, mode, args.busy_slots, args.rounds, args.concurrency, real[:n],
                                              args.experiment_gc_freeze))
            else:
                raise SystemExit(f"unknown mode {mode!r} (idle, busy)")
    out = report(results, args)
    doc = {
        "benchmark": "slack_ack",
        "when": datetime.now(UTC).isoformat(),
        "host": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "machine": host_platform.machine()},
        "params": {"rounds": args.rounds, "concurrency": args.concurrency, "grid": GRID,
                   "experiment_gc_freeze": args.experiment_gc_freeze,
                   "store": "embedded PostgreSQL, durable=False (fsync off), /dev/shm"},
        "results": out,
        "elapsed_s": time.perf_counter() - started,
    }
    path = Path(args.json) if args.json else RESULTS / f"slack_ack-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    print(f"\nJSON: {path}  ({time.perf_counter() - started:.0f} s)")
    return 0 if all(r["target_met"] and not r["errors"] for r in out.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--modes", default="idle,busy", help="comma-separated: idle, busy")
    p.add_argument("--idle-slots", type=int, default=1)
    p.add_argument("--busy-slots", type=int, default=4)
    p.add_argument("--json", help="where to write the JSON (default benchmarks/results/slack_ack-<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, evidence)")
    p.add_argument("--experiment-gc-freeze", action="store_true",
                   help="after the warm-up job, gc.collect() + gc.freeze() (what a fix in the bot would do)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
