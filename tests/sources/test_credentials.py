"""Credentials of Loki and Tempo (basic, bearer, or in the URL, as hosted Loki is often
given) reach the server in the ``Authorization`` header and nowhere else: not in the
URL a source shows, an evidence record's ``via``, or the message of any failure (the
server refusing them, failing with them in its answer, not answering, not there)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from bot.diagnosis.model import Window
from bot.errors import SourceError, SourceFailure, SourceUnavailable
from bot.settings import Settings
from bot.sources.http import REDACTED, redact_url
from bot.sources.logql import by_correlation_id
from bot.sources.loki import LokiLogSource
from bot.sources.tempo import TempoTraceSource
from tests.standins import dead_port
from tests.standins.loki import LokiStandIn
from tests.standins.tempo import TempoStandIn

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
Q = by_correlation_id("corr-123")
TRACE = "0123456789abcdef0123456789abcdef"
USER = "tenant-4711"
TOKEN = "glc_sEcReT-t0ken-of-the-hosted-loki"  # what must never be shown
QUERY_TOKEN = "qs-sEcReT-9f8e7d"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_userinfo(url: str, user: str = USER, password: str = TOKEN) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


def assert_hidden(*texts: object) -> None:
    for t in texts:
        for secret in (TOKEN, QUERY_TOKEN, base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()):
            assert secret not in str(t), f"a credential shows in {t!r}"


@pytest.mark.parametrize("url,shown", [
    ("https://user:tok@loki.example.com/", "https://***@loki.example.com/"),
    ("https://tok@loki.example.com", "https://***@loki.example.com"),
    ("https://h/p?token=a&x=1&API_KEY=b&X-Amz-Signature=c&sig=d#access_token=e",
     "https://h/p?token=***&x=1&API_KEY=***&X-Amz-Signature=***&sig=***#access_token=***"),
    ("https://h/p?Password=&tokenish=1", "https://h/p?Password=***&tokenish=1"),
    ("http://u:p@[::1/x?secret=s", "http://***@[::1/x?***"),  # not a URL: userinfo and query go
    ("http://127.0.0.1:3100", "http://127.0.0.1:3100"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_userinfo_in_the_url_is_sent_as_basic_auth_and_never_shown() -> None:
    async with LokiStandIn() as loki:
        loki.authorization = basic(USER, TOKEN)
        loki.push_event("gpuaas-api", T0, event="app.lifecycle.requested", correlation_id="corr-123")
        async with LokiLogSource(with_userinfo(loki.url), timeout_s=2.0) as src:
            got = await src.query(Q, WINDOW)
            shown = (src.base_url, src.label)
    assert [e.event for e in got.items] == ["app.lifecycle.requested"]
    assert loki.requests[0].header("Authorization") == basic(USER, TOKEN)
    assert got.call.via == loki.url  # the credentials are not part of where it went
    assert_hidden(got.call, *shown)


async def test_explicit_credentials_and_secret_query_parameters() -> None:
    async with LokiStandIn() as loki, TempoStandIn() as tempo:
        loki.authorization = basic(USER, TOKEN)
        tempo.authorization = f"Bearer {TOKEN}"
        async with LokiLogSource(f"{loki.url}/?api_key={QUERY_TOKEN}", user=USER, password=TOKEN) as src:
            logs = await src.query(Q, WINDOW)
        async with TempoTraceSource(tempo.url, bearer_token=TOKEN) as src:
            traces = await src.get_trace(TRACE, WINDOW)
    assert loki.requests[0].params["api_key"] == QUERY_TOKEN and loki.requests[0].path.endswith("/query_range")
    assert tempo.requests[0].header("Authorization") == f"Bearer {TOKEN}"
    assert logs.call.via == f"{loki.url}/?api_key={REDACTED}" and traces.items == []
    assert_hidden(logs.call, traces.call)


async def failure(src: LokiLogSource | TempoTraceSource) -> SourceFailure:
    with pytest.raises(SourceFailure) as info:
        async with src:
            if isinstance(src, LokiLogSource):
                await src.query(Q, WINDOW)
            else:
                await src.get_trace(TRACE, WINDOW)
    return info.value


@pytest.mark.parametrize("kind", ["loki", "tempo"])
async def test_no_failure_shows_a_credential(kind: str) -> None:
    standin = LokiStandIn() if kind == "loki" else TempoStandIn()

    def make(url: str, **kw: object) -> LokiLogSource | TempoTraceSource:
        cls = LokiLogSource if kind == "loki" else TempoTraceSource
        return cls(url, timeout_s=1.0, **kw)  # type: ignore[arg-type]  # only the slow case waits it out

    async with standin:
        url = with_userinfo(standin.url) + f"/?token={QUERY_TOKEN}"
        standin.authorization = basic(USER, "another password")
        refused = await failure(make(url))  # 401
        standin.authorization = None
        standin.fail(500, f"upstream said: bad credentials {USER}:{TOKEN} (Bearer {TOKEN}), token={QUERY_TOKEN}")
        echoed = await failure(make(url))
        standin.fail(500, f"rejected {TOKEN}")
        bearer = await failure(make(standin.url, bearer_token=TOKEN))
        standin.reset()
        standin.serve_malformed()
        malformed = await failure(make(url))
        standin.reset()
        standin.delay_s = 5.0
        slow = await failure(make(url))
    unreachable = await failure(make(with_userinfo(f"http://127.0.0.1:{dead_port()}")))
    assert isinstance(refused, SourceError) and "HTTP 401" in str(refused)
    assert isinstance(echoed, SourceError) and "HTTP 500" in str(echoed) and REDACTED in str(echoed)
    assert isinstance(slow, SourceUnavailable) and isinstance(unreachable, SourceUnavailable)
    assert_hidden(refused, echoed, bearer, malformed, slow, unreachable)


def test_settings_take_credentials_as_secrets_and_refuse_two_kinds_at_once() -> None:
    s = Settings(LOKI_URL="https://loki.example.com", LOKI_USER=USER, LOKI_PASSWORD=TOKEN,
                 TEMPO_BEARER_TOKEN=TOKEN)  # type: ignore[call-arg]
    assert isinstance(s.loki_password, SecretStr) and isinstance(s.tempo_bearer_token, SecretStr)
    assert TOKEN not in repr(s) and TOKEN not in str(s)
    with pytest.raises(ValidationError, match="LOKI_BEARER_TOKEN or LOKI_USER and LOKI_PASSWORD") as both:
        Settings(LOKI_USER=USER, LOKI_PASSWORD=TOKEN, LOKI_BEARER_TOKEN=TOKEN)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="TEMPO_USER and TEMPO_PASSWORD go together") as half:
        Settings(TEMPO_PASSWORD=TOKEN)  # type: ignore[call-arg]
    assert_hidden(both.value, half.value)
