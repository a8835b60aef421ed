"""RealAlertmanager: a real Alertmanager delivers v4 webhooks to a loopback receiver.

Also checks that what it sends parses with ``bot.alerts.parse_alertmanager``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.alerts import AlertNotification, parse_alertmanager
from tests.standins import LoopbackServer
from tests.standins.alertmanager import RealAlertmanager, real_alertmanager_factory  # noqa: F401

TOKEN = "am-test-token-5f2c"
WAIT_S = 20.0  # upper bound for one delivery; normally well under 2 s


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver(LoopbackServer):
    """An aiohttp webhook receiver on 127.0.0.1 putting each delivery on a queue."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()

    @property
    def url(self) -> str:
        return f"{self.base_url}/alerts"

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        await self.deliveries.put(Delivery({k.lower(): v for k, v in request.headers.items()}, body))
        return web.Response(status=200)

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        return app

    async def next(self, am: RealAlertmanager) -> Delivery:
        try:
            return await asyncio.wait_for(self.deliveries.get(), WAIT_S)
        except TimeoutError:
            pytest.fail(f"no webhook delivery within {WAIT_S}s; Alertmanager log:\n{am.log[-4000:]}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def alert(org: str, instance: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "AppRuntimeMeteringDrift",
            "org_id": org,
            "app_instance_id": instance,
            "severity": "page",
        },
        "annotations": {"summary": f"drift on {instance}"},
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=drift",
    }


async def test_real_alertmanager_delivers_firing_then_resolved(
    receiver: Receiver,
    real_alertmanager_factory: Callable[..., Awaitable[RealAlertmanager]],  # noqa: F811
) -> None:
    am = await real_alertmanager_factory(receiver.url, bearer_token=TOKEN)
    acme = [alert("acme", "ai-1"), alert("acme", "ai-2")]
    beta = [alert("beta", "ai-9")]
    await am.push(acme + beta)

    # Two groups. With group_wait 0s a group can be flushed before all alerts of one
    # POST reached it; then a second notification follows after group_interval.
    got: dict[str, AlertNotification] = {}
    want = {"acme": ["ai-1", "ai-2"], "beta": ["ai-9"]}
    for _ in range(4):
        d = await receiver.next(am)
        assert d.headers["authorization"] == f"Bearer {TOKEN}"
        assert d.headers["content-type"].startswith("application/json")
        assert d.headers["user-agent"].startswith("Alertmanager/")
        assert d.body["version"] == "4"
        assert d.body["status"] == "firing"
        n = parse_alertmanager(d.body)
        got[n.group_labels["org_id"]] = n
        if {k: sorted(a.labels["app_instance_id"] for a in v.alerts) for k, v in got.items()} == want:
            break
    assert set(got) == {"acme", "beta"}
    assert got["acme"].group_key == '{}:{alertname="AppRuntimeMeteringDrift", org_id="acme"}'
    assert sorted(a.labels["app_instance_id"] for a in got["acme"].alerts) == ["ai-1", "ai-2"]
    assert got["acme"].receiver == "recon"
    assert got["acme"].severity() == "page"
    assert got["acme"].alerts[0].ends_at is None  # zero time for firing alerts
    assert [a.labels["app_instance_id"] for a in got["beta"].alerts] == ["ai-9"]

    await am.resolve(acme)
    d = await receiver.next(am)
    assert d.headers["authorization"] == f"Bearer {TOKEN}"
    n = parse_alertmanager(d.body)
    assert n.status == "resolved"
    assert n.group_key == got["acme"].group_key
    assert {a.status for a in n.alerts} == {"resolved"}
    assert all(a.ends_at is not None for a in n.alerts)
    assert receiver.deliveries.empty()  # beta is unchanged: repeat_interval keeps it quiet


async def test_real_alertmanager_truncates_with_max_alerts(
    receiver: Receiver,
    real_alertmanager_factory: Callable[..., Awaitable[RealAlertmanager]],  # noqa: F811
) -> None:
    am = await real_alertmanager_factory(receiver.url, bearer_token=TOKEN, max_alerts=1, group_by=("alertname",))
    await am.push([alert("acme", "ai-1"), alert("acme", "ai-2"), alert("beta", "ai-3")])
    # with group_wait 0s Alertmanager may flush the group before it has taken in all three
    # (then again after group_interval, 1 s): every notification carries one alert and
    # counts the rest, and one of the first few counts all three
    for _ in range(5):
        n = parse_alertmanager((await receiver.next(am)).body)
        assert len(n.alerts) == 1
        assert n.group_key == '{}:{alertname="AppRuntimeMeteringDrift"}'
        if n.truncated_alerts == 2:
            break
    assert n.truncated_alerts == 2


async def test_config_written_for_alertmanager() -> None:
    cfg = RealAlertmanager("http://127.0.0.1:1/x", bearer_token="t", max_alerts=5).config()
    hook = cfg["receivers"][0]["webhook_configs"][0]
    assert hook == {
        "url": "http://127.0.0.1:1/x",
        "send_resolved": True,
        "max_alerts": 5,
        "http_config": {"authorization": {"type": "Bearer", "credentials": "t"}},
    }
    assert cfg["route"]["group_by"] == ["alertname", "org_id"]
    assert cfg["route"]["group_wait"] == "0s" and cfg["route"]["group_interval"] == "1s"


async def test_missing_binary_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.standins import alertmanager as mod

    monkeypatch.setattr(mod, "alertmanager_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y prometheus-alertmanager"):
        mod.require_alertmanager_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        mod.require_alertmanager_binary()
