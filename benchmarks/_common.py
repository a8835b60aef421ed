"""What the benchmarks share: percentiles and summary rows, and ``recon serve`` run
in-process until the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Sequence

from bot.commands.serve import serve
from bot.settings import Settings


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def machine_speed_s(n: int = 10_000_000) -> float:
    """Seconds this machine takes right now for ``n`` pure-Python additions in a function
    (about 0.75 s on the 2-core VM; the README's older 1.5-1.8 s were the same loop at
    module level, which is slower). The VM's speed swings by up to a factor of two from
    one minute to the next, so a figure means little without a yardstick beside it."""
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - t0


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": min(values), "median": statistics.median(values), "p95": pct(values, 95),
            "p99": pct(values, 99), "max": max(values)}


def fmt_row(label: str, s: dict[str, float]) -> str:
    if not s.get("n"):
        return f"| {label} | 0 | – | – | – | – | – |"
    return (f"| {label} | {int(s['n'])} | {s['min']:.1f} | {s['median']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} "
            f"| {s['max']:.1f} |")


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, stop_timeout: float = 60.0) -> AsyncIterator[str]:
    """``recon serve`` on a free loopback port; yields its base URL, stops it after."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, "127.0.0.1", 0, on_ready=ready.set_result, stop=stop))
    done, _ = await asyncio.wait([task, ready], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        if task.done():
            task.result()
        raise TimeoutError("recon serve did not become ready in 60 s")
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_timeout)
