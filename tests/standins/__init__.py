"""Loopback stand-ins for the bot's upstream services: real HTTP servers on 127.0.0.1.

Each stand-in is an aiohttp server on an ephemeral port, serving documented responses
from in-memory data. Use one as an async context manager::

    async with LokiStandIn(tenant="t1") as loki:
        loki.push_event("gpuaas-api", ts, event="app.lifecycle.requested", correlation_id="c1")
        src = LokiLogSource(loki.url, tenant="t1", timeout_s=1, batch=100, max_entries=1000)
        ...
        assert loki.requests[0].params["direction"] == "forward"

or through the pytest fixtures ``loki_standin`` (``tests.standins.loki``) and
``tempo_standin`` (``tests.standins.tempo``), which a conftest can import.

Every stand-in shares the knobs of ``StandIn``:

* ``requests``: what it received (``RecordedRequest``: method, path, params, headers)
* ``tenant``: when set, requests without ``X-Scope-OrgID`` get ``401 no org id``
* ``authorization``: when set, requests without exactly this ``Authorization`` header
  get ``401 unauthorized`` (a hosted Loki or Tempo behind basic or bearer auth)
* ``delay_s``: wait this long before answering (timeouts, benchmarks)
* ``fail(status, body)``, ``serve_malformed()``, ``close_connections()``,
  ``respond(status, body)``: failure modes, for every request or the next ``times``
* ``reset()``: back to normal service

``dead_url()`` gives a URL where nothing listens (connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from aiohttp import web

__all__ = ["Failure", "LoopbackServer", "RecordedRequest", "StandIn", "dead_port", "dead_url"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dead_port() -> int:
    """A loopback port where nothing listens: bound, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def dead_url() -> str:
    """``http://127.0.0.1:<dead port>``: connecting there is refused."""
    return f"http://127.0.0.1:{dead_port()}"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a stand-in received."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    query_string: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(slots=True)
class Failure:
    """A failure mode: answer ``status``/``body``, send garbage JSON, or hang up."""

    kind: Literal["status", "malformed", "close"]
    status: int = 500
    body: str = ""
    content_type: str = "text/plain"
    times: int | None = None  # None: every request; n: the next n requests


@dataclass(slots=True)
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    failure: Failure | None = None


class LoopbackServer:
    """An aiohttp server on an ephemeral port of 127.0.0.1: ``start()``/``stop()`` or
    ``async with``. Subclasses build their ``application()``."""

    name = "server"

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()  # set when stopping: wakes what waits (delays, sockets)
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self.port}"

    def application(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(self.application(), handle_signals=False, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class StandIn(LoopbackServer):
    """Base of the stand-ins: request log, tenancy, delay, failures.

    Subclasses implement ``routes()``; ``tenant_of(request)`` gives the tenant a
    request asked for (``None`` when no tenant is configured)."""

    name = "stand-in"

    def __init__(self, *, tenant: str | None = None, delay_s: float = 0.0) -> None:
        super().__init__()
        self.tenant = tenant
        self.delay_s = delay_s
        self.authorization: str | None = None  # when set, a request without this Authorization gets 401
        self._state = _State()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return self.base_url

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self.routes())
        return app

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    # ------------------------------------------------------------ knobs

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._state.requests

    def fail(self, status: int = 500, body: str = "internal server error", *, times: int | None = None) -> None:
        """Answer ``status`` with a text/plain ``body``."""
        self._state.failure = Failure("status", status, body, "text/plain; charset=utf-8", times)

    def respond(
        self,
        status: int,
        body: str,
        *,
        content_type: str = "application/json",
        times: int | None = None,
    ) -> None:
        """Answer a canned ``body`` (a recorded response, say) instead of the data."""
        self._state.failure = Failure("status", status, body, content_type, times)

    def serve_malformed(self, *, times: int | None = None) -> None:
        """Answer 200 ``application/json`` with a body that is not JSON."""
        self._state.failure = Failure("malformed", 200, '{"status":"success","data":{"resu', "application/json", times)

    def close_connections(self, *, times: int | None = None) -> None:
        """Hang up without answering."""
        self._state.failure = Failure("close", times=times)

    def reset(self) -> None:
        """Normal service: no failure mode, no delay."""
        self._state.failure = None
        self.delay_s = 0.0

    def tenant_of(self, request: web.Request) -> str | None:
        return request.headers.get("X-Scope-OrgID") if self.tenant else None

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._state.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                params=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                query_string=request.query_string,
            )
        )
        if self.delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay_s)
        failure = self._state.failure
        if failure is not None:
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._state.failure = None
            if failure.kind == "close":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)  # never sent: the connection is gone
            return web.Response(
                status=failure.status,
                body=failure.body.encode(),
                headers={"Content-Type": failure.content_type},
            )
        if self.authorization is not None and request.headers.get("Authorization") != self.authorization:
            return web.Response(status=401, text="unauthorized\n")
        if self.tenant and not request.headers.get("X-Scope-OrgID"):
            return web.Response(status=401, text="no org id\n")
        return await handler(request)
