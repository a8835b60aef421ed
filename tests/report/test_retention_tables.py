"""Retention of the bookkeeping tables: jobs, Slack event ids and posts, alert groups with
their notifications, storms. Each goes after its own number of days, in bounded batches,
and never while an open incident, a queued or running job, a firing alert group, an
active freeze or an open approval still needs it; a dry run counts what a run deletes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.diagnosis.model import Window
from bot.report.retention_schedule import RetentionRun, retention_lock, retention_loop, run_retention
from bot.report.retention_tables import TABLES, TablePolicy, count, sweep
from bot.settings import Settings
from bot.store.store import Store
from tests.report.test_retention import run as run_cli

OLD = "now() - interval '100 days'"  # past every retention
RECENT = "now() - interval '1 day'"  # within every retention
CHANNEL = "C0ALERTS"
NOW = datetime.now(UTC)


async def table_counts(store: Store) -> dict[str, int]:
    return {t: int(await store.pool.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}


async def job(store: Store, key: str, status: str, *, finished: str | None = OLD, incident: str | None = None) -> int:
    fin = finished if status in ("done", "failed") else "NULL"
    job_id: int = await store.pool.fetchval(
        f"INSERT INTO jobs (kind, dedup_key, status, finished_at, incident_id, created_at) "
        f"VALUES ('k', $1, $2, {fin}, $3, {OLD}) RETURNING job_id", key, status, incident)
    return job_id


async def group(store: Store, key: str, status: str, *, when: str = OLD, generation: int = 1,
                incident: str | None = None, storm: int | None = None) -> int:
    resolved = when if status == "resolved" else "NULL"
    group_id: int = await store.pool.fetchval(
        f"INSERT INTO alert_groups (source, group_key, status, generation, incident_id, storm_id, first_seen,"
        f" last_seen, fired_at, resolved_at) VALUES ('alertmanager', $1, $2, $3, $4, $5, {OLD}, {when}, {OLD},"
        f" {resolved}) RETURNING group_id", key, status, generation, incident, storm)
    return group_id


async def note(store: Store, group_id: int, *, when: str = OLD, handled: bool = True) -> None:
    await store.pool.execute(
        f"INSERT INTO alert_notifications (group_id, generation, action, status, alerts, payload, received_at,"
        f" handled_at) VALUES ($1, 1, 'repeat', 'firing', 1, $2, {when}, {when if handled else 'NULL'})",
        group_id, json.dumps({"alerts": [{"status": "firing"}]}))


async def storm(store: Store, when: str = OLD) -> int:
    storm_id: int = await store.pool.fetchval(
        f"INSERT INTO alert_storms (channel, started_at, last_joined) VALUES ($1, {when}, {when})"
        " RETURNING storm_id", CHANNEL)
    return storm_id


async def post(store: Store, namespace: str, *, job_id: int | None = None, thread_ts: str | None = "1.000100",
               ts: str = "1.000200", when: str = OLD) -> str:
    await store.pool.execute(
        f"INSERT INTO slack_posts (namespace, post_key, channel, thread_ts, ts, state, created_at, job_id)"
        f" VALUES ($1, 'k', $2, $3, $4, 'posted', {when}, $5)", namespace, CHANNEL, thread_ts, ts, job_id)
    return namespace


async def incident(store: Store, cid: str, status: str = "open", *, thread: str | None = None,
                   alert_group: str | None = None) -> str:
    if alert_group:
        inc = await store.create_incident(title=cid, origin="alert", alert_group=alert_group)
    else:
        inc = await store.create_incident(title=cid, origin="cli", correlation_id=cid)
    if thread:
        await store.pool.execute("UPDATE incidents SET slack_channel = $2, slack_thread_ts = $3 WHERE incident_id = $1",
                                 inc.incident_id, CHANNEL, thread)
    if status != "open":
        await store.set_incident_status(inc.incident_id, status)  # type: ignore[arg-type]
    return inc.incident_id


@dataclass
class World:
    kept_jobs: set[int]
    kept_posts: set[str]
    kept_groups: set[int]
    kept_storms: set[int]
    job_post: str  # kept by its job's incident, freed when the job goes
    run_id: int


async def build(store: Store) -> World:
    await store.pool.execute(f"INSERT INTO slack_events (event_id, received_at) VALUES ('Ev-old', {OLD}),"
                             f" ('Ev-new', {RECENT})")
    open_inc = await incident(store, "c-open")
    closed_inc = await incident(store, "c-closed", "closed", thread="9.000100")
    frozen_inc = await incident(store, "c-frozen", "closed")
    await store.pool.execute("INSERT INTO freezes (incident_id, scope, reason, approved_by) VALUES ($1, '{}', 'r',"
                             " ARRAY['U0A'])", frozen_inc)
    prompted_inc = await incident(store, "c-prompted", "closed")
    await store.pool.execute(
        "INSERT INTO approval_prompts (incident_id, kind, channel, scope, reason, quorum, expires_at)"
        " VALUES ($1, 'freeze', $2, '{}', 'r', 1, now() + interval '1 hour')", prompted_inc, CHANNEL)

    # jobs: three go (done or failed long ago, their incident closed and done with)
    done_old = await job(store, "j1", "done")
    await job(store, "j2", "failed")
    closed_job = await job(store, "j3", "done", incident=closed_inc)
    open_job = await job(store, "j4", "done", incident=open_inc)
    kept_jobs = {
        open_job,
        await job(store, "j5", "done", incident=frozen_inc),
        await job(store, "j6", "done", incident=prompted_inc),
        await job(store, "j7", "queued"),
        await job(store, "j8", "running"),
        await job(store, "j9", "done", finished=RECENT),
    }
    run_id = await store.start_run(closed_inc, {"correlation_id": "c-closed"}, Window(NOW - timedelta(hours=1), NOW))
    await store.pool.execute("UPDATE diagnosis_runs SET job_id = $2 WHERE run_id = $1", run_id, closed_job)

    # storms and alert groups
    await storm(store)  # no group names it: goes
    s_kept, s_only, s_job = await storm(store), await storm(store), await storm(store)
    s_recent = await storm(store, RECENT)
    g_old = await group(store, "g-resolved", "resolved")
    for handled in (True, True, False):
        await note(store, g_old, handled=handled)
    g_firing = await group(store, "g-firing", "firing", storm=s_kept)
    await note(store, g_firing)  # handled long ago: goes
    await note(store, g_firing, handled=False)  # still to be shown: stays
    await note(store, g_firing, when=RECENT)
    g_job = await group(store, "g-job", "resolved")
    kept_jobs.add(await job(store, f"alert:{g_job}", "queued"))
    kept_jobs.add(await job(store, f"alert_storm:{s_job}", "running"))
    kept_jobs.add(await job(store, "alert:999999", "queued"))
    g_open = await group(store, "g-open", "resolved", incident=open_inc)
    await group(store, "g-closed", "resolved", incident=closed_inc)
    await incident(store, "c-keyed", alert_group="alertmanager:g-keyed#1")
    g_keyed = await group(store, "g-keyed", "resolved")
    g_frozen = await group(store, "g-frozen", "resolved", incident=frozen_inc)
    g_recent = await group(store, "g-recent", "resolved", when=RECENT)
    await group(store, "g-storm", "resolved", storm=s_only)
    g_refired = await group(store, "g-refired", "firing", generation=2)

    # posts: four go
    kept_posts = {
        await post(store, "job:a", thread_ts="9.000100"),  # a reply in the closed incident's thread
        await post(store, "job:b", thread_ts=None, ts="9.000100"),  # the thread's parent
        await post(store, "job:c", job_id=open_job),  # its job: an open incident's
        await post(store, f"alert:{g_firing}:1"),
        await post(store, "alert:999999:1"),  # its job is queued
        await post(store, f"storm:{s_kept}"),
        await post(store, "job:recent", when=RECENT),
    }
    job_post = await post(store, "job:closed", job_id=closed_job)
    await post(store, f"job:{done_old}", job_id=done_old)
    await post(store, f"alert:{g_refired}:1")  # the group is on its second generation
    await post(store, "storm:424242")
    await post(store, "alert:not-a-number")
    return World(kept_jobs=kept_jobs, kept_posts={*kept_posts, job_post},
                 kept_groups={g_firing, g_job, g_open, g_keyed, g_frozen, g_recent, g_refired},
                 kept_storms={s_kept, s_job, s_recent}, job_post=job_post, run_id=run_id)


async def ids(store: Store, query: str) -> set[Any]:
    return {r[0] for r in await store.pool.fetch(query)}


async def test_each_table_keeps_what_is_still_needed(store: Store) -> None:
    w = await build(store)
    policy = TablePolicy(batch=2)  # the defaults, in batches of two
    before = await table_counts(store)
    dry = await count(store.pool, policy)
    assert await table_counts(store) == before and dry.dry_run
    assert dry.counts == {"slack_events": 1, "slack_posts": 4, "alert_notifications": 4, "alert_groups": 3,
                          "alert_storms": 1, "jobs": 3}

    real = await sweep(store.pool, policy)
    # what the dry run counted, and the storm whose last group this run removed
    assert real.counts == {**dry.counts, "alert_storms": 2}
    assert {t: before[t] - n for t, n in (await table_counts(store)).items()} == real.counts
    assert real.batches > len(TABLES)  # batches of two: several per table
    assert await ids(store, "SELECT event_id FROM slack_events") == {"Ev-new"}
    assert await ids(store, "SELECT job_id FROM jobs") == w.kept_jobs
    assert await ids(store, "SELECT namespace FROM slack_posts") == w.kept_posts
    assert await ids(store, "SELECT group_id FROM alert_groups") == w.kept_groups
    assert await ids(store, "SELECT storm_id FROM alert_storms") == w.kept_storms
    # the firing group keeps its unhandled and recent notifications
    left = await store.pool.fetch("SELECT handled_at IS NULL AS unhandled, received_at > now() - interval '2 days'"
                                  " AS recent FROM alert_notifications ORDER BY notification_id")
    assert [(r["unhandled"], r["recent"]) for r in left] == [(True, False), (False, True)]
    # a finished job's post and run outlive it (posts have their own retention)
    assert await store.pool.fetchval("SELECT job_id FROM slack_posts WHERE namespace = $1", w.job_post) is None
    assert await store.pool.fetchval("SELECT job_id FROM diagnosis_runs WHERE run_id = $1", w.run_id) is None

    # the next run: the post whose job went is free to go now; then nothing more
    again = await sweep(store.pool, policy)
    assert again.counts == {**dict.fromkeys(TABLES, 0), "slack_posts": 1}
    assert (await sweep(store.pool, policy)).total == 0


async def test_a_group_that_fires_again_stays(store: Store) -> None:
    """The rule is checked on the row the batch locks: a resolved group's row changed by
    the intake before the batch gets to it is not deleted."""
    g = await group(store, "g-back", "resolved")
    await store.pool.execute("UPDATE alert_groups SET status = 'firing', resolved_at = NULL, last_seen = now()"
                             " WHERE group_id = $1", g)
    assert (await sweep(store.pool, TablePolicy())).counts["alert_groups"] == 0
    assert await store.pool.fetchval("SELECT count(*) FROM alert_groups") == 1


def settings(**kw: Any) -> Settings:
    return Settings.model_validate({"RECON_RETENTION_INTERVAL_H": 1, **kw})


async def test_defaults_and_one_run_at_a_time(store: Store) -> None:
    assert TablePolicy.from_settings(Settings()) == TablePolicy(jobs_days=14, slack_events_days=7,
                                                                slack_posts_days=30, alerts_days=30, batch=1000)
    await store.pool.execute(f"INSERT INTO slack_events (event_id, received_at) VALUES ('Ev-old', {OLD})")
    async with retention_lock(store.pool) as got:
        assert got
        assert await run_retention(store.pool, settings()) is None  # another run holds it: nothing done
        assert await store.pool.fetchval("SELECT count(*) FROM slack_events") == 1
        dry = await run_retention(store.pool, settings(), dry_run=True)  # a dry run needs no lock
        assert dry is not None and dry.tables.counts["slack_events"] == 1
    done = await run_retention(store.pool, settings())
    assert done is not None and done.tables.counts["slack_events"] == 1 and done.incidents.removed == ()


async def test_serve_task_runs_and_logs(store: Store, caplog: Any) -> None:
    await store.pool.execute(f"INSERT INTO slack_events (event_id, received_at) VALUES ('Ev-old', {OLD})")
    stop = asyncio.Event()
    runs: list[RetentionRun | None] = []

    def ran(run: RetentionRun | None) -> None:
        runs.append(run)
        stop.set()

    caplog.set_level("INFO", logger="bot.report.retention_schedule")
    await retention_loop(store.pool, settings(), stop, first_after_s=0, on_run=ran)
    assert len(runs) == 1 and runs[0] is not None and runs[0].tables.counts["slack_events"] == 1
    assert "slack_events 1" in caplog.text
    # off: returns at once, runs nothing
    await retention_loop(store.pool, settings(RECON_RETENTION_INTERVAL_H=0), asyncio.Event(), first_after_s=0,
                         on_run=ran)
    assert len(runs) == 1


async def test_recon_retention_dry_run_shows_rows_per_table(store: Store, store_url: str, tmp_path: Path) -> None:
    await store.pool.execute(f"INSERT INTO slack_events (event_id, received_at) VALUES ('Ev-old', {OLD})")
    await job(store, "j1", "done")
    p = run_cli(["retention", "--dry-run"], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    rows = {line.split()[0]: line.split()[1] for line in p.stdout.splitlines() if line.startswith("  ")}
    assert rows["slack_events"] == "1" and rows["jobs"] == "1" and rows["alert_groups"] == "0"
    assert "would remove" in p.stdout and await store.pool.fetchval("SELECT count(*) FROM slack_events") == 1
    p = run_cli(["retention"], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    assert any(line.split()[:2] == ["slack_events", "1"] for line in p.stdout.splitlines())
    assert await store.pool.fetchval("SELECT count(*) FROM slack_events") == 0
