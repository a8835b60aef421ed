"""bot.alerts: webhook payloads (Alertmanager v4, Grafana), Slack alert posts, severity."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.alerts import (
    MAX_ALERTS,
    Alert,
    AlertNotification,
    NotificationDigest,
    PayloadError,
    parse_alert_post,
    parse_alertmanager,
    parse_grafana,
    severity_rank,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alerts"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def test_every_fixture_is_documented_and_covered() -> None:
    names = sorted(p.name for p in FIXTURES.glob("*.json"))
    readme = (FIXTURES / "README.md").read_text()
    assert names, "no fixtures"
    for n in names:
        assert f"`{n}`" in readme, f"{n} is not described in README.md"
    covered = {c[0] for c in AM_CASES} | {c[0] for c in GRAFANA_CASES} | {c[0] for c in SLACK_CASES} | set(NON_ALERTS)
    assert covered == set(names)


# ---------------------------------------------------------------- Alertmanager

# name, group_key, status, severity, labels_for_triage (subset), alert count, truncated
AM_CASES: list[tuple[str, str, str, str, dict[str, str], int, int]] = [
    (
        "am_firing_multi.json",
        '{}:{alertname="AppRuntimeMeteringDrift", org_id="acme"}',
        "firing",
        "page",
        {
            "alertname": "AppRuntimeMeteringDrift",
            "org_id": "acme",
            "project_id": "prj-7f3a",
            "app_instance_id": "ai-01HZX3K9Q2",
            "usage_source": "app_runtime",
            "severity": "warning",
        },
        3,
        0,
    ),
    (
        "am_resolved.json",
        '{}/{severity=~"critical|page"}:{alertname="UsageLedgerMismatch", org_id="globex"}',
        "resolved",
        "critical",
        {
            "alertname": "UsageLedgerMismatch",
            "org_id": "globex",
            "project_id": "prj-0091",
            "control_plane_component": "usage-aggregator",
        },
        1,
        0,
    ),
    (
        "am_truncated.json",
        '{}:{alertname="BillingWorkerErrors"}',
        "firing",
        "error",
        {
            "alertname": "BillingWorkerErrors",
            "control_plane_component": "billing-worker",
            "control_plane_scope": "regional",
            "operating_mode": "normal",
            "app_instance_id": "ai-01HZY0001A",
        },
        2,
        5,
    ),
    (
        "am_correlation_id.json",
        '{}:{alertname="AppRuntimeMeteringDrift", org_id="initech"}',
        "firing",
        "high",
        {"correlation_id": "req-5e0b1c9d-2a44-4f17-b6e3-91c0d8a7f215", "org_id": "initech"},
        1,
        0,
    ),
    (
        "am_app_instance_only.json",
        '{}:{alertname="AppRuntimeMeteringDrift"}',
        "firing",
        "warning",
        {"alertname": "AppRuntimeMeteringDrift", "app_instance_id": "ai-01HZZ9PQ4R", "runtime_backend": "k8s-gpu"},
        1,
        0,
    ),
    (
        "am_org_project_only.json",
        '{}:{alertname="UsageLedgerMismatch", org_id="umbrella"}',
        "firing",
        "critical",
        {"alertname": "UsageLedgerMismatch", "org_id": "umbrella", "project_id": "prj-9c04"},
        1,
        0,
    ),
]


@pytest.mark.parametrize(("name", "group_key", "status", "severity", "triage", "count", "truncated"), AM_CASES)
def test_alertmanager_fixture(
    name: str, group_key: str, status: str, severity: str, triage: dict[str, str], count: int, truncated: int
) -> None:
    n = parse_alertmanager(load(name))
    assert n.source == "alertmanager"
    assert n.group_key == group_key
    assert n.status == status
    assert n.severity() == severity
    got = n.labels_for_triage()
    assert {k: got.get(k) for k in triage} == triage
    assert len(n.alerts) == count
    assert n.truncated_alerts == truncated
    assert n.receiver == "recon-webhook"
    assert n.external_url == "http://alertmanager.monitoring.svc:9093"
    assert n.title is None


def test_alertmanager_only_ids_present_are_in_triage_labels() -> None:
    only_instance = parse_alertmanager(load("am_app_instance_only.json")).labels_for_triage()
    assert not {"org_id", "project_id", "correlation_id"} & only_instance.keys()
    only_org = parse_alertmanager(load("am_org_project_only.json")).labels_for_triage()
    assert not {"app_instance_id", "correlation_id"} & only_org.keys()


def test_alertmanager_times_fingerprints_and_urls() -> None:
    n = parse_alertmanager(load("am_firing_multi.json"))
    a = n.alerts[0]
    assert a.starts_at == datetime(2026, 3, 14, 9, 12, 30, 512000, tzinfo=UTC)
    assert a.ends_at is None  # the zero time of a firing alert
    assert a.fingerprint == "4f1d2c7a9b3e6d10"
    assert a.generator_url is not None and a.generator_url.startswith("http://prometheus.monitoring.svc:9090/graph")
    assert n.group_labels == {"alertname": "AppRuntimeMeteringDrift", "org_id": "acme"}
    assert n.common_annotations["runbook_url"] == "https://runbooks.example.com/billing/metering-drift"
    assert n.alerts[1].labels["correlation_id"] == "req-8c1e2f4a-77b0-4c3e-9a51-0d2b6f1e9c33"
    r = parse_alertmanager(load("am_resolved.json")).alerts[0]
    assert r.ends_at == datetime(2026, 3, 14, 8, 47, 15, 19000, tzinfo=UTC)
    # nanoseconds (Go's RFC3339Nano) and explicit offsets
    nanos = parse_alertmanager(load("am_correlation_id.json")).alerts[0].starts_at
    assert nanos == datetime(2026, 3, 14, 11, 20, 5, tzinfo=UTC)
    offset = parse_alertmanager(load("am_org_project_only.json")).alerts[0].starts_at
    assert offset == datetime(2026, 3, 14, 13, 30, tzinfo=UTC)


def test_alert_is_frozen() -> None:
    a = parse_alertmanager(load("am_correlation_id.json")).alerts[0]
    with pytest.raises(ValueError, match="frozen"):
        a.status = "resolved"  # type: ignore[misc]


def test_alertmanager_is_liberal_about_extra_and_optional_fields() -> None:
    doc = load("am_correlation_id.json")
    doc["somethingNew"] = {"x": [1, 2]}
    doc["alerts"][0]["extra"] = True
    for key in ("receiver", "externalURL", "groupLabels", "commonAnnotations", "truncatedAlerts", "routeLabels"):
        doc.pop(key, None)
    del doc["alerts"][0]["fingerprint"]
    del doc["alerts"][0]["annotations"]
    doc["alerts"][0]["generatorURL"] = ""
    doc["commonAnnotations"] = {"summary": "ok", "weird": 3}  # non-string annotation values are dropped
    n = parse_alertmanager(doc)
    assert n.receiver is None and n.external_url is None and n.group_labels == {} and n.truncated_alerts == 0
    assert n.common_annotations == {"summary": "ok"}
    a = n.alerts[0]
    assert a.annotations == {} and a.generator_url is None
    assert len(a.fingerprint) == 16  # computed from the labels, stable
    assert a.fingerprint == parse_alertmanager(copy.deepcopy(doc)).alerts[0].fingerprint


def _am_with(mutate: Any) -> dict[str, Any]:
    doc = load("am_firing_multi.json")
    mutate(doc)
    return doc


def _set(path: str, value: Any) -> Any:
    def mutate(doc: Any) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        target = doc
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return mutate


def _delete(path: str) -> Any:
    def mutate(doc: Any) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        target = doc
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]

    return mutate


MALFORMED_AM: list[tuple[str, Any, str]] = [
    ("not an object", lambda d: None, ""),  # replaced below
    ("version 3", _set("version", "3"), 'version must be "4"'),
    ("version number", _set("version", 4), 'version must be "4"'),
    ("no version", _delete("version"), 'version must be "4"'),
    ("no groupKey", _delete("groupKey"), "groupKey must be a non-empty string"),
    ("bad status", _set("status", "pending"), 'status must be "firing" or "resolved"'),
    ("alerts object", _set("alerts", {}), "alerts must be a list"),
    ("no alerts", _delete("alerts"), "alerts must be a list"),
    ("empty alerts", _set("alerts", []), "alerts must not be empty"),
    ("alert not object", _set("alerts.1", "x"), "alerts[1] must be an object"),
    ("alert status", _set("alerts.2.status", "FIRING"), 'alerts[2].status must be "firing" or "resolved"'),
    ("alert labels missing", _delete("alerts.0.labels"), "alerts[0].labels is missing"),
    ("alert labels list", _set("alerts.0.labels", ["a"]), "alerts[0].labels must be an object"),
    ("label value number", _set("alerts.2.labels.severity", 3), "alerts[2].labels.severity must be a string"),
    ("label value null", _set("alerts.0.labels.org_id", None), "alerts[0].labels.org_id must be a string"),
    ("common label", _set("commonLabels.org_id", ["acme"]), "commonLabels.org_id must be a string"),
    ("group labels", _set("groupLabels", "alertname"), "groupLabels must be an object"),
    ("annotations list", _set("alerts.0.annotations", []), "alerts[0].annotations must be an object"),
    ("startsAt", _set("alerts.0.startsAt", "yesterday"), "alerts[0].startsAt is not an RFC 3339 time"),
    ("endsAt number", _set("alerts.1.endsAt", 1773479551), "alerts[1].endsAt must be an RFC 3339 time string"),
    ("no zone", _set("alerts.0.startsAt", "2026-03-14T09:12:30"), "alerts[0].startsAt has no time zone"),
    ("fingerprint", _set("alerts.0.fingerprint", 7), "alerts[0].fingerprint must be a string"),
    ("truncated", _set("truncatedAlerts", -1), "truncatedAlerts must be a non-negative integer"),
    ("truncated bool", _set("truncatedAlerts", True), "truncatedAlerts must be a non-negative integer"),
    ("receiver", _set("receiver", 5), "receiver must be a string"),
    ("externalURL", _set("externalURL", {}), "externalURL must be a string"),
    ("generatorURL", _set("alerts.0.generatorURL", 1), "alerts[0].generatorURL must be a string"),
    (
        "too many",
        lambda d: d.__setitem__("alerts", d["alerts"][:1] * (MAX_ALERTS + 1)),
        f"alerts has {MAX_ALERTS + 1} entries; at most {MAX_ALERTS} are accepted",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "reason"), MALFORMED_AM[1:], ids=[c[0] for c in MALFORMED_AM[1:]])
def test_alertmanager_malformed_reason(case: str, mutate: Any, reason: str) -> None:
    with pytest.raises(PayloadError) as e:
        parse_alertmanager(_am_with(mutate))
    assert str(e.value).startswith(reason), str(e.value)


@pytest.mark.parametrize("doc", [None, [], "{}", 4])
def test_alertmanager_payload_must_be_object(doc: object) -> None:
    with pytest.raises(PayloadError, match=r"^payload must be an object$"):
        parse_alertmanager(doc)


def test_payload_error_is_value_error() -> None:
    assert issubclass(PayloadError, ValueError)


def test_exactly_max_alerts_is_accepted() -> None:
    doc = load("am_correlation_id.json")
    doc["alerts"] = doc["alerts"] * MAX_ALERTS
    assert len(parse_alertmanager(doc).alerts) == MAX_ALERTS


# ---------------------------------------------------------------- Grafana

GRAFANA_KEY = (
    '{}/{__grafana_autogenerated__="true"}/{__grafana_receiver__="recon-webhook"}:'
    '{alertname="AppRuntimeMeteringDrift", grafana_folder="Billing"}'
)
GRAFANA_CASES: list[tuple[str, str | None, str, str, dict[str, str], int]] = [
    (
        "grafana_firing.json",
        GRAFANA_KEY,
        "firing",
        "page",
        {
            "alertname": "AppRuntimeMeteringDrift",
            "org_id": "acme",
            "project_id": "prj-7f3a",
            "app_instance_id": "ai-01HZX3M7TT",
            "usage_source": "app_runtime",
        },
        1,
    ),
    (
        "grafana_resolved.json",
        GRAFANA_KEY.replace("AppRuntimeMeteringDrift", "UsageLedgerMismatch"),
        "resolved",
        "critical",
        {"alertname": "UsageLedgerMismatch", "org_id": "globex", "project_id": "prj-0091"},
        1,
    ),
    (
        "grafana_firing_no_group_key.json",
        None,
        "firing",
        "error",
        {"alertname": "BillingWorkerErrors", "correlation_id": "req-9d2c6b3e", "severity": "error"},
        2,
    ),
]


@pytest.mark.parametrize(("name", "group_key", "status", "severity", "triage", "count"), GRAFANA_CASES)
def test_grafana_fixture(
    name: str, group_key: str | None, status: str, severity: str, triage: dict[str, str], count: int
) -> None:
    n = parse_grafana(load(name))
    assert n.source == "grafana"
    if group_key is not None:
        assert n.group_key == group_key
    else:
        assert n.group_key.startswith("grafana:")
    assert n.status == status
    assert n.severity() == severity
    got = n.labels_for_triage()
    assert {k: got.get(k) for k in triage} == triage
    assert len(n.alerts) == count
    assert n.title is not None and n.title.startswith(f"[{status.upper()}")
    assert n.external_url == "https://grafana.example.com/"


def test_grafana_triage_uses_first_firing_alert() -> None:
    n = parse_grafana(load("grafana_firing_no_group_key.json"))
    assert n.alerts[0].status == "resolved"
    assert n.labels_for_triage()["correlation_id"] == "req-9d2c6b3e"  # the firing one, not the first


def test_grafana_group_key_fallback_is_stable_and_distinct() -> None:
    doc = load("grafana_firing_no_group_key.json")
    key = parse_grafana(doc).group_key
    shuffled = copy.deepcopy(doc)
    shuffled["groupLabels"] = dict(reversed(list({"b": "2", **doc["groupLabels"]}.items())))
    again = copy.deepcopy(doc)
    again["groupLabels"] = {**doc["groupLabels"], "b": "2"}
    assert parse_grafana(shuffled).group_key == parse_grafana(again).group_key != key
    assert parse_grafana(copy.deepcopy(doc)).group_key == key
    other_org = copy.deepcopy(doc)
    other_org["orgId"] = 2
    other_receiver = copy.deepcopy(doc)
    other_receiver["receiver"] = "other"
    assert len({key, parse_grafana(other_org).group_key, parse_grafana(other_receiver).group_key}) == 3
    empty = copy.deepcopy(doc)
    empty["groupKey"] = ""
    assert parse_grafana(empty).group_key == key


def test_grafana_accepts_missing_version_and_ignores_extras() -> None:
    doc = load("grafana_firing.json")
    del doc["version"]
    n = parse_grafana(doc)
    assert n.alerts[0].generator_url == "https://grafana.example.com/alerting/grafana/bdx9k2m0a1pz4c/view?orgId=1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_set("version", "4"), 'version must be "1"'),
        (_set("groupKey", 12), "groupKey must be a string"),
        (_set("title", ["x"]), "title must be a string"),
        (_set("alerts", None), "alerts must be a list"),
        (_set("status", None), 'status must be "firing" or "resolved"'),
        (_set("alerts.0.labels.severity", 1.5), "alerts[0].labels.severity must be a string"),
    ],
)
def test_grafana_malformed_reason(mutate: Any, reason: str) -> None:
    doc = load("grafana_firing.json")
    mutate(doc)
    with pytest.raises(PayloadError) as e:
        parse_grafana(doc)
    assert str(e.value) == reason


def test_grafana_bad_org_id_without_group_key() -> None:
    doc = load("grafana_firing_no_group_key.json")
    doc["orgId"] = {"id": 1}
    with pytest.raises(PayloadError, match=r"^orgId must be a number or a string$"):
        parse_grafana(doc)


def test_alertmanager_rejects_grafana_payload() -> None:
    with pytest.raises(PayloadError, match='version must be "4"'):
        parse_alertmanager(load("grafana_firing.json"))


# ---------------------------------------------------------------- Slack posts

# name, status, severity, labels_for_triage (exact), alert count, title prefix
SLACK_CASES: list[tuple[str, str, str, dict[str, str], int, str]] = [
    (
        "slack_am_default_attachment.json",
        "firing",
        "none",
        {"alertname": "AppRuntimeMeteringDrift"},
        1,
        "[FIRING:3] AppRuntimeMeteringDrift acme",
    ),
    (
        "slack_am_custom_text_attachment.json",
        "firing",
        "page",
        {
            "alertname": "AppRuntimeMeteringDrift",
            "app_instance_id": "ai-01HZX3M7TT",
            "correlation_id": "req-8c1e2f4a-77b0-4c3e-9a51-0d2b6f1e9c33",
            "org_id": "acme",
            "project_id": "prj-7f3a",
            "severity": "page",
            "usage_source": "app_runtime",
        },
        2,
        "[FIRING:2] Monitoring Event Notification",
    ),
    (
        "slack_am_kv_title_resolved.json",
        "resolved",
        "critical",
        {
            "alertname": "UsageLedgerMismatch",
            "control_plane_component": "usage-aggregator",
            "org_id": "globex",
            "project_id": "prj-0091",
            "severity": "critical",
        },
        1,
        "[RESOLVED] UsageLedgerMismatch",
    ),
    (
        "slack_grafana_attachment.json",
        "firing",
        "page",
        {
            "alertname": "AppRuntimeMeteringDrift",
            "app_instance_id": "ai-01HZX3M7TT",
            "grafana_folder": "Billing",
            "org_id": "acme",
            "project_id": "prj-7f3a",
            "severity": "page",
            "usage_source": "app_runtime",
        },
        1,
        "[FIRING:1] AppRuntimeMeteringDrift Billing",
    ),
    (
        "slack_grafana_blocks.json",
        "firing",
        "error",
        {
            "alertname": "BillingWorkerErrors",
            "control_plane_component": "billing-worker",
            "correlation_id": "req-9d2c6b3e",
            "grafana_folder": "Billing",
            "severity": "error",
        },
        2,
        "[FIRING:1, RESOLVED:1] BillingWorkerErrors",
    ),
    (
        "slack_rich_text_alert.json",
        "firing",
        "high",
        {"alertname": "AppRuntimeMeteringDrift", "severity": "high", "app_instance_id": "ai-01HZZ9PQ4R"},
        1,
        "FIRING: AppRuntimeMeteringDrift",
    ),
    (
        "slack_invalid_ids.json",
        "firing",
        "page",
        {"alertname": "AppRuntimeMeteringDrift", "project_id": "prj-7f3a", "severity": "page"},
        1,
        "[FIRING:1] AppRuntimeMeteringDrift",
    ),
]
NON_ALERTS = [
    "slack_nonalert_deploy_bot.json",
    "slack_nonalert_ci_blocks.json",
    "slack_nonalert_recon_own.json",
    "slack_human_message.json",
]


@pytest.mark.parametrize(("name", "status", "severity", "triage", "count", "title"), SLACK_CASES)
def test_slack_alert_post(
    name: str, status: str, severity: str, triage: dict[str, str], count: int, title: str
) -> None:
    event = load(name)
    n = parse_alert_post(event)
    assert n is not None
    assert n.source == "slack"
    assert n.group_key == f"slack:{event['channel']}:{event['ts']}"
    assert n.status == status
    assert n.severity() == severity
    assert n.labels_for_triage() == triage
    assert len(n.alerts) == count
    assert n.title is not None and n.title.startswith(title)


@pytest.mark.parametrize("name", NON_ALERTS)
def test_slack_non_alerts_give_none(name: str) -> None:
    assert parse_alert_post(load(name)) is None


def test_slack_annotations_and_per_alert_status() -> None:
    n = parse_alert_post(load("slack_grafana_blocks.json"))
    assert n is not None
    assert [a.status for a in n.alerts] == ["firing", "resolved"]
    assert n.alerts[0].annotations == {"summary": "billing-worker batch errors 0.4/s"}
    assert n.alerts[0].generator_url == "https://grafana.example.com/alerting/grafana/dw1e2r3t4y5u6i/view?orgId=1"
    assert n.common_labels == {
        "alertname": "BillingWorkerErrors",
        "control_plane_component": "billing-worker",
        "grafana_folder": "Billing",
    }
    custom = parse_alert_post(load("slack_am_custom_text_attachment.json"))
    assert custom is not None
    assert custom.alerts[1].annotations == {
        "summary": "Metered vs billed runtime differ by 95s",
        "description": "Drift above 60s for 15m",
    }
    assert custom.alerts[1].labels["severity"] == "warning"
    kv = parse_alert_post(load("slack_am_kv_title_resolved.json"))
    assert kv is not None
    a = kv.alerts[0]
    assert a.annotations["runbook_url"] == "https://runbooks.example.com/billing/ledger-mismatch"  # from a field
    assert a.generator_url == (
        "http://prometheus.monitoring.svc:9090/graph?g0.expr=usage_ledger_mismatch_ratio+%3E+0.01&g0.tab=1"
    )  # link and &amp; undone
    grafana = parse_alert_post(load("slack_grafana_attachment.json"))
    assert grafana is not None
    assert grafana.alerts[0].annotations["runbook_url"] == "https://runbooks.example.com/billing/metering-drift"


def test_slack_invalid_id_labels_are_dropped() -> None:
    n = parse_alert_post(load("slack_invalid_ids.json"))
    assert n is not None
    labels = n.alerts[0].labels
    assert not {"org_id", "app_instance_id", "correlation_id"} & labels.keys()
    assert labels["project_id"] == "prj-7f3a"


def test_triage_labels_drop_invalid_ids_from_webhooks_too() -> None:
    doc = load("am_correlation_id.json")
    doc["alerts"][0]["labels"]["correlation_id"] = "req 1 OR 1=1"
    doc["alerts"][0]["labels"]["project_id"] = "p" * 129
    doc["commonLabels"]["org_id"] = 'acme"}'
    doc["alerts"][0]["labels"]["org_id"] = 'acme"}'
    n = parse_alertmanager(doc)
    assert n.alerts[0].labels["correlation_id"] == "req 1 OR 1=1"  # the payload as sent…
    assert not {"correlation_id", "project_id", "org_id"} & n.labels_for_triage().keys()  # …but never to triage
    doc["alerts"][0]["labels"]["project_id"] = "p" * 128
    assert parse_alertmanager(doc).labels_for_triage()["project_id"] == "p" * 128


def _bot_post(**kw: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "message", "channel": "C1", "ts": "1.000001", "bot_id": "B9", "text": ""}
    event.update(kw)
    return event


def test_slack_filters_on_event_shape() -> None:
    good = load("slack_grafana_attachment.json")
    assert parse_alert_post(good) is not None
    for change in (
        {"bot_id": None},
        {"subtype": "message_changed"},
        {"subtype": "thread_broadcast"},
        {"type": "app_mention"},
        {"channel": None},
        {"ts": ""},
    ):
        e = {**good, **change}
        assert parse_alert_post(e) is None, change
    assert parse_alert_post({**good, "subtype": "bot_message"}) is not None
    no_meta = {k: v for k, v in load("slack_nonalert_recon_own.json").items() if k != "metadata"}
    assert parse_alert_post(no_meta) is not None  # only the metadata marks recon's own posts here


@pytest.mark.parametrize(
    ("text", "status", "labels"),
    [
        (
            "[FIRING:2] AppRuntimeMeteringDrift (org_id=acme severity=page app_instance_id=ai-1)",
            "firing",
            {"alertname": "AppRuntimeMeteringDrift", "org_id": "acme", "severity": "page", "app_instance_id": "ai-1"},
        ),
        (
            '[RESOLVED] X (org_id="acme" correlation_id=c-9)',
            "resolved",
            {"alertname": "X", "org_id": "acme", "correlation_id": "c-9"},
        ),
        ("FIRING: BillingWorkerErrors", "firing", {"alertname": "BillingWorkerErrors"}),
        (":white_check_mark: RESOLVED - UsageLedgerMismatch", "resolved", {"alertname": "UsageLedgerMismatch"}),
        (
            "*alertname:* `UsageLedgerMismatch`\n*org_id:* `acme`",
            "firing",
            {"alertname": "UsageLedgerMismatch", "org_id": "acme"},
        ),
        ("Alert for you\n - alertname = X\n - severity = info", "firing", {"alertname": "X", "severity": "info"}),
        ("[firing:1] lower case", "firing", {"alertname": "lower"}),
        ("[FIRING:1] (alertname=Y org_id=bad/id)", "firing", {"alertname": "Y"}),
    ],
)
def test_slack_text_only_posts(text: str, status: str, labels: dict[str, str]) -> None:
    n = parse_alert_post(_bot_post(text=text))
    assert n is not None
    assert n.status == status
    assert n.labels_for_triage() == labels


def test_slack_status_from_colour_and_sections() -> None:
    att = {"title": "Metering", "text": "*alertname:* `X`", "color": "good"}
    n = parse_alert_post(_bot_post(attachments=[att]))
    assert n is not None and n.status == "resolved"
    n = parse_alert_post(_bot_post(attachments=[{**att, "color": "danger"}]))
    assert n is not None and n.status == "firing"
    n = parse_alert_post(_bot_post(attachments=[{"text": "**Resolved**\nLabels:\n - alertname = X\n"}]))
    assert n is not None and n.status == "resolved" and n.alerts[0].status == "resolved"


@pytest.mark.parametrize(
    "event",
    [
        _bot_post(text="Deploy finished: all green"),
        _bot_post(text="Heads up: Firing squad meeting at 3"),
        _bot_post(attachments=[{"title": "Weekly report", "color": "danger", "text": "Spend is up 4%"}]),
        _bot_post(blocks=[{"type": "divider"}]),
        _bot_post(attachments="nope", blocks={"type": "section"}),
        _bot_post(blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*Env:* prod\n*Version:* 2"}}]),
        _bot_post(text=None),
    ],
)
def test_slack_other_bot_messages_are_not_alerts(event: dict[str, Any]) -> None:
    assert parse_alert_post(event) is None


def test_slack_duplicate_content_is_one_alert() -> None:
    body = "Labels:\n - alertname = X\n - org_id = acme\n"
    n = parse_alert_post(
        _bot_post(
            text="[FIRING:1] X",
            attachments=[{"title": "[FIRING:1] X", "text": body}],
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": body}}],
        )
    )
    assert n is not None
    assert len(n.alerts) == 1


def test_slack_huge_post_is_bounded() -> None:
    body = "".join(f"Labels:\n - alertname = X\n - app_instance_id = ai-{i}\n" for i in range(3000))
    n = parse_alert_post(_bot_post(text="[FIRING:3000] X\n" + body))
    assert n is not None
    assert 0 < len(n.alerts) <= MAX_ALERTS


# ---------------------------------------------------------------- severity


def _notification(*severities: str, common: str | None = None) -> AlertNotification:
    alerts = [
        Alert(
            status="firing",
            labels={"alertname": "X", **({"severity": s} if s else {})},
            annotations={},
            starts_at=None,
            ends_at=None,
            fingerprint=str(i),
        )
        for i, s in enumerate(severities)
    ]
    return AlertNotification(
        source="alertmanager",
        group_key="{}:{}",
        status="firing",
        receiver=None,
        group_labels={},
        common_labels={"severity": common} if common else {},
        common_annotations={},
        external_url=None,
        alerts=alerts,
    )


def test_severity_order() -> None:
    order = ["critical", "page", "high", "error", "warning", "sev2", "medium", "info", "low", "none"]
    ranks = [severity_rank(s) for s in order]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == len(ranks)
    for i, hi in enumerate(order[:-1]):
        for lo in order[i + 1 :]:
            assert _notification(lo, hi).severity() == hi
            assert _notification(hi, lo).severity() == hi


@pytest.mark.parametrize(
    ("severities", "common", "expected"),
    [
        (("WARNING", "Info"), None, "warning"),
        ((" Page ",), None, "page"),
        (("", ""), None, "none"),
        ((), None, "none"),
        (("info",), "CRITICAL", "critical"),
        (("major", "low"), None, "major"),
        (("major", "medium"), None, "major"),
        (("major", "warning"), None, "warning"),
        (("none", "low"), None, "low"),
    ],
)
def test_severity_normalised(severities: tuple[str, ...], common: str | None, expected: str) -> None:
    assert _notification(*severities, common=common).severity() == expected


def test_labels_for_triage_merges_common_and_first_firing() -> None:
    alerts = [
        Alert(
            status="resolved",
            labels={"alertname": "X", "org_id": "old"},
            annotations={},
            starts_at=None,
            ends_at=None,
            fingerprint="1",
        ),
        Alert(
            status="firing",
            labels={"alertname": "X", "project_id": "p1"},
            annotations={},
            starts_at=None,
            ends_at=None,
            fingerprint="2",
        ),
    ]
    n = AlertNotification(
        source="grafana",
        group_key="k",
        status="firing",
        receiver=None,
        group_labels={},
        common_labels={"alertname": "X", "org_id": "acme"},
        common_annotations={},
        external_url=None,
        alerts=alerts,
    )
    assert n.labels_for_triage() == {"alertname": "X", "org_id": "acme", "project_id": "p1"}
    resolved = n.model_copy(update={"alerts": [alerts[0]]})
    assert resolved.labels_for_triage() == {"alertname": "X", "org_id": "old"}


# ---------------------------------------------------------------- the fast path


def both(text: str) -> tuple[object, object]:
    """What the fast path (``digest_alertmanager_json``) and the reference path make of
    ``text``: a digest or the error's text."""
    from bot.alerts.parse import digest_alertmanager_json, loads_strict

    def run(f: Any) -> object:
        try:
            return f()
        except (PayloadError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"

    return (run(lambda: digest_alertmanager_json(text)),
            run(lambda: parse_alertmanager(loads_strict(text)).digest()))


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("am_*.json")))
def test_fast_path_equals_reference_on_stored_payloads(name: str) -> None:
    fast, ref = both((FIXTURES / name).read_text())
    assert isinstance(ref, NotificationDigest)
    assert fast == ref


