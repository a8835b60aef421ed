"""The ticket job wired in: queued by ``recon diagnose``/``recon verify`` (the CLI, with a
store), run by ``TicketServices.run_job``; the worker's wait after a failure that asks
for one; ``recon serve`` refusing a bad tracker setting; hostile tracker answers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli import build_parser
from bot.commands import verify as verify_command
from bot.commands.diagnose import run_diagnose
from bot.diagnosis.model import Diagnosis, Subject, WindowOut
from bot.errors import ConfigError, TrackerRetryable
from bot.flows.followup_tickets import KIND, TicketServices, dedup_key, enqueue_after_diagnosis
from bot.report.data import FollowUpTicket
from bot.server.services import running_services
from bot.settings import Settings
from bot.store.jobs import Job, JobQueue
from bot.store.store import Store
from bot.tracker.build import build_tracker
from bot.tracker.github import GitHubTracker
from bot.tracker.job import RetryPolicy
from bot.tracker.model import safe_key, safe_url
from bot.worker import Worker, retry_in_s
from tests.conftest import LoadedPlatform, faithful_export
from tests.constants import NOW
from tests.standins import dead_url
from tests.standins.github import GitHubStandIn
from tests.tracker.conftest import follow_up, github_config
from tests.tracker.test_failures import SPEC


async def _no_wait(_: float) -> None:
    return None


async def run_ticket_jobs(store: Store, services: TicketServices) -> list[Mapping[str, Any]]:
    """Claim and run every queued ticket job, as the worker would."""
    queue, out = JobQueue(store.pool), []
    while (job := await queue.claim("test", 30, [KIND])) is not None:
        result = await services.run_job(job)
        await queue.finish(job.job_id, "test", result)
        out.append(result)
    return out


def _settings(env: Mapping[str, str], gh: GitHubStandIn) -> Settings:
    return Settings(**env, RECON_TRACKER="github", GITHUB_API_URL=gh.url,  # type: ignore[arg-type]
                    GITHUB_TOKEN=gh.token, GITHUB_REPOSITORY="acme/billing")


async def test_cli_diagnose_files_and_verify_that_recovers_comments(
    demo_loaded: LoadedPlatform, store_url: str, store: Store, github_standin: GitHubStandIn, tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": store_url, "BILLING_DATABASE_URL": demo_loaded.billing_url,
           "RECON_EVIDENCE_DIR": str(demo_loaded.evidence), "RECON_DATA_DIR": str(tmp_path / "data")}
    settings = _settings(env, github_standin)
    aid = next(e.app_instance_id for e in demo_loaded.platform.expected if e.check == "duplicate_charge")
    until = ["--until", NOW.isoformat()]
    assert await run_diagnose(settings, build_parser().parse_args(["diagnose", "-", "--app-instance", aid,
                                                                   "--json", *until])) == 0
    incident_id = await store.pool.fetchval("select incident_id from incidents where app_instance_id = $1", aid)
    tracker = build_tracker(github_config(github_standin))
    services = TicketServices(settings=settings, store=store, queue=JobQueue(store.pool),
                              slack=AsyncWebClient(token="xoxb-unused", base_url=dead_url() + "/"), tracker=tracker,
                              policy=RetryPolicy(sleep=_no_wait))
    try:
        [filed] = await run_ticket_jobs(store, services)
        assert [lo["action"] for lo in filed["layers"]] == ["created"]
        [issue] = github_standin.issues_of("acme/billing")
        run = await store.pool.fetchrow("select result from diagnosis_runs where incident_id = $1", incident_id)
        corrections = Diagnosis.model_validate(run["result"]).corrections
        billing = await asyncpg.connect(demo_loaded.billing_url)
        try:  # the approved correction procedure posts what recon proposed
            for i, c in enumerate(corrections):
                await billing.execute(
                    "insert into billing.ledger_entries (ledger_entry_id, org_id, project_id, usage_record_id,"
                    " direction, kind, amount_minor, currency, reverses_entry_id, idempotency_key, correlation_id,"
                    " posted_at) values ($1, $2, $3, null, 'credit', 'reversal', $4, $5, $6, $7, $8, $9)",
                    f"le-fix-{i}", c.org_id, c.project_id, c.amount_minor, c.currency, c.reverses_entry_id,
                    f"fix-{i}", c.correlation_id, NOW - timedelta(minutes=5))
        finally:
            await billing.close()
        org = Diagnosis.model_validate(run["result"]).identifiers.org_ids[0]
        export = await faithful_export(demo_loaded, org, tmp_path / "usage.csv")  # criterion 1 needs one
        args = build_parser().parse_args(["verify", incident_id, "--json", "--export", str(export), *until])
        assert await verify_command.run(settings, args) == verify_command.EXIT_RECOVERED
        [recovered] = await run_ticket_jobs(store, services)
        assert await run_ticket_jobs(store, services) == []
    finally:
        await tracker.aclose()
    assert [lo["action"] for lo in recovered["layers"]] == ["commented"]
    assert len(issue.comments) == 1 and "recovered" in issue.comments[0]["body"]
    row = await store.pool.fetchrow("select state from tracker_tickets where incident_id = $1", incident_id)
    assert row["state"] == "recovered"
    events = [e.type for e in await store.timeline(incident_id) if e.source == "tracker"]
    assert events == ["ticket_created", "ticket_commented"]


async def test_enqueued_only_with_a_tracker_and_follow_ups_and_once_while_active(store: Store) -> None:
    inc = await store.create_incident(title="t", origin="cli", correlation_id="corr-1")
    queue = JobQueue(store.pool)
    d = Diagnosis(subject=Subject(correlation_id="corr-1"), window=WindowOut(start=NOW, end=NOW),
                  follow_ups=[follow_up()])
    off = Settings(DATABASE_URL="postgresql://x/y")  # type: ignore[call-arg]
    on = Settings(DATABASE_URL="postgresql://x/y", RECON_TRACKER="github")  # type: ignore[call-arg]
    assert await enqueue_after_diagnosis(queue, off, inc.incident_id, 1, d, "C1", "1.1") is None
    assert await enqueue_after_diagnosis(queue, on, inc.incident_id, 1, d.model_copy(update={"follow_ups": []}),
                                         "C1", "1.1") is None
    first = await enqueue_after_diagnosis(queue, on, inc.incident_id, 1, d, "C1", "1.1")
    again = await enqueue_after_diagnosis(queue, on, inc.incident_id, 1, d, "C1", "1.1")
    assert first is not None and again is not None and first.job_id == again.job_id
    assert first.dedup_key == dedup_key(inc.incident_id, 1, "diagnosis") and first.kind == KIND
    assert first.payload == {"incident_id": inc.incident_id, "run_id": 1, "event": "diagnosis", "channel": "C1",
                             "thread_ts": "1.1"}
    assert await store.pool.fetchval("select incident_id from jobs where job_id = $1", first.job_id) \
        == inc.incident_id


async def _fail_once(store: Store, exc: Exception) -> float:
    """Run one job that raises ``exc``; seconds until it is due again."""
    queue = JobQueue(store.pool)

    async def handler(job: Job) -> None:
        raise exc

    worker = Worker(queue, {"probe": handler}, listen_url=None)
    await queue.enqueue("probe", f"probe-{time.monotonic_ns()}", {})
    job = await queue.claim(worker.owner, 30, ["probe"])
    assert job is not None
    await worker._execute(job)
    wait = await store.pool.fetchval("select extract(epoch from run_after - now()) from jobs where job_id = $1",
                                     job.job_id)
    assert await store.pool.fetchval("select status from jobs where job_id = $1", job.job_id) == "queued"
    return float(wait)


async def test_the_worker_waits_the_delay_a_failure_asks_for(store: Store) -> None:
    assert 100 < await _fail_once(store, TrackerRetryable("github", "rate-limited", retry_after_s=120.0)) <= 120
    assert await _fail_once(store, RuntimeError("boom")) <= 1.0  # the backoff of a first attempt
    assert retry_in_s(1, TrackerRetryable("github", "x", retry_after_s=10 ** 9)) == 6 * 3600
    assert retry_in_s(3, TrackerRetryable("github", "x", retry_after_s=float("nan"))) == 4.0
    assert retry_in_s(2, TrackerRetryable("github", "x", retry_after_s=-5)) == 0.0


async def test_an_http_date_retry_after_is_a_delay(github_standin: GitHubStandIn) -> None:
    github_standin.script(429, {"message": "slow down"}, headers={"Retry-After": formatdate(time.time() + 120,
                                                                                            usegmt=True)})
    tracker = GitHubTracker(github_config(github_standin))
    try:
        with pytest.raises(TrackerRetryable) as exc:
            await tracker.create(SPEC)
    finally:
        await tracker.aclose()
    assert exc.value.retry_after_s is not None and 100 < exc.value.retry_after_s <= 120
    github_standin.script(429, {"message": "slow down"}, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    tracker = GitHubTracker(github_config(github_standin))
    try:
        with pytest.raises(TrackerRetryable) as past:
            await tracker.create(SPEC)
    finally:
        await tracker.aclose()
    assert past.value.retry_after_s == 0.0


async def test_serve_refuses_a_bad_tracker_setting_naming_it_not_its_value() -> None:
    settings = Settings(DATABASE_URL="postgresql://127.0.0.1:1/none", RECON_TRACKER="jira",  # type: ignore[call-arg]
                        JIRA_URL="https://jira.example.com", JIRA_API_TOKEN=SecretStr("sekrit-token-value"),
                        JIRA_PROJECT="OPS")
    with pytest.raises(ConfigError) as exc:
        async with running_services(settings):
            pass
    assert "JIRA_USER" in str(exc.value) and "sekrit" not in str(exc.value)


@pytest.mark.parametrize(("key", "url", "shown_key", "shown_url"), [
    ("#12", "https://github.com/acme/billing/issues/12", "#12", "https://github.com/acme/billing/issues/12"),
    ("OPS-7", "https://jira.example.com/browse/OPS-7", "OPS-7", "https://jira.example.com/browse/OPS-7"),
    ("<script>", "javascript:alert(1)", None, None),
    ("OPS-7|x", "https://evil.example.com/x|<!channel>", None, None),
    ("#1", "https://evil.example.com/a b", "#1", None),
    ("#1", 'https://evil.example.com/"onmouseover="x', "#1", None),
    ("ops-1", "ftp://files.example.com/x", None, None),
])
def test_hostile_tracker_answers_are_not_shown_as_links(key: str, url: str, shown_key: str | None,
                                                        shown_url: str | None) -> None:
    assert safe_key(key) == shown_key and safe_url(url) == shown_url
    t = FollowUpTicket.of({"owning_layer": "ui_export", "tracker": "github", "target": "acme/billing", "key": key,
                           "url": url, "state": "open", "created_at": NOW, "updated_at": NOW})
    assert (t.key, t.url) == (shown_key, shown_url)
