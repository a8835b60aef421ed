"""Timeline events and evidence are append-only; only the retention purge may delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bot.diagnosis.model import Window
from bot.sources.protocols import SourceCall
from bot.store.store import Store

T0 = datetime(2025, 3, 1, tzinfo=UTC)  # this file's own clock: its runs are made by hand


async def _seed(store: Store) -> str:
    inc = await store.create_incident(title="t", origin="cli", correlation_id="c-ao")
    run_id = await store.start_run(inc.incident_id, {"correlation_id": "c-ao"}, Window(T0, T0))
    await store.add_timeline_event(inc.incident_id, run_id, "note", "recon", "d", {}, "recon")
    call = SourceCall(source="loki", kind="logql", request="{}")
    await store.add_evidence(inc.incident_id, run_id, "logs", "before", call, [{"a": 1}], 10)
    return inc.incident_id


@pytest.mark.parametrize("table", ["timeline_events", "evidence"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET incident_id = incident_id",
        "DELETE FROM {table}",
        "TRUNCATE {table}",
    ],
)
async def test_changes_are_refused(store: Store, table: str, statement: str) -> None:
    await _seed(store)
    with pytest.raises(asyncpg.RestrictViolationError, match=f"{table} is append-only"):
        await store.pool.execute(statement.format(table=table))
    assert await store.pool.fetchval(f"SELECT count(*) FROM {table}") == 1


async def test_deleting_an_incident_with_history_is_refused(store: Store) -> None:
    iid = await _seed(store)
    with pytest.raises(asyncpg.RestrictViolationError):
        await store.pool.execute("DELETE FROM incidents WHERE incident_id = $1", iid)
    assert await store.get_incident(iid) is not None


async def test_retention_purge_may_delete_but_never_update(store: Store) -> None:
    iid = await _seed(store)
    async with store.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL recon.allow_purge = 'on'")
            with pytest.raises(asyncpg.RestrictViolationError):
                async with conn.transaction():  # savepoint
                    await conn.execute("UPDATE evidence SET error = 'x'")
            await conn.execute("DELETE FROM incidents WHERE incident_id = $1", iid)
        # the setting was local to that transaction
        assert await conn.fetchval("SELECT current_setting('recon.allow_purge', true)") in ("", None)
    assert await store.get_incident(iid) is None
    assert await store.timeline(iid) == []
    assert await store.evidence(iid) == []
    # old history stays protected once the purge transaction ended
    iid2 = await _seed(store)
    with pytest.raises(asyncpg.RestrictViolationError):
        await store.pool.execute("DELETE FROM timeline_events WHERE incident_id = $1", iid2)
    assert len(await store.timeline(iid2)) == 1
    assert (datetime.now(UTC) - (await store.timeline(iid2))[0].recorded_at) < timedelta(hours=1)
