"""The alert webhooks and the report route through the real app: what they refuse,
with which status, and what an accepted notification queues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.handlers.conftest import ALERT_TOKEN, HandlerApp

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alerts"
AUTH = {"Authorization": f"Bearer {ALERT_TOKEN}", "Content-Type": "application/json"}


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(("path", "fixture"), [("alertmanager", "am_correlation_id.json"),
                                               ("grafana", "grafana_firing.json")])
async def test_a_notification_is_stored_and_its_triage_queued(app: HandlerApp, path: str, fixture: str) -> None:
    r = await app.http.post(f"{app.url}/alerts/{path}", content=body(fixture), headers=AUTH)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["status"], doc["action"], doc["queued"]) == ("accepted", "open", True)
    [job] = await app.jobs()
    assert job["kind"] == "alert" and job["status"] == "queued"


async def test_the_same_notification_again_is_a_repeat(app: HandlerApp) -> None:
    for _ in range(2):
        r = await app.http.post(f"{app.url}/alerts/alertmanager", content=body("am_correlation_id.json"),
                                headers=AUTH)
    assert r.json()["action"] == "repeat" and r.json()["queued"] is False
    assert len(await app.jobs()) == 1


@pytest.mark.parametrize(("headers", "content", "status", "says"), [
    ({}, b"{}", 401, "missing or wrong bearer token"),
    ({"Authorization": "Bearer nope"}, b"{}", 401, "missing or wrong bearer token"),
    ({"Authorization": f"Basic {ALERT_TOKEN}"}, b"{}", 401, "missing or wrong bearer token"),
    (AUTH, b"{not json", 400, "body is not JSON"),
    (AUTH, b'{"value": NaN}', 400, "body is not JSON"),
    (AUTH, "{}".encode("utf-16"), 400, "body is not UTF-8"),
    (AUTH, json.dumps({"version": "4", "alerts": "none"}).encode(), 400, "not a Alertmanager notification"),
    (AUTH, b" " * 70_000, 413, "body larger than"),
])
async def test_bad_requests_are_refused_with_a_reason(app: HandlerApp, headers: dict[str, str], content: bytes,
                                                      status: int, says: str) -> None:
    r = await app.http.post(f"{app.url}/alerts/alertmanager", content=content, headers=headers)
    assert r.status_code == status and r.json()["status"] == "refused" and says in r.json()["error"], r.text
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert await app.jobs() == []


async def test_the_report_route_has_its_deps_from_the_app(app: HandlerApp) -> None:
    """The report page reads the store and settings it was given when the app was built."""
    r = await app.http.get(f"{app.url}/incidents/INC-20261120-abc123")
    assert r.status_code == 401 and r.headers["Cache-Control"] == "no-store"
    r = await app.http.get(f"{app.url}/incidents/INC-20261120-abc123", params={"token": "forged"})
    assert r.status_code == 403
