"""The alert intake on real PostgreSQL: group commit (``bot.store.intake``) keeps the
meaning of every notification, isolates a payload the store refuses, and batches of two
processes never deadlock; the group locks never leak into the pool."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import string
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio

from bot.alerts import parse_alertmanager
from bot.alerts.parse import MAX_GROUP_KEY_BYTES, bounded_group_key
from bot.errors import BadInput, StoreError
from bot.store.alerts import ALERT_JOB, STORM_JOB, AlertStore, Intake
from bot.store.db import Pool, connect_pool
from bot.store.intake import intake_item, warm_up


def payload(group: str, status: str = "firing", *, severity: str = "page", n_alerts: int = 1,
            note: str = "drift") -> dict[str, Any]:
    labels = {"alertname": "AppRuntimeMeteringDrift", "severity": severity, "app_instance_id": f"ai-{group}"}
    return {
        "version": "4", "groupKey": f'{{}}:{{group="{group}"}}', "truncatedAlerts": 0, "status": status,
        "receiver": "recon", "groupLabels": {"group": group}, "commonLabels": labels,
        "commonAnnotations": {"summary": note}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": status, "labels": {**labels, "instance": f"n{j}"}, "annotations": {"summary": note},
                    "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom/graph", "fingerprint": f"{group}-{j}"} for j in range(n_alerts)],
    }


def alert_store(pool: Pool, **kw: Any) -> AlertStore:
    args: dict[str, Any] = {"reopen_s": 600, "storm_threshold": 5, "storm_window_s": 120, "storm_gather_s": 0}
    return AlertStore(pool, **(args | kw))


async def take_in(store: AlertStore, doc: dict[str, Any], *, channel: str | None = "C0ALERTS",
                  event_id: str | None = None, text: str | None = None,
                  anchor_ts: str | None = None) -> Intake | None:
    return await store.intake(parse_alertmanager(doc).digest(), channel=channel, route="default",
                              subject={"app_instance_id": doc["commonLabels"]["app_instance_id"]},
                              payload_json=text if text is not None else json.dumps(doc), event_id=event_id,
                              anchor_ts=anchor_ts)


@pytest_asyncio.fixture
async def pool(store_url: str) -> AsyncIterator[Pool]:
    p = await connect_pool(store_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


# one group's life: opened, repeated, resolved, fired again within the window
LIFE = [("firing", "open"), ("firing", "repeat"), ("resolved", "resolve"), ("resolved", "repeat"),
        ("firing", "refire"), ("firing", "repeat")]


async def test_a_batch_means_what_one_notification_at_a_time_means(pool: Pool) -> None:
    store = alert_store(pool)
    # one at a time: each call finds the writer idle and is written alone
    alone = [await take_in(store, payload("alone", status)) for status, _ in LIFE]
    assert store.writer.batches == len(LIFE) and store.writer.largest_batch == 1
    # all at once, interleaved with another group: one batch
    docs = [payload(g, status) for status, _ in LIFE for g in ("batched", "other")]
    together = await asyncio.gather(*(take_in(store, d) for d in docs))
    assert store.writer.batches == len(LIFE) + 1 and store.writer.largest_batch == len(docs)

    expected = [action for _, action in LIFE]
    assert [i.action for i in alone if i] == expected
    batched = [i for i in together if i and i.group.group_key.endswith('"batched"}')]
    assert [i.action for i in batched] == expected
    # the same generation, counts and a job queued only while none is queued for the group
    for seq in ([i for i in alone if i], batched):
        assert [i.group.notifications for i in seq] == [1, 2, 3, 4, 5, 6]
        assert {i.group.generation for i in seq} == {1}
        assert seq[0].job_id is not None and all(i.job_id is None for i in seq[1:])
        assert [i.group.status for i in seq] == [s for s, _ in LIFE]
    ids = [i.notification_id for i in batched]
    assert ids == sorted(ids)  # recorded in arrival order
    async with pool.acquire() as conn:
        stored = await conn.fetch(
            "select n.action, n.payload, n.alerts from alert_notifications n join alert_groups g using (group_id)"
            " where g.group_key like '%\"batched\"}' order by notification_id")
        jobs = await conn.fetchval("select count(*) from jobs where kind = 'alert'")
    assert [r["action"] for r in stored] == expected
    assert json.loads(stored[0]["payload"])["groupKey"] == '{}:{group="batched"}'  # the body as received
    assert jobs == 3  # one per group: alone, batched, other


async def test_a_storm_that_starts_inside_one_batch(pool: Pool) -> None:
    store = alert_store(pool, storm_threshold=5)
    sev = ["critical", "page", "warning", "info", "low", "page", "critical"]
    got = await asyncio.gather(*(take_in(store, payload(f"s{i}", severity=s)) for i, s in enumerate(sev)))
    assert store.writer.largest_batch == len(sev)
    intakes = [i for i in got if i is not None]
    assert all(i.action == "open" for i in intakes)
    in_storm = [i for i in intakes if i.storm_id is not None]
    assert len(in_storm) == 3 and len({i.storm_id for i in in_storm}) == 1  # the 5th, 6th and 7th opened
    async with pool.acquire() as conn:
        jobs = {(r["kind"], r["n"]) for r in await conn.fetch("select kind, count(*) n from jobs group by 1")}
        storms = await conn.fetchval("select count(*) from alert_storms")
    assert jobs == {(ALERT_JOB, 4), (STORM_JOB, 1)}  # the kinds the worker has handlers for
    assert storms == 1
    # until the storm job posts their messages, what storm members receive is that job's to show
    again = await asyncio.gather(*(take_in(store, payload(f"s{i}", severity=s)) for i, s in enumerate(sev)))
    assert [i.action for i in again if i] == ["repeat"] * len(sev)
    assert all(i.job_id is None for i in again if i)  # the 4 alert jobs and the storm job are still queued
    async with pool.acquire() as conn:
        await conn.execute("update jobs set status = 'done' where kind = 'alert_storm'")
    late = await take_in(store, payload("s6", severity="critical"))
    assert late is not None and late.storm_id is not None and late.job_id is not None  # a new storm job takes it
    async with pool.acquire() as conn:
        kinds = [r["kind"] for r in await conn.fetch("select kind from jobs where status = 'queued' order by job_id")]
    assert kinds == [ALERT_JOB] * 4 + [STORM_JOB]


async def test_a_payload_the_store_refuses_fails_alone(pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    store = alert_store(pool)
    bad = payload("nul", note="a NUL \u0000 in an annotation")
    text = json.dumps(bad)  # json writes it as \\u0000, which PostgreSQL's jsonb refuses
    assert "\\u0000" in text
    with caplog.at_level(logging.WARNING, logger="bot.store.intake"):
        got = await asyncio.gather(take_in(store, payload("good1")), take_in(store, bad, text=text),
                                   take_in(store, payload("good2")), return_exceptions=True)
    assert isinstance(got[1], BadInput) and "cannot keep this payload" in str(got[1])
    assert [g.action for g in got if isinstance(g, Intake)] == ["open", "open"]
    assert any("writing them one at a time" in r.getMessage() for r in caplog.records)
    async with pool.acquire() as conn:
        keys = {r["group_key"] for r in await conn.fetch("select group_key from alert_groups")}
    assert keys == {'{}:{group="good1"}', '{}:{group="good2"}'}


async def test_slack_events_count_once_in_a_batch_and_after(pool: Pool) -> None:
    store = alert_store(pool)
    doc = payload("post")
    first, again = await asyncio.gather(take_in(store, doc, event_id="Ev01", anchor_ts="1.1"),
                                        take_in(store, doc, event_id="Ev01", anchor_ts="1.1"))
    assert first is not None and first.action == "open" and again is None
    assert await take_in(store, doc, event_id="Ev01", anchor_ts="1.1") is None
    other = await take_in(store, doc, event_id="Ev02", anchor_ts="1.1")
    assert other is not None and other.action == "repeat"


async def test_two_processes_batches_never_deadlock(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two writers (as two processes) take in interleaved notifications of the same groups
    in two channels: all stored, one open per group, and no batch ever failed (a deadlock
    would fail one, and the writer would say so)."""
    pools = [await connect_pool(store_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        stores = [alert_store(p, storm_threshold=3) for p in pools]  # storms too: their rows are locked
        rnd = random.Random(7)
        work: list[tuple[int, dict[str, Any], str]] = []
        for _ in range(400):
            g = rnd.randrange(24)
            work.append((rnd.randrange(2), payload(f"g{g}", severity=rnd.choice(["page", "info"])), f"C{g % 2}"))

        async def lane(items: list[tuple[int, dict[str, Any], str]]) -> None:
            for who, doc, channel in items:
                assert await take_in(stores[who], doc, channel=channel) is not None

        with caplog.at_level(logging.WARNING, logger="bot.store.intake"):
            async with asyncio.timeout(120):
                await asyncio.gather(*(lane(work[i::40]) for i in range(40)))
        assert not [r for r in caplog.records if r.name == "bot.store.intake"]
        assert all(s.writer.largest_batch > 1 for s in stores)  # both really batched
        async with pools[0].acquire() as conn:
            rows = await conn.fetch("select g.group_key, count(*) filter (where n.action = 'open') opens,"
                                    " count(*) n from alert_groups g join alert_notifications n using (group_id)"
                                    " group by 1")
        assert sum(r["n"] for r in rows) == len(work)
        assert {r["opens"] for r in rows} == {1}
        assert len(rows) == len({doc["groupKey"] for _, doc, _ in work})
    finally:
        for p in pools:
            await p.close()


async def held_advisory_locks(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("select count(*) from pg_locks where locktype = 'advisory'"))
    finally:
        await conn.close()


async def test_group_locks_never_go_back_to_the_pool_held(store_url: str) -> None:
    """The pool does not reset connections with a query, so a lock whose taking was
    interrupted must not stay with a pooled connection."""
    p = await connect_pool(store_url, min_size=1, max_size=2)
    try:
        store = alert_store(p)
        async with store.group_lock(1):
            assert await held_advisory_locks(store_url) == 1
        assert await held_advisory_locks(store_url) == 0
        async with store.storm_lock(9) as mine:
            assert mine
        assert await held_advisory_locks(store_url) == 0
        with pytest.raises(RuntimeError):
            async with store.group_lock(3):
                raise RuntimeError("a job failed inside the lock")
        assert await held_advisory_locks(store_url) == 0

        inside = asyncio.Event()

        async def job_cancelled_inside() -> None:
            async with store.group_lock(4):
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(job_cancelled_inside())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await held_advisory_locks(store_url) == 0  # released, not left with a pooled connection

        holder_entered = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with store.group_lock(2):
                holder_entered.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await holder_entered.wait()
        waiter = asyncio.create_task(store.group_lock(2).__aenter__())
        # the waiter's pg_advisory_lock is queued behind the holder on the server
        conn = await asyncpg.connect(store_url)
        try:
            async with asyncio.timeout(10):
                while not await conn.fetchval("select count(*) from pg_locks where locktype = 'advisory'"
                                              " and not granted"):
                    await asyncio.sleep(0.01)  # polls the server's lock table, not a timing guess
        finally:
            await conn.close()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        await holder
        assert await held_advisory_locks(store_url) == 0  # nobody holds group 2 now
        async with store.group_lock(2):  # and the pool still works, with new connections
            assert await held_advisory_locks(store_url) == 1
    finally:
        await p.close()


async def test_large_payloads_go_in_several_batches_in_order(pool: Pool) -> None:
    store = alert_store(pool)
    store.writer.max_batch_bytes = 64 * 1024
    docs = [payload("big", n_alerts=100) for _ in range(8)]  # ~35 KB each
    assert all(30_000 < len(json.dumps(d)) < 64 * 1024 for d in docs)
    got = await asyncio.gather(*(take_in(store, d) for d in docs))
    assert [i.action for i in got if i] == ["open"] + ["repeat"] * 7
    assert store.writer.batches >= 4 and store.writer.largest_batch <= 2  # at most what fits in 64 KB
    ids = [i.notification_id for i in got if i]
    assert ids == sorted(ids)


async def test_a_notification_the_store_refuses_fails_alone(pool: Pool) -> None:
    store = alert_store(pool)
    bad = payload("b")
    bad["commonLabels"]["team"] = "bill\u0000ing"  # a NUL in a label: jsonb (the batch's items) refuses it
    got = await asyncio.gather(take_in(store, payload("a")), take_in(store, bad), take_in(store, payload("c")),
                               return_exceptions=True)
    assert isinstance(got[0], Intake) and isinstance(got[1], BadInput) and isinstance(got[2], Intake)
    assert store.writer.largest_batch == 1  # the batch was refused, then written one at a time


async def test_the_payload_is_kept_as_the_text_received(pool: Pool) -> None:
    store = alert_store(pool)
    doc = payload("c")
    doc["alerts"][0]["annotations"]["description"] = "ünïcödé"
    plain = json.dumps(doc, indent=1, ensure_ascii=False)  # spacing, key order and characters as sent
    nul = payload("d")
    nul["alerts"][0]["annotations"]["description"] = "kept as received: \u0000"  # which jsonb would refuse
    got = [await take_in(store, d, text=t) for d, t in ((doc, plain), (nul, json.dumps(nul)))]
    async with pool.acquire() as conn:
        stored = [await conn.fetchval("select payload from alert_notifications where notification_id = $1",
                                      i.notification_id) for i in got if i]
        as_json = await conn.fetchval("select payload::json -> 'alerts' -> 0 -> 'annotations' ->> 'description'"
                                      " from alert_notifications where notification_id = $1",
                                      got[0].notification_id if got[0] else None)
    assert stored == [plain, json.dumps(nul)]
    assert as_json == "ünïcödé"  # and readable as JSON


async def test_quiet_waits_for_a_pause_in_arrivals_but_not_forever(pool: Pool) -> None:
    """What the worker awaits before it claims a job: storing a storm comes first."""
    store = alert_store(pool)
    loop = asyncio.get_running_loop()
    t = loop.time()
    await store.writer.quiet(idle_s=0.1, at_most_s=5)
    assert loop.time() - t < 0.1  # nothing arriving: at once

    last = [0.0]
    first = asyncio.Event()

    async def arrivals(n: int) -> None:
        for _ in range(n):
            last[0] = loop.time()  # no later than the writer's own record of the submission
            await take_in(store, payload("q"))
            first.set()
            await asyncio.sleep(0.02)  # the sender's pace: what this test is about

    flow = asyncio.create_task(arrivals(10))
    await first.wait()
    await store.writer.quiet(idle_s=0.1, at_most_s=30)
    # only after the arrivals paused: not before the last submission was idle_s old
    assert flow.done() and loop.time() >= last[0] + 0.1 - 1e-6

    first.clear()
    flow = asyncio.create_task(arrivals(1000))
    await first.wait()
    t = loop.time()
    await store.writer.quiet(idle_s=0.1, at_most_s=0.3)
    assert loop.time() - t >= 0.3 - 0.005 and not flow.done()  # a flood does not hold triage back for ever
    flow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flow


async def test_a_store_that_goes_away_fails_the_intake_and_does_not_hang(
    store_url: str, pg_admin: asyncpg.Connection[asyncpg.Record],
) -> None:
    """The webhook answers 503 on StoreError (the sender retries): the intake must raise
    it, promptly, when its database is gone, and not keep callers waiting."""
    p = await connect_pool(store_url, min_size=1, max_size=1)
    try:
        store = alert_store(p)
        assert await take_in(store, payload("before")) is not None
        name = urlsplit(store_url).path.lstrip("/")
        await pg_admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # its connections are terminated
        async with asyncio.timeout(30):
            got = await asyncio.gather(*(take_in(store, payload(f"after{i}")) for i in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(g, StoreError) for g in got), got
        async with asyncio.timeout(30):
            with pytest.raises(StoreError):  # and later ones too, each on its own
                await take_in(store, payload("later"))
    finally:
        p.terminate()


async def test_warm_up_stores_nothing_and_the_warmed_connection_takes_notifications(store_url: str) -> None:
    p = await connect_pool(store_url, min_size=1, max_size=1, max_inactive_s=0, warm=warm_up)  # warms at start
    try:
        tables = ("alert_groups", "alert_notifications", "alert_storms", "jobs")
        async with p.acquire() as conn:
            assert [await conn.fetchval(f"select count(*) from {t}") for t in tables] == [0, 0, 0, 0]
            await warm_up(conn)  # and again: still nothing
            assert [await conn.fetchval(f"select count(*) from {t}") for t in tables] == [0, 0, 0, 0]
        store = alert_store(p)
        got = await take_in(store, payload("after warm-up"))
        assert got is not None and got.action == "open" and got.job_id is not None
    finally:
        await p.close()


async def test_a_warm_up_that_fails_is_logged_and_the_connection_still_works(
    fresh_database: str, caplog: pytest.LogCaptureFixture,
) -> None:
    conn = await asyncpg.connect(fresh_database)  # no schema: recon_alert_intake does not exist
    try:
        with caplog.at_level(logging.WARNING, logger="bot.store.intake"):
            await warm_up(conn)
        assert "could not warm up the alert intake" in caplog.text and "UndefinedFunctionError" in caplog.text
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()


def long_key(n: int, tail: str = "", seed: int = 1) -> str:
    """An Alertmanager groupKey with ``n`` labels of random values (which PostgreSQL cannot
    compress to fit an index): several thousand characters for n ~ 100."""
    rnd = random.Random(seed)
    labels = ", ".join(f'label_{i}="{"".join(rnd.choices(string.ascii_letters + string.digits, k=40))}"'
                       for i in range(n))
    return f'{{}}/{{severity="page"}}:{{{labels}{tail}}}'


async def test_a_group_key_of_thousands_of_characters_is_stored_bounded_and_found_again(pool: Pool) -> None:
    store = alert_store(pool)
    key, other = long_key(100), long_key(100, ', extra="1"')  # the same first 200 characters
    assert len(key.encode()) > 5000 and key[:200] == other[:200]
    first = payload("long")
    first["groupKey"] = key
    text = json.dumps(first)
    got = [await take_in(store, first, text=text), await take_in(store, first)]
    second = payload("long")
    second["groupKey"] = other
    third = await take_in(store, second)
    assert [g.action for g in got if g] == ["open", "repeat"]  # looked up by the same bounded key
    assert third is not None and third.action == "open" and got[0] is not None
    assert third.group.group_id != got[0].group.group_id
    stored = got[0].group.group_key
    assert stored == bounded_group_key(key) and len(stored.encode()) <= MAX_GROUP_KEY_BYTES
    assert stored.startswith(key[:200]) and stored.endswith(hashlib.sha256(key.encode()).hexdigest())
    async with pool.acquire() as conn:  # the payload keeps the key as received
        kept = await conn.fetchval("select payload::json ->> 'groupKey' from alert_notifications "
                                   "where notification_id = $1", got[0].notification_id)
    assert kept == key


async def test_a_value_the_store_cannot_index_fails_as_bad_input_not_unavailable(pool: Pool) -> None:
    """SQLSTATE 54000 (a key over the index's limit) is refused for good, not retried:
    the webhook answers 400, which Alertmanager does not send again."""
    store = alert_store(pool)
    n = parse_alertmanager(payload("huge")).digest()
    item = intake_item(n, channel="C0ALERTS", route="default", subject={})
    item["group_key"] = long_key(150)  # past bounded_group_key: what the store makes of it
    with pytest.raises(BadInput, match="cannot keep this payload"):
        await store.writer.submit(item, json.dumps(payload("huge")))


async def test_migration_011_bounds_the_keys_stored_before_as_the_intake_does(pool: Pool) -> None:
    keys = [long_key(22), long_key(30, ', name="ünïcödé 🚀"'), "short"]  # over 1024 bytes, but indexable
    async with pool.acquire() as conn:
        for k in keys:
            await conn.execute("insert into alert_groups (source, group_key, status, alertname, severity, labels, "
                               "annotations, subject, route) values ('alertmanager', $1, 'firing', 'x', 'page', "
                               "'{}', '{}', '{}', 'default')", k)
        sql = (resources.files("bot.store") / "migrations" / "011_alert_group_key_bounded.sql").read_text()
        await conn.execute(sql)
        stored = [r["group_key"] for r in await conn.fetch("select group_key from alert_groups order by group_id")]
    assert stored == [bounded_group_key(k) for k in keys]
    assert stored[0] != keys[0] and stored[2] == "short"
