"""A real Alertmanager process for tests: ``RealAlertmanager``.

Starts the ``prometheus-alertmanager`` binary (Debian's package; ``alertmanager``
from upstream tarballs, or ``$ALERTMANAGER_BIN``) on 127.0.0.1 with one route to a
``webhook_configs`` receiver at ``webhook_url``, authenticating with a bearer
token, ``send_resolved: true``::

    async with RealAlertmanager(receiver.url, bearer_token="t0ken") as am:
        await am.push([{"labels": {"alertname": "X", "org_id": "acme"}}])
        ...                                   # the receiver gets a v4 payload
        await am.push([{"labels": {...}, "endsAt": past}])   # resolves it

Timings: ``group_wait`` (default ``0s``) is how long after the first alert of a new
group the first notification goes out; ``group_interval`` (``1s``) is the wait
before a changed group (new or resolved alerts) is notified again;
``repeat_interval`` (``1h``) keeps unchanged groups quiet. Startup (ready) takes
well under a second; the first notification arrives ~group_wait after ``push``; a
resolve arrives within ~group_interval.

If the binary is missing the test is skipped, unless ``CI`` is set (CI installs
it with ``apt-get install -y prometheus-alertmanager``): then it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest

__all__ = ["RealAlertmanager", "alertmanager_binary", "real_alertmanager_factory", "require_alertmanager_binary"]

BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")
READY_TIMEOUT_S = 15.0


def alertmanager_binary() -> str | None:
    """Path of the Alertmanager binary: ``$ALERTMANAGER_BIN`` or the first on PATH."""
    env = os.environ.get("ALERTMANAGER_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_alertmanager_binary() -> str:
    """The binary's path; else skip the test (locally) or fail it (when ``CI`` is set)."""
    path = alertmanager_binary()
    if path is not None:
        return path
    msg = (
        "Alertmanager binary not found (looked for $ALERTMANAGER_BIN, "
        + ", ".join(BINARY_NAMES)
        + " on PATH); install it with: apt-get install -y prometheus-alertmanager"
    )
    if _in_ci():
        pytest.fail(f"CI is set but {msg}", pytrace=False)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RealAlertmanager:
    """An Alertmanager process routing every alert to one webhook receiver."""

    def __init__(
        self,
        webhook_url: str,
        *,
        bearer_token: str,
        group_wait: str = "0s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        group_by: Sequence[str] = ("alertname", "org_id"),
        resolve_timeout: str = "5m",
        max_alerts: int | None = None,
        receiver_name: str = "recon",
        binary: str | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.group_by = list(group_by)
        self.resolve_timeout = resolve_timeout
        self.max_alerts = max_alerts
        self.receiver_name = receiver_name
        self.binary = binary
        self.port = 0
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: Any = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ config

    def config(self) -> dict[str, Any]:
        """The Alertmanager configuration (written as JSON, which is YAML)."""
        webhook: dict[str, Any] = {
            "url": self.webhook_url,
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": self.bearer_token}},
        }
        if self.max_alerts is not None:
            webhook["max_alerts"] = self.max_alerts
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": self.receiver_name,
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": self.receiver_name, "webhook_configs": [webhook]}],
        }

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("Alertmanager is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        """What the process wrote to stdout/stderr so far."""
        if self._dir is None:
            return ""
        path = self._dir / "alertmanager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> None:
        binary = self.binary or require_alertmanager_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="recon-am-"))
        cfg = self._dir / "alertmanager.yml"
        cfg.write_text(json.dumps(self.config(), indent=2))
        (self._dir / "data").mkdir()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        for _attempt in range(3):  # the free port can be taken between probe and bind
            self.port = _free_port()
            self._log_file = (self._dir / "alertmanager.log").open("ab")
            self._proc = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={cfg}",
                f"--storage.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.external-url=http://127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=debug",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
            if await self._wait_ready():
                return
            code = self._proc.returncode
            await self._terminate()
            if not (code is not None and "address already in use" in self.log):
                break
        log = self.log
        await self.stop()
        why = f"exited with code {code}" if code is not None else f"was not ready within {READY_TIMEOUT_S}s"
        raise RuntimeError(f"Alertmanager {why}; its log:\n{log[-4000:]}")

    async def _wait_ready(self) -> bool:
        """Poll ``/-/ready`` until it answers 200, the process exits, or the timeout passes."""
        assert self._proc is not None and self._session is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.get(f"{self.url}/-/ready") as resp:
                    if resp.status == 200:
                        return True
            with contextlib.suppress(TimeoutError):  # wakes early if the process exits
                await asyncio.wait_for(self._proc.wait(), 0.05)
        return False

    async def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def stop(self) -> None:
        await self._terminate()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def __aenter__(self) -> RealAlertmanager:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------ API

    async def push(self, alerts: list[dict[str, Any]]) -> None:
        """``POST /api/v2/alerts``.

        Each alert: ``labels`` (required), ``annotations``, ``startsAt``, ``endsAt``,
        ``generatorURL``; times may be ``datetime``\\ s or RFC 3339 strings.
        ``startsAt`` defaults to now. An ``endsAt`` in the past resolves the alert
        (``resolve(alerts)`` does that for you).
        """
        if self._session is None:
            raise RuntimeError("Alertmanager is not started")
        body = []
        for a in alerts:
            item: dict[str, Any] = {"labels": dict(a["labels"]), "annotations": dict(a.get("annotations", {}))}
            for key in ("startsAt", "endsAt"):
                v = a.get(key)
                if v is not None:
                    item[key] = _rfc3339(v) if isinstance(v, datetime) else v
            item.setdefault("startsAt", _rfc3339(datetime.now(UTC)))
            if a.get("generatorURL"):
                item["generatorURL"] = a["generatorURL"]
            body.append(item)
        async with self._session.post(f"{self.url}/api/v2/alerts", json=body) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"POST /api/v2/alerts: {resp.status} {text[:500]}\nlog:\n{self.log[-2000:]}")

    async def resolve(self, alerts: list[dict[str, Any]]) -> None:
        """Push ``alerts`` again with ``endsAt`` one second in the past."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        await self.push(
            [{**a, "startsAt": a.get("startsAt") or past - timedelta(minutes=1), "endsAt": past} for a in alerts]
        )

    async def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: what Alertmanager holds now."""
        if self._session is None:
            raise RuntimeError("Alertmanager is not started")
        async with self._session.get(f"{self.url}/api/v2/alerts") as resp:
            resp.raise_for_status()
            data: list[dict[str, Any]] = await resp.json()
            return data


@pytest.fixture
async def real_alertmanager_factory() -> AsyncIterator[Callable[..., Awaitable[RealAlertmanager]]]:
    """Start ``RealAlertmanager``\\ s (same arguments); each is stopped after the test.

    Skips (locally) or fails (``CI`` set) when the binary is missing::

        async def test_x(real_alertmanager_factory):
            am = await real_alertmanager_factory(receiver_url, bearer_token="t", group_by=("alertname",))
            await am.push([...])
    """
    binary = require_alertmanager_binary()
    started: list[RealAlertmanager] = []

    async def make(webhook_url: str, **kw: Any) -> RealAlertmanager:
        am = RealAlertmanager(webhook_url, binary=kw.pop("binary", binary), **kw)
        started.append(am)
        await am.start()
        return am

    try:
        yield make
    finally:
        for am in started:
            await am.stop()
