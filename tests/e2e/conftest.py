"""Fixtures for end-to-end tests: a generated platform loaded into a real billing
database, with its logs and traces written as an offline evidence folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest_asyncio

from bot.scenario import FLAVOURS, Injection, Platform, ScenarioSpec, build_platform, demo_spec
from bot.scenario.evidence_files import write_evidence
from bot.scenario.load import load_billing

NOW = datetime(2026, 11, 20, 12, 17, 31, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LoadedPlatform:
    platform: Platform
    billing_url: str
    evidence: Path


def every_injection() -> list[Injection]:
    return [Injection(check, flavour) for check, flavours in FLAVOURS.items() for flavour in flavours]


async def load(platform: Platform, url: str, folder: Path) -> LoadedPlatform:
    conn = await asyncpg.connect(url)
    try:
        await load_billing(conn, platform, replace=True)
    finally:
        await conn.close()
    write_evidence(platform, folder)
    return LoadedPlatform(platform, url, folder)


@pytest_asyncio.fixture
async def demo_loaded(fresh_database: str, tmp_path: Path) -> AsyncIterator[LoadedPlatform]:
    yield await load(build_platform(demo_spec(), now=NOW, seed=7), fresh_database, tmp_path / "evidence")


@pytest_asyncio.fixture
async def grid_loaded(fresh_database: str, tmp_path: Path) -> AsyncIterator[LoadedPlatform]:
    spec = ScenarioSpec.grid(2, 2, 4, injections=every_injection())
    yield await load(build_platform(spec, now=NOW, seed=11), fresh_database, tmp_path / "evidence")
