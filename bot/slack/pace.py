"""Keeping within Slack's posting rate: about one message a second per channel, with
short bursts (a token bucket per channel, per process). Used where the bot posts many
messages at once (alert storms); Slack's 429s are still honoured by the client."""

from __future__ import annotations

import asyncio
import time


class ChannelPacer:
    def __init__(self, rate_per_s: float = 1.0, burst: int = 5) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._tokens: dict[str, float] = {}
        self._stamp: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            tokens = min(self.burst, self._tokens.get(channel, self.burst)
                         + (now - self._stamp.get(channel, now)) * self.rate)
            if tokens < 1:
                await asyncio.sleep((1 - tokens) / self.rate)  # pacing: the rate limit itself, nothing to await
                now = time.monotonic()
                tokens = 1.0
            self._tokens[channel] = tokens - 1
            self._stamp[channel] = now
