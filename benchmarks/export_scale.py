"""The usage export at scale: an org-month of ~1,000,000 lines reconciled against the
billing_scale database (rule 8), beside a bare read of the same ledger entries and a bare
parse of the same file, in one run.

Usage::

    python benchmarks/export_scale.py [--database-url URL] [--org org-tenant] [--runs 3] [--breaks 100]

It uses the database ``benchmarks/billing_scale.py`` builds (run that first, or
``billing_scale.py --build-only``; the same embedded server in ``benchmarks/.data/pg``
unless ``--database-url``). The org's fullest UTC month is written as a faithful export
(``bot.export.sample.write_export``) to ``benchmarks/.data/``, then ``--breaks`` lines
are changed (usage_source flipped), so the detail pass runs too.

Each case runs in a child process of its own, so its peak RSS is its own (``VmHWM`` of
the child, which it reports itself; not ``ru_maxrss``, which on Linux keeps the parent's
high-water mark across fork and exec):

- ``bare-read``: the org-month's ledger entries with their usage rows through a
  server-side cursor (``export_entries.sql``, typed: what a plain reader of the same
  entries reads), rows dropped;
- ``bare-parse``: ``csv.reader`` over the file, rows dropped;
- ``reconcile``: ``bot.export.run.reconcile_export`` (check every value, the canonical
  texts and their hashes, the ledger's texts by COPY, the breaks' stored lines and the
  file again for their words, the findings), with the time of each phase.

Targets (issue 14): reconcile ≤ 15 s, peak RSS ≤ 300 MB, and ≤ 2 × (bare read + bare parse).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing_scale import DATA_DIR, DB_NAME, embedded_server_url, with_database

from bot.export.csvfile import open_export
from bot.export.run import reconcile_export
from bot.export.sample import write_export
from bot.sources.billing import QUERIES, PostgresBillingReader


async def fullest_month(url: str, org: str) -> tuple[str, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "select to_char(posted_at at time zone 'UTC', 'YYYY-MM') m, count(*) n from billing.ledger_entries "
            "where org_id = $1 group by 1 order by 2 desc limit 1", org)
    finally:
        await conn.close()
    if row is None:
        raise SystemExit(f"no ledger entries of {org}: build the database with billing_scale.py first")
    return str(row["m"]), int(row["n"])


async def export_text(url: str, org: str, month: str, breaks: int) -> tuple[int, int, str]:
    reader = PostgresBillingReader(url, 600_000)
    buf = io.StringIO(newline="")
    try:
        n = await write_export(reader, buf, org, [month])
    finally:
        await reader.aclose()
    rows = buf.getvalue().split("\r\n")
    step = max(1, n // max(1, breaks))
    changed = 0
    for i in range(1, len(rows), step):
        if changed < breaks and ",app_runtime," in rows[i]:
            rows[i] = rows[i].replace(",app_runtime,", ",allocation,", 1)
            changed += 1
    return n, changed, "\r\n".join(rows)


async def child(case: str, url: str, org: str, month: str, path: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if case == "bare-parse":
        with path.open(newline="", encoding="utf-8") as f:
            out["rows"] = sum(1 for _ in csv.reader(f))
    elif case == "bare-read":
        conn = await asyncpg.connect(url)
        try:
            start = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
            hi = (start + timedelta(days=32)).replace(day=1)
            n = 0
            async with conn.transaction(readonly=True):
                cur = await conn.cursor(QUERIES["export_entries"], org, None, start, hi, [month])
                while rows := await cur.fetch(20_000):
                    n += len(rows)
            out["rows"] = n
        finally:
            await conn.close()
    else:
        reader = PostgresBillingReader(url, 600_000)
        try:
            got = await reconcile_export(open_export(path, str(path)), reader)
        finally:
            await reader.aclose()
        out.update(lines=got.read.lines, entries=got.entries, counts=got.counts, findings=len(got.findings),
                   phases={k: round(v, 2) for k, v in got.seconds.items()})
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM): its own, not ru_maxrss, which on Linux
    keeps the parent's high-water mark across fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_child(case: str, args: argparse.Namespace, url: str, month: str, path: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", case, "--database-url", url, "--org", args.org,
           "--month", month, "--file", str(path)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    got: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", help="the billing_scale database (default: the embedded benchmark server)")
    ap.add_argument("--org", default="org-tenant")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each case")
    ap.add_argument("--breaks", type=int, default=100, help="lines changed in the export")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--month", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    url = args.database_url or with_database(embedded_server_url(), DB_NAME)
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, url, args.org, args.month, Path(args.file)))))
        return
    month, entries = asyncio.run(fullest_month(url, args.org))
    path = DATA_DIR / f"export-{args.org}-{month}.csv"
    n, changed, text = asyncio.run(export_text(url, args.org, month, args.breaks))
    path.write_text(text, encoding="utf-8", newline="")
    del text
    print(f"{args.org} {month}: {entries:,} ledger entries; export {path.name}: {n:,} lines, "
          f"{path.stat().st_size / 1e6:.0f} MB, {changed} lines changed (app_runtime shown as allocation, "
          f"of {args.breaks} picked)")
    results: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.runs):
        for case in ("bare-read", "bare-parse", "reconcile"):
            got = run_child(case, args, url, month, path)
            results.setdefault(case, []).append(got)
            print(f"run {r + 1} {case:10} {got['seconds']:6.2f} s  peak RSS {got['peak_rss_mb']:6.1f} MB  "
                  + ("" if case != "reconcile" else
                     f"phases {got['phases']} counts {got['counts']} findings {got['findings']}"), flush=True)
    med = {c: statistics.median(x["seconds"] for x in v) for c, v in results.items()}
    ratio = med["reconcile"] / (med["bare-read"] + med["bare-parse"])
    print(f"\nmedian: bare read {med['bare-read']:.2f} s, bare parse {med['bare-parse']:.2f} s, "
          f"reconcile {med['reconcile']:.2f} s = {ratio:.2f} x (read + parse)")
    print("peak RSS of each reconcile child (MB): " + ", ".join(str(x["peak_rss_mb"]) for x in results["reconcile"]))


if __name__ == "__main__":
    main()
