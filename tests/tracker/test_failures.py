"""Tracker failures: classified retryable (with the delay asked for) or permanent, retried
with backoff where it can succeed, reported once otherwise; tokens never in messages."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import SecretStr

from bot.errors import BadInput, SourceFailure, TrackerRejected, TrackerRetryable
from bot.tracker.github import GitHubTracker
from bot.tracker.jira import JiraTracker
from bot.tracker.job import RetryPolicy, run_ticket_job, with_retries
from bot.tracker.model import IncidentFacts, TicketSpec
from bot.tracker.settings import TrackerConfig
from bot.tracker.store import TicketStore
from tests.standins import dead_url
from tests.standins.github import GitHubStandIn
from tests.standins.jira import JiraStandIn
from tests.tracker.conftest import facts, follow_up, github_config, jira_config

SPEC = TicketSpec.of(facts("INC-20260101-abcdef"), follow_up())


async def _create_error(gh: GitHubStandIn, config: TrackerConfig | None = None) -> BaseException:
    tracker = GitHubTracker(config or github_config(gh))
    try:
        await tracker.create(SPEC)
    except SourceFailure as exc:
        return exc
    finally:
        await tracker.aclose()
    raise AssertionError("no failure")


@pytest.mark.parametrize(("status", "body", "headers", "kind", "delay"), [
    (500, "boom", {}, TrackerRetryable, None),
    (502, "bad gateway", {}, TrackerRetryable, None),
    (429, {"message": "slow down"}, {"Retry-After": "7"}, TrackerRetryable, 7.0),
    (403, {"message": "You have exceeded a secondary rate limit"}, {"Retry-After": "42"}, TrackerRetryable, 42.0),
    (403, {"message": "You have exceeded a secondary rate limit"}, {}, TrackerRetryable, 60.0),
    (401, {"message": "Bad credentials"}, {}, TrackerRejected, None),
    (403, {"message": "Resource not accessible by personal access token"}, {}, TrackerRejected, None),
    (404, {"message": "Not Found"}, {}, TrackerRejected, None),
    (422, {"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]}, {},
     TrackerRejected, None),
])
async def test_github_answers_are_classified(github_standin: GitHubStandIn, status: int, body: Any,
                                             headers: Mapping[str, str], kind: type, delay: float | None) -> None:
    github_standin.script(status, body, headers=headers)
    exc = await _create_error(github_standin)
    assert type(exc) is kind and f" {status} " in str(exc)
    if isinstance(exc, TrackerRetryable):
        assert exc.retry_after_s == delay
    else:
        assert isinstance(exc, TrackerRejected) and exc.http_status == status


async def test_primary_rate_limit_waits_until_the_reset(github_standin: GitHubStandIn) -> None:
    reset = int(time.time()) + 90
    github_standin.script(403, {"message": "API rate limit exceeded"},
                          headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    exc = await _create_error(github_standin)
    assert isinstance(exc, TrackerRetryable) and exc.retry_after_s is not None
    assert 80 <= exc.retry_after_s <= 91


async def test_down_and_slow_are_retryable(github_standin: GitHubStandIn) -> None:
    down = await _create_error(github_standin, TrackerConfig(
        kind="github", base_url=dead_url(), token=SecretStr("t"), default_target="acme/billing", timeout_s=2.0))
    assert isinstance(down, TrackerRetryable)
    github_standin.delay_s = 5.0
    slow = await _create_error(github_standin, TrackerConfig(
        kind="github", base_url=github_standin.url, token=SecretStr(github_standin.token),
        default_target="acme/billing", timeout_s=0.2))
    assert isinstance(slow, TrackerRetryable) and "no answer within 0.2 s" in str(slow)


async def test_jira_429_and_401(jira_standin: JiraStandIn) -> None:
    jira = JiraTracker(jira_config(jira_standin))
    jira_standin.script(429, {"errorMessages": ["Rate limit exceeded"]}, headers={"Retry-After": "3"})
    with pytest.raises(TrackerRetryable) as limited:
        await jira.create(SPEC)
    jira_standin.token = "rotated"
    with pytest.raises(TrackerRejected) as refused:
        await jira.create(SPEC)
    await jira.aclose()
    assert limited.value.retry_after_s == 3.0 and "Rate limit exceeded" in str(limited.value)
    assert refused.value.http_status == 401 and "not authenticated" in str(refused.value)


async def test_tokens_never_reach_messages_or_logs(github_standin: GitHubStandIn, jira_standin: JiraStandIn,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gh_token = "ghp_SECRET_" + "x" * 20
    gh_config = TrackerConfig(kind="github", base_url=github_standin.url, token=SecretStr(gh_token),
                              default_target="acme/billing", timeout_s=2.0)
    github_standin.script(500, {"message": f"proxy says: Authorization: Bearer {gh_token}"})
    errors = [await _create_error(github_standin, gh_config), await _create_error(github_standin, gh_config)]
    jira_standin.script(400, {"errorMessages": [f"bad token {jira_standin.token}"]})
    jira = JiraTracker(jira_config(jira_standin))
    with pytest.raises(TrackerRejected) as j:
        await jira.create(SPEC)
    await jira.aclose()
    errors.append(j.value)
    text = " ".join(str(e) for e in errors) + caplog.text
    assert gh_token not in text and jira_standin.token not in text and "***" in text
    assert isinstance(errors[1], TrackerRejected) and errors[1].http_status == 401


# ------------------------------------------------------------ retries


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, s: float) -> None:
        self.waits.append(s)


async def test_retries_use_the_delay_asked_for_then_succeed() -> None:
    sleeps = Sleeps()
    answers: list[BaseException | str] = [TrackerRetryable("github", "429", retry_after_s=2.0),
                                          TrackerRetryable("github", "500"), "ok"]

    async def call() -> str:
        a = answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a

    assert await with_retries(call, RetryPolicy(attempts=4, base_s=1.0, sleep=sleeps)) == "ok"
    assert sleeps.waits[0] == 2.0 and 2.0 <= sleeps.waits[1] <= 2.5  # second try: base × 2, jittered


async def test_retries_give_up_on_long_waits_and_used_up_tries() -> None:
    sleeps = Sleeps()

    async def limited() -> None:
        raise TrackerRetryable("github", "rate-limited", retry_after_s=3600.0)

    with pytest.raises(TrackerRetryable) as exc:
        await with_retries(limited, RetryPolicy(sleep=sleeps))
    assert exc.value.retry_after_s == 3600.0 and sleeps.waits == []

    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TrackerRetryable("github", "down")

    with pytest.raises(TrackerRetryable):
        await with_retries(down, RetryPolicy(attempts=3, sleep=sleeps))
    assert calls == 3 and len(sleeps.waits) == 2


async def test_rejected_is_not_retried() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise TrackerRejected("github", "401 Bad credentials", http_status=401)

    with pytest.raises(TrackerRejected):
        await with_retries(refused, RetryPolicy(sleep=Sleeps()))
    assert calls == 1


# ------------------------------------------------------------ the job


class Deps:
    def __init__(self, tickets: TicketStore, tracker: Any, incident_facts: IncidentFacts) -> None:
        self.tickets = tickets
        self.tracker = tracker
        self._facts = incident_facts
        self.posts: dict[str, str] = {}
        self.timeline: list[tuple[str, str]] = []

    async def incident_facts(self, incident_id: str, run_id: int | None) -> IncidentFacts:
        return self._facts

    async def post_to_thread(self, incident_id: str, key: str, text: str) -> None:
        self.posts.setdefault(key, text)  # keyed: a second post with the key is not made

    async def add_timeline(self, incident_id: str, type: str, description: str, details: Mapping[str, Any]) -> None:
        self.timeline.append((type, description))


async def test_the_job_files_links_and_reports_a_permanent_failure_once(
        github_standin: GitHubStandIn, tickets: TicketStore, incident_id: str) -> None:
    gh = GitHubTracker(github_config(github_standin, layer_targets={"ui_export": "acme/gone"}))
    deps = Deps(tickets, gh, facts(incident_id, follow_up("metering_emitter"), follow_up("ui_export")))
    payload = {"incident_id": incident_id, "run_id": 1, "event": "diagnosis"}
    first = await run_ticket_job(payload, deps, RetryPolicy(sleep=Sleeps()))
    second = await run_ticket_job(payload, deps, RetryPolicy(sleep=Sleeps()))
    await gh.aclose()
    assert [lo.action for lo in first.layers] == ["created", "failed"]
    assert [lo.action for lo in second.layers] == ["unchanged", "failed"]
    assert github_standin.creates() == 1  # the unknown repository is refused at the lookup, once per run
    assert set(deps.posts) == {"ticket:metering_emitter", "ticket-failed:ui_export"}
    assert "<http" in deps.posts["ticket:metering_emitter"] and "|#1>" in deps.posts["ticket:metering_emitter"]
    assert "404 Not Found" in deps.posts["ticket-failed:ui_export"]
    assert [t for t, _ in deps.timeline] == ["ticket_created", "ticket_failed", "ticket_failed"]
    assert first.as_result()["layers"][0]["key"] == "#1"


async def test_the_job_hands_a_long_rate_limit_back_to_the_worker(
        github_standin: GitHubStandIn, tickets: TicketStore, incident_id: str) -> None:
    github_standin.script(429, {"message": "slow down"}, headers={"Retry-After": "600"}, times=10)
    gh = GitHubTracker(github_config(github_standin))
    deps = Deps(tickets, gh, facts(incident_id))
    with pytest.raises(TrackerRetryable) as exc:
        await run_ticket_job({"incident_id": incident_id}, deps, RetryPolicy(sleep=Sleeps()))
    await gh.aclose()
    assert exc.value.retry_after_s == 600.0 and deps.posts == {}


async def test_a_bad_payload_is_bad_input(tickets: TicketStore) -> None:
    with pytest.raises(BadInput):
        await run_ticket_job({"incident_id": "'; DROP TABLE"}, Deps(tickets, None, facts("INC-20260101-abcdef")))