def _set(path: str, value: object) -> Any:
    def change(doc: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = doc
        for key in head:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return change


_DELETE = object()
VARIANTS = {
    "as is": [],
    "version as a number": [_set("version", 4)],
    "version 3": [_set("version", "3")],
    "no groupKey": [_set("groupKey", _DELETE)],
    "empty groupKey": [_set("groupKey", "")],
    "status unknown": [_set("status", "pending")],
    "receiver null": [_set("receiver", None)],
    "receiver a number": [_set("receiver", 1)],
    "receiver too long": [_set("receiver", "r" * (64 * 1024 + 1))],
    "groupLabels null": [_set("groupLabels", None)],
    "commonLabels a list": [_set("commonLabels", ["a"])],
    "a label value a number": [_set("commonLabels.severity", 3)],
    "an empty label name": [_set("commonLabels.", "x")],
    "a label value too long": [_set("alerts.0.labels.severity", "s" * (64 * 1024 + 1))],
    "a label value at the limit, not ASCII": [_set("alerts.0.labels.summary", "é" * (64 * 1024))],
    "a label value over the limit, not ASCII": [_set("alerts.0.labels.summary", "€" * (64 * 1024 + 1))],
    "a lone surrogate in a label": [_set("alerts.0.labels.summary", "x\ud800y")],
    "unknown fields, deeply nested": [_set("extra", json.loads("[" * 400 + "]" * 400))],
    "an annotation a number": [_set("commonAnnotations.value", 3.5)],
    "an alert annotation a list": [_set("alerts.0.annotations.runbook", ["x"])],
    "annotations null": [_set("alerts.0.annotations", None)],
    "an annotation too long": [_set("alerts.0.annotations.summary", "a" * (64 * 1024 + 1))],
    "externalURL null": [_set("externalURL", None)],
    "truncatedAlerts null": [_set("truncatedAlerts", None)],
    "truncatedAlerts true": [_set("truncatedAlerts", True)],
    "truncatedAlerts 1.5": [_set("truncatedAlerts", 1.5)],
    "truncatedAlerts -1": [_set("truncatedAlerts", -1)],
    "truncatedAlerts 7": [_set("truncatedAlerts", 7)],
    "truncatedAlerts 7.0": [_set("truncatedAlerts", 7.0)],
    "truncatedAlerts 1e3": [_set("truncatedAlerts", 1e3)],
    "truncatedAlerts 2**70": [_set("truncatedAlerts", 2**70)],
    "alerts empty": [_set("alerts", [])],
    "alerts an object": [_set("alerts", {})],
    "an alert a string": [_set("alerts.0", "x")],
    "an alert without labels": [_set("alerts.0.labels", _DELETE)],
    "an alert with null labels": [_set("alerts.0.labels", None)],
    "an alert without status": [_set("alerts.0.status", _DELETE)],
    "no fingerprint": [_set("alerts.0.fingerprint", _DELETE)],
    "empty fingerprint": [_set("alerts.0.fingerprint", "")],
    "fingerprint a number": [_set("alerts.0.fingerprint", 12)],
    "startsAt with an offset": [_set("alerts.0.startsAt", "2026-11-25T11:00:00.123+01:00")],
    "startsAt without a zone": [_set("alerts.0.startsAt", "2026-11-25T11:00:00")],
    "startsAt a date": [_set("alerts.0.startsAt", "2026-11-25")],
    "startsAt garbage": [_set("alerts.0.startsAt", "yesterday")],
    "startsAt a number": [_set("alerts.0.startsAt", 1700000000)],
    "startsAt empty": [_set("alerts.0.startsAt", "")],
    "endsAt the zero time": [_set("alerts.0.endsAt", "0001-01-01T00:00:00Z")],
    "endsAt lower-case z": [_set("alerts.0.endsAt", "2026-11-25T12:00:00z")],
    "generatorURL empty": [_set("alerts.0.generatorURL", "")],
    "generatorURL a number": [_set("alerts.0.generatorURL", 5)],
    "unknown fields": [_set("extra", {"x": 1}), _set("alerts.0.valueString", "[ var='A' value=3 ]")],
    "a resolved alert": [_set("alerts.0.status", "resolved")],
    "every alert resolved": [lambda doc: [a.update(status="resolved") for a in doc["alerts"]]],
    "severities only on alerts": [_set("alerts.0.labels.severity", "Page "),
                                  _set("alerts.1.labels.severity", "bogus")],
    "an unsafe id in the first firing alert": [_set("alerts.0.labels.correlation_id", "x y")],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_path_equals_reference_on_variants(variant: str) -> None:
    doc = load("am_firing_multi.json")
    for change in VARIANTS[variant]:
        change(doc)
    fast, ref = both(json.dumps(doc))
    assert fast == ref


def test_digest_is_what_the_intake_needs() -> None:
    n = parse_alertmanager(load("am_firing_multi.json"))
    d = n.digest()
    assert d == NotificationDigest(
        source="alertmanager", group_key=n.group_key, status=n.status, severity=n.severity(),
        labels=n.labels_for_triage(), common_annotations=n.common_annotations, alerts=len(n.alerts),
        firing=sum(a.status == "firing" for a in n.alerts))
    assert 0 < d.firing <= d.alerts == len(n.alerts) > 1


@pytest.mark.parametrize("text", ["{not json", '{"version": "4", "x": NaN}', "[]", '"4"', "", "null"])
def test_fast_path_equals_reference_on_text_that_is_not_a_payload(text: str) -> None:
    fast, ref = both(text)
    assert isinstance(ref, str) and fast == ref


def _text_variants() -> dict[str, str]:
    text = (FIXTURES / "am_firing_multi.json").read_text()
    doc = json.loads(text)
    first = json.dumps(doc["alerts"][0])
    return {
        "a byte order mark": "\ufeff" + text,
        "trailing garbage": text + " x",
        "trailing whitespace": text + " \n\t ",
        "a key given twice (the last counts)":
            text.replace('"status": "firing"', '"status": "resolved", "status": "firing"', 1),
        "a label given twice": json.dumps(doc).replace('"labels": {', '"labels": {"severity": "low", ', 1),
        "an alert given twice": json.dumps(doc).replace('"alerts": [', f'"alerts": [{first}, ', 1),
    }


@pytest.mark.parametrize("name", sorted(_text_variants()))
def test_fast_path_equals_reference_on_unusual_texts(name: str) -> None:
    fast, ref = both(_text_variants()[name])
    assert fast == ref


def test_fast_path_takes_large_payloads() -> None:
    doc = load("am_firing_multi.json")
    one = doc["alerts"][0]
    doc["alerts"] = [{**one, "labels": {**one["labels"], "instance": f"n{i}"}, "fingerprint": f"f{i}"}
                     for i in range(MAX_ALERTS)]
    fast, ref = both(json.dumps(doc))
    assert isinstance(fast, NotificationDigest) and fast == ref and fast.alerts == MAX_ALERTS
    doc["alerts"].append(doc["alerts"][0])
    fast, ref = both(json.dumps(doc))
    assert isinstance(ref, str) and "at most 1000" in ref and fast == ref


@pytest.mark.parametrize("variant", ["as is", "no fingerprint", "startsAt with an offset", "endsAt the zero time",
                                     "unknown fields", "truncatedAlerts 7", "annotations null",
                                     "a label value at the limit, not ASCII", "every alert resolved"])
def test_the_common_cases_take_the_fast_path(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.alerts.parse as parse_module

    doc = load("am_firing_multi.json")
    for change in VARIANTS[variant]:
        change(doc)
    expected = parse_alertmanager(copy.deepcopy(doc)).digest()

    def not_here(doc: object) -> AlertNotification:
        raise AssertionError("the fast path fell back")

    monkeypatch.setattr(parse_module, "parse_alertmanager", not_here)
    assert parse_module.digest_alertmanager_json(json.dumps(doc)) == expected
