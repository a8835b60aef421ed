"""The bot's own metrics, in Prometheus format at ``GET /metrics``.

One ``Metrics`` object per process (its own registry; nothing global), handed to the
parts that count: diagnoses (count and duration by outcome), source calls and failures
by source, jobs (queued/running/done/failed in the store, read at scrape time from the
counts the store keeps in ``job_counts`` — never a count over jobs; retried and failed
attempts here), Slack calls and 429s by method, alerts received and
deduplicated, approvals by outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.flows.steps_report import StepReport
from bot.sources.protocols import SourceCall

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.diagnoses = Counter("recon_diagnoses", "Diagnoses run, by outcome", ["outcome"], registry=r)
        self.diagnosis_seconds = Histogram(
            "recon_diagnosis_duration_seconds", "Time a diagnosis took, by outcome", ["outcome"], registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.source_calls = Counter("recon_source_calls", "Calls to evidence sources", ["source"], registry=r)
        self.source_failures = Counter("recon_source_failures", "Failed calls to evidence sources",
                                       ["source", "status"], registry=r)
        self.jobs = Gauge("recon_jobs", "Jobs in the store, by status (all processes)", ["status"], registry=r)
        self.jobs_started = Counter("recon_job_attempts", "Job attempts started here, by kind", ["kind"], registry=r)
        self.jobs_retried = Counter("recon_jobs_retried", "Job attempts that were retries, by kind", ["kind"],
                                    registry=r)
        self.jobs_failed = Counter("recon_job_failures", "Job attempts that failed here, by kind", ["kind"],
                                   registry=r)
        self.jobs_done = Counter("recon_jobs_completed", "Jobs completed here, by kind", ["kind"], registry=r)
        self.slack_calls = Counter("recon_slack_calls", "Slack Web API calls, by method", ["method"], registry=r)
        self.slack_429 = Counter("recon_slack_ratelimited", "Slack 429 answers, by method", ["method"], registry=r)
        self.alerts = Counter("recon_alerts_received", "Alerts received, by source", ["source"], registry=r)
        self.alert_notifications = Counter("recon_alert_notifications", "Alert notifications, by what they meant",
                                           ["source", "action"], registry=r)
        self.alerts_deduplicated = Counter("recon_alerts_deduplicated",
                                           "Notifications that repeated what a group already showed", ["source"],
                                           registry=r)
        self.approvals = Counter("recon_approval_events", "Votes and decisions on freeze prompts, by outcome",
                                 ["kind", "outcome"], registry=r)
        self.http_requests = Counter("recon_http_requests", "HTTP requests answered, by route and status",
                                     ["route", "status"], registry=r)

    def set_job_counts(self, counts: Mapping[str, int]) -> None:
        for status in ("queued", "running", "done", "failed"):
            self.jobs.labels(status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsObserver:
    """A diagnosis Observer that counts source calls and failures."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    async def step_started(self, name: str, title: str) -> None:
        return None

    async def step_finished(self, report: StepReport) -> None:
        return None

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        self.m.source_calls.labels(call.source).inc()
        if error is not None:
            self.m.source_failures.labels(call.source, error.split(":", 1)[0]).inc()
