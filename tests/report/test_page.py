"""``GET /incidents/{id}`` through a real aiohttp server on loopback, and the page opened
in a real headless browser (Debian's ``chromium``).

The browser tests skip with a reason when chromium is missing, except in CI
(``CI=true``), where a missing chromium fails them (CI installs it: ``apt-get install -y
chromium``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr

from bot.diagnosis.money import format_minor
from bot.report.tokens import install_secret, make_token
from bot.store.store import Store
from handlers.report import SECURITY_HEADERS, ReportDeps, add_routes
from tests.report.conftest import Recorded

SCREENSHOT_DIR = Path(os.environ.get("RECON_REPORT_SCREENSHOT_DIR", tempfile.gettempdir()))


@pytest_asyncio.fixture
async def base_url(store: Store) -> AsyncIterator[str]:
    app = web.Application()
    add_routes(app, ReportDeps(store=store, settings=SimpleNamespace(report_secret=None)))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def token_for(store: Store, incident_id: str, hours: float = 1) -> str:
    return make_token(await install_secret(store.pool), incident_id, datetime.now(UTC) + timedelta(hours=hours))


async def get(url: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.text()


def assert_security_headers(headers: dict[str, str]) -> None:
    for k, v in SECURITY_HEADERS.items():
        assert headers.get(k) == v, k
    assert headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert headers["Content-Type"].startswith("text/html")


async def test_page_with_a_valid_token(store: Store, recorded: Recorded, base_url: str) -> None:
    iid = recorded.incident_id
    status, headers, html = await get(f"{base_url}/incidents/{iid}?token={await token_for(store, iid)}")
    assert status == 200
    assert_security_headers(headers)
    assert iid in html and "<svg" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    # values are escaped: the prompt's reason has angle brackets
    assert "freeze manual adjustments &lt;while&gt; we look" in html and "<while>" not in html


@pytest.mark.parametrize(("token", "status", "why"), [
    (None, 401, "no access token"),
    ("garbage", 403, "not valid"),
    ("expired", 403, "expired"),
    ("other", 403, "another incident"),
])
async def test_refusals_say_why_and_show_nothing(store: Store, recorded: Recorded, base_url: str,
                                                 token: str | None, status: int, why: str) -> None:
    iid = recorded.incident_id
    if token == "expired":
        token = await token_for(store, iid, hours=-1)
    elif token == "other":
        token = await token_for(store, "INC-20261120-other1")
    url = f"{base_url}/incidents/{iid}" + (f"?token={token}" if token else "")
    got, headers, html = await get(url)
    assert got == status
    assert_security_headers(headers)
    assert why in html
    assert recorded.diagnosis.subject.correlation_id not in html and "finding" not in html.lower()


async def test_unknown_incident_is_404(store: Store, base_url: str) -> None:
    iid = "INC-20261120-gone00"
    status, headers, html = await get(f"{base_url}/incidents/{iid}?token={await token_for(store, iid)}")
    assert status == 404 and "No such incident" in html
    assert_security_headers(headers)


async def test_hostile_values_are_escaped(store: Store, base_url: str) -> None:
    inc = await store.create_incident(title='<script>alert(1)</script>"', origin="cli",
                                      app_instance_id="ai-x")
    await store.add_timeline_event(inc.incident_id, None, "note", "<img src=x onerror=alert(1)>", "<b>bold</b>",
                                   actor="<i>U1</i>")
    status, _, html = await get(f"{base_url}/incidents/{inc.incident_id}?token="
                                f"{await token_for(store, inc.incident_id)}")
    assert status == 200
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html and "<i>U1</i>" not in html


async def test_a_link_of_the_previous_secret_opens_until_it_is_removed(store: Store, recorded: Recorded) -> None:
    current, previous = SecretStr("c" * 40), SecretStr("p" * 40)
    iid = recorded.incident_id
    expires = datetime.now(UTC) + timedelta(hours=1)
    old_link = make_token(previous.get_secret_value().encode(), iid, expires)
    forged = make_token(b"x" * 40, iid, expires)
    answers = []
    for settings in (SimpleNamespace(report_secret=current, report_secret_previous=previous),
                     SimpleNamespace(report_secret=current, report_secret_previous=None)):
        app = web.Application()
        add_routes(app, ReportDeps(store=store, settings=settings))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/incidents/{iid}"  # type: ignore[union-attr]
        try:
            answers.append([(await get(f"{url}?token={t}"))[0] for t in (old_link, forged)])
        finally:
            await runner.cleanup()
    assert answers == [[200, 403], [403, 403]]


# ---------------------------------------------------------------- a real browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    msg = "chromium is not installed (apt-get install -y chromium): the report page was not opened in a browser"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


async def browse(url: str, *extra: str, timeout: float = 90) -> str:
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="recon-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", *extra, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        return out.decode("utf-8", errors="replace")


def visible_text(dom: str) -> str:
    dom = re.sub(r"<style.*?</style>", " ", dom, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", dom)
    for a, b in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&")):
        text = text.replace(a, b)
    return " ".join(text.split())


async def test_page_in_a_headless_browser(store: Store, recorded: Recorded, base_url: str) -> None:
    iid = recorded.incident_id
    url = f"{base_url}/incidents/{iid}?token={await token_for(store, iid)}"
    dom = await browse(url, "--dump-dom")
    text = visible_text(dom)
    d = recorded.diagnosis
    assert iid in text
    # the timeline entries
    for words in ("diagnosis started", "Logs by correlation id: ok", "Reconciliation checklist: ok",
                  "diagnosis finished", "3 finding(s), scope project, freeze recommended", "by U0ALICE"):
        assert words in text, words
    assert d.trace_ids[0] in text and str(d.subject.correlation_id) in text
    # the findings' checks and the impact numbers
    for f in d.findings:
        assert f.check in text and f.summary in text
    for row in d.impact:
        for amount in (row.overcharged_minor, row.undercharged_minor):
            assert format_minor(amount, row.currency) in text
    # the chart: an SVG with two bars per instance
    assert dom.count('class="bar-charged"') == dom.count('class="bar-expected"') == len(d.identifiers.app_instance_ids)
    assert "usage against ledger, USD" in dom
    # approvals and freezes, escaped and readable
    assert "freeze manual adjustments <while> we look" in text and "U0MALLORY" in text
    # and a screenshot a person can look at
    shot = SCREENSHOT_DIR / f"recon-report-{iid}.png"
    await browse(url, f"--screenshot={shot}", "--window-size=1400,2600", "--hide-scrollbars")
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_refusal_in_a_headless_browser(recorded: Recorded, base_url: str) -> None:
    text = visible_text(await browse(f"{base_url}/incidents/{recorded.incident_id}?token=forged.token",
                                     "--dump-dom"))
    assert "Invalid link" in text and "not valid" in text and recorded.incident_id not in text
