"""Fixtures and helpers of the end-to-end tests.

- ``grid_loaded``: a 2x2x4 grid platform with every injection, loaded like ``demo_loaded``
  (tests/conftest.py).
- ``live``: the demo platform as of now (``live_platform``), loaded: a diagnosis through
  Slack ends its window now.
- ``bot``: ``recon serve`` in this process on ``live``, with the file's ``bot_settings``
  (none by default; a test file overrides that fixture to give its own).
- ``http``: an HTTP client.
- ``live_env``: ``bot_env`` for a loaded platform; ``thread_done``: whether a channel's
  first thread is complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from bot.scenario import ScenarioSpec, build_platform
from tests.conftest import LoadedPlatform, every_injection, load
from tests.constants import NOW
from tests.e2e.slackbot import STEPS, InProcessBot, bot_env, bot_in_process, live_platform
from tests.standins.slack import SlackStandIn


@pytest_asyncio.fixture
async def grid_loaded(fresh_database: str, tmp_path: Path) -> AsyncIterator[LoadedPlatform]:
    spec = ScenarioSpec.grid(2, 2, 4, injections=every_injection())
    yield await load(build_platform(spec, now=NOW, seed=11), fresh_database, tmp_path / "evidence")


@pytest_asyncio.fixture
async def live(fresh_database: str, tmp_path: Path) -> LoadedPlatform:
    return await load(live_platform(), fresh_database, tmp_path / "evidence")


def live_env(live: LoadedPlatform, store_url: str, slack: SlackStandIn, **extra: str) -> dict[str, str]:
    """``bot_env`` for the bot on ``live``'s billing database and evidence."""
    return bot_env(store_url, live.billing_url, live.evidence, slack, **extra)


@pytest.fixture
def bot_settings() -> dict[str, str]:
    """Settings the ``bot`` fixture adds to ``bot_env``'s: none here; a file overrides this."""
    return {}


@pytest_asyncio.fixture
async def bot(live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn,
              bot_settings: dict[str, str]) -> AsyncIterator[InProcessBot]:
    """The bot in this process. With an app token it runs in Socket Mode: no signing secret,
    and ready once its socket is connected."""
    env = live_env(live, store_url, slack_standin, **bot_settings)
    socket_mode = "SLACK_APP_TOKEN" in env
    if socket_mode:
        env.pop("SLACK_SIGNING_SECRET")
    async with bot_in_process(env) as b:
        if socket_mode:
            await slack_standin.wait_socket_connected()
        yield b


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as c:
        yield c


def thread_done(slack: SlackStandIn, channel: str) -> bool:
    """The channel's first thread has every step, and its parent says drift was found."""
    msgs = slack.messages(channel)
    return bool(msgs) and len(slack.thread(channel, msgs[0].ts)) >= 1 + STEPS and \
        "Drift found" in json.dumps(msgs[0].blocks)
