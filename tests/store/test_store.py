"""Every Store query, run against a real PostgreSQL (a database cloned per test)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bot.diagnosis.model import Diagnosis, Subject, Window, WindowOut
from bot.errors import StoreError
from bot.sources.protocols import SourceCall
from bot.store.db import canonical_json, digest_rows
from bot.store.store import Store, new_incident_id

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # this file's own clock: its runs are made by hand
WINDOW = Window(T0 - timedelta(days=7), T0)


async def _incident(store: Store, cid: str = "corr-1") -> str:
    inc = await store.create_incident(title=f"drift {cid}", origin="cli", correlation_id=cid)
    return inc.incident_id


def test_incident_id_shape() -> None:
    iid = new_incident_id(datetime(2025, 1, 2, 23, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert re.fullmatch(r"INC-20250103-[a-z0-9]{6}", iid)  # the UTC date


async def test_create_and_get_incident(store: Store) -> None:
    inc, created = await store.get_or_create_incident(
        title="charges drift for corr-1",
        origin="slack",
        correlation_id="corr-1",
        app_instance_id="ai-9",
        org_id="org-1",
        project_id="prj-1",
    )
    assert created
    assert re.fullmatch(r"INC-\d{8}-[a-z0-9]{6}", inc.incident_id)
    assert inc.subject_kind == "correlation_id"
    assert (inc.correlation_id, inc.app_instance_id) == ("corr-1", "ai-9")
    assert (inc.org_id, inc.project_id, inc.origin, inc.status) == ("org-1", "prj-1", "slack", "open")
    assert inc.slack_channel is None and inc.slack_thread_ts is None
    assert inc.created_at.tzinfo is not None
    assert await store.get_incident(inc.incident_id) == inc
    assert await store.get_incident("INC-20000101-nosuch") is None


async def test_create_reuses_the_open_incident_of_the_same_subject(store: Store) -> None:
    first = await store.create_incident(title="a", origin="cli", correlation_id="corr-2")
    again, created = await store.get_or_create_incident(
        title="b", origin="alert", correlation_id="corr-2"
    )
    assert not created
    assert again.incident_id == first.incident_id and again.title == "a"
    # an app-instance subject is a different subject, even with the same text
    other = await store.create_incident(title="c", origin="alert", app_instance_id="corr-2")
    assert other.incident_id != first.incident_id
    assert other.subject_kind == "app_instance_id"


async def test_concurrent_creates_share_one_incident(store: Store) -> None:
    results = await asyncio.gather(
        *(
            store.get_or_create_incident(title="x", origin="alert", app_instance_id="ai-77")
            for _ in range(6)
        )
    )
    assert len({inc.incident_id for inc, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_find_open_incident_and_status(store: Store) -> None:
    assert await store.find_open_incident(correlation_id="corr-3") is None
    inc = await store.create_incident(title="t", origin="demo", correlation_id="corr-3")
    found = await store.find_open_incident(correlation_id="corr-3", app_instance_id="ignored")
    assert found is not None and found.incident_id == inc.incident_id

    closed = await store.set_incident_status(inc.incident_id, "closed")
    assert closed.status == "closed" and closed.updated_at >= inc.updated_at
    assert await store.find_open_incident(correlation_id="corr-3") is None
    # closed: the next create opens a new incident
    new = await store.create_incident(title="t2", origin="cli", correlation_id="corr-3")
    assert new.incident_id != inc.incident_id

    with pytest.raises(StoreError, match="no incident"):
        await store.set_incident_status("INC-20000101-nosuch", "recovered")
    with pytest.raises(ValueError, match="status"):
        await store.set_incident_status(inc.incident_id, "gone")  # type: ignore[arg-type]


async def test_incident_needs_a_subject(store: Store) -> None:
    with pytest.raises(ValueError, match="needs a correlation_id, an app_instance_id"):
        await store.create_incident(title="t", origin="cli")
    with pytest.raises(ValueError, match="origin"):
        await store.create_incident(title="t", origin="email", correlation_id="c")  # type: ignore[arg-type]


async def test_run_lifecycle(store: Store) -> None:
    iid = await _incident(store)
    subject = Subject(correlation_id="corr-1")
    run_id = await store.start_run(iid, subject, WINDOW)
    run = await store.get_run(run_id)
    assert run is not None
    assert run.status == "running" and run.finished_at is None and run.result is None
    assert run.subject == subject.model_dump(mode="json")
    assert run.subject["correlation_id"] == "corr-1"
    assert (run.window_start, run.window_end) == (WINDOW.start, WINDOW.end)

    diagnosis = Diagnosis(
        subject=subject,
        window=WindowOut(start=WINDOW.start, end=WINDOW.end),
        scope="project",
        freeze_recommended=True,
        complete=False,
    )
    done = await store.finish_run(
        run_id,
        diagnosis,
        status="done",
        complete=False,
        scope="project",
        freeze_recommended=True,
    )
    assert done.status == "done" and done.complete is False
    assert done.scope == "project" and done.freeze_recommended is True
    assert done.finished_at is not None and done.duration_ms is not None and done.duration_ms >= 0
    assert done.result is not None
    assert Diagnosis.model_validate(done.result) == diagnosis

    with pytest.raises(StoreError, match="already finished"):
        await store.finish_run(run_id, {}, status="failed")
    with pytest.raises(StoreError, match="no diagnosis run"):
        await store.finish_run(999_999, {}, status="failed")
    assert await store.get_run(999_999) is None


async def test_failed_run_and_list_runs(store: Store) -> None:
    iid = await _incident(store)
    r1 = await store.start_run(iid, {"correlation_id": "corr-1"}, WINDOW)
    r2 = await store.start_run(iid, {"correlation_id": "corr-1"}, WINDOW)
    await store.finish_run(r1, None, status="failed", error="loki: timed out")
    await store.finish_run(r2, {"schema_version": 1, "n": Decimal("1.50")}, complete=True)
    runs = await store.list_runs(iid)
    assert [r.run_id for r in runs] == [r1, r2]
    assert runs[0].status == "failed" and runs[0].error == "loki: timed out"
    assert runs[0].result is None and runs[0].complete is None
    assert runs[1].result == {"schema_version": 1, "n": "1.50"}
    assert await store.list_runs("INC-20000101-nosuch") == []


async def test_start_run_for_unknown_incident_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="run_start"):
        await store.start_run("INC-20000101-nosuch", {}, WINDOW)


async def test_timeline(store: Store) -> None:
    iid = await _incident(store)
    run_id = await store.start_run(iid, {"correlation_id": "corr-1"}, WINDOW)
    later = await store.add_timeline_event(
        iid,
        run_id,
        type="finding",
        source="recon",
        description="ledger mismatch",
        details={"amount": Decimal("12.30"), "at": T0},
        actor="recon",
        correlation_id="corr-1",
        trace_id="ab" * 16,
        started_at=T0,
    )
    earlier = await store.add_timeline_event(
        iid, None, "alert", "alertmanager", "alert fired", None, "alertmanager",
        started_at=T0 - timedelta(minutes=5),
    )
    now_ev = await store.add_timeline_event(iid, None, "note", "slack", "looking", {}, "U123")
    events = await store.timeline(iid)
    assert [e.event_id for e in events] == [earlier, later, now_ev]  # by started_at
    ev = events[1]
    assert (ev.type, ev.source, ev.description, ev.actor) == (
        "finding", "recon", "ledger mismatch", "recon"
    )
    assert ev.run_id == run_id and ev.correlation_id == "corr-1" and ev.trace_id == "ab" * 16
    assert ev.details == {"amount": "12.30", "at": "2025-03-01T12:00:00+00:00"}
    assert events[0].details == {} and events[0].run_id is None
    assert events[2].started_at > T0  # defaulted to now
    assert await store.timeline("INC-20000101-nosuch") == []


@dataclass(frozen=True)
class _Usage:
    usage_record_id: str
    quantity: Decimal
    period_start: datetime


async def test_evidence_rows_are_capped_and_digested_over_all(store: Store) -> None:
    iid = await _incident(store)
    run_id = await store.start_run(iid, {"correlation_id": "corr-1"}, WINDOW)
    rows = [
        {"usage_record_id": f"u{i}", "quantity": Decimal("1.5") * i,
         "period_start": T0 + timedelta(hours=i), "ok": True}
        for i in range(5)
    ]
    call = SourceCall(
        source="billing",
        kind="sql",
        request="usage_by_correlation",
        params={"correlation_id": "corr-1", "since": WINDOW.start},
        window=WINDOW,
        started_at=T0,
        duration_ms=12.5,
        via="postgres",
    )
    eid = await store.add_evidence(iid, run_id, "usage", "before", call, rows, row_cap=2, error=None)
    [ev] = await store.evidence(iid)
    assert ev.evidence_id == eid and ev.run_id == run_id
    assert (ev.step, ev.phase, ev.source, ev.kind, ev.via, ev.request) == (
        "usage", "before", "billing", "sql", "postgres", "usage_by_correlation"
    )
    assert ev.params == {"correlation_id": "corr-1", "since": "2025-02-22T12:00:00+00:00"}
    assert (ev.window_start, ev.window_end, ev.asked_at) == (WINDOW.start, WINDOW.end, T0)
    assert ev.duration_ms == 12.5
    assert ev.row_count == 5 and ev.truncated is True and len(ev.rows) == 2
    assert ev.rows[1] == {
        "ok": True, "period_start": "2025-03-01T13:00:00+00:00",
        "quantity": "1.5", "usage_record_id": "u1",
    }
    # the digest covers all five rows, canonically
    expected = hashlib.sha256(canonical_json(rows).encode()).hexdigest()
    assert ev.rows_digest == expected
    assert ev.rows_digest != digest_rows(rows[:2])
    assert ev.error is None


def test_evidence_canonical_digest_ignores_key_order_and_timezone() -> None:
    a = [{"b": 1, "a": datetime(2025, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))}]
    b = [{"a": datetime(2025, 1, 1, 12, tzinfo=UTC), "b": 1}]
    assert digest_rows(a) == digest_rows(b)
    assert json.loads(canonical_json(a)) == [{"a": "2025-01-01T12:00:00+00:00", "b": 1}]


async def test_evidence_error_dataclass_rows_and_run_filter(store: Store) -> None:
    iid = await _incident(store)
    r1 = await store.start_run(iid, {"correlation_id": "corr-1"}, WINDOW)
    r2 = await store.start_run(iid, {"correlation_id": "corr-1"}, WINDOW)
    failed = SourceCall(source="loki", kind="logql", request='{service="billing"}')
    e1 = await store.add_evidence(
        iid, r1, "logs", "before", failed, [], row_cap=10, error="loki unavailable"
    )
    usage = [_Usage("u1", Decimal("2.000"), T0)]
    e2 = await store.add_evidence(
        iid, r2, "usage", "after", SourceCall("billing", "sql", "usage_by_ids"), usage, 10, None
    )
    all_ev = await store.evidence(iid)
    assert [e.evidence_id for e in all_ev] == [e1, e2]
    first = all_ev[0]
    assert first.error == "loki unavailable" and first.row_count == 0 and first.rows == []
    assert first.truncated is False and first.window_start is None and first.params == {}
    assert first.rows_digest == hashlib.sha256(b"[]").hexdigest()
    assert first.asked_at is not None  # defaulted to now
    second = all_ev[1]
    assert second.phase == "after" and second.truncated is False
    assert second.rows == [
        {"period_start": "2025-03-01T12:00:00+00:00", "quantity": "2.000", "usage_record_id": "u1"}
    ]
    only_r2 = await store.evidence(iid, run_id=r2)
    assert [e.evidence_id for e in only_r2] == [e2]
    assert await store.evidence("INC-20000101-nosuch") == []

    with pytest.raises(ValueError, match="phase"):
        await store.add_evidence(iid, r1, "x", "during", failed, [], 1)  # type: ignore[arg-type]


async def test_evidence_many_rows_digested_off_loop(store: Store) -> None:
    iid = await _incident(store)
    rows = [{"i": i, "ts": T0} for i in range(5000)]
    call = SourceCall(source="loki", kind="logql", request="{}")
    await store.add_evidence(iid, None, "logs", "before", call, rows, row_cap=200)
    [ev] = await store.evidence(iid)
    assert ev.row_count == 5000 and len(ev.rows) == 200 and ev.truncated
    assert ev.rows_digest == digest_rows(rows)
    assert ev.run_id is None


async def test_close(store_url: str) -> None:
    from bot.store.db import connect_pool

    s = Store(await connect_pool(store_url))
    await s.close()
    assert s.pool.is_closing()


async def test_incidents_of_alert_groups_and_scopes_are_their_own(store: Store) -> None:
    by_cid = await store.create_incident(title="t", origin="slack", correlation_id="c-1")
    alert = await store.create_incident(title="a", origin="alert", correlation_id="c-1", alert_group="am:{}:{x=1}")
    scope = await store.create_incident(title="s", origin="alert", org_id="org-1", project_id="prj-1")
    assert len({by_cid.incident_id, alert.incident_id, scope.incident_id}) == 3
    again = await store.create_incident(title="a", origin="alert", alert_group="am:{}:{x=1}")
    assert again.incident_id == alert.incident_id
    found = await store.find_open_incident(org_id="org-1", project_id="prj-1")
    assert found is not None and found.incident_id == scope.incident_id
