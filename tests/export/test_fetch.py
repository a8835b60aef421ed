"""Exports over HTTP: the billing API's endpoint (BILLING_EXPORT_URL) and a Slack file, from a
loopback stand-in; failures are the export source's, and never show a token or a query."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import ConfigError, SourceError, SourceUnavailable
from bot.export.csvfile import ExportInvalid
from bot.export.fetch import check_template, download_slack_file, fetch_billing_exports
from bot.export.run import reconcile_export
from bot.sources.billing import PostgresBillingReader
from tests.export.conftest import ORG, faithful_csv
from tests.standins import dead_url
from tests.standins.export_api import ExportApiStandIn

TOKEN = "exp-secret-token-123"


async def test_the_billing_api_export_of_each_month_is_one_export(billing: PostgresBillingReader) -> None:
    async with ExportApiStandIn(token=TOKEN) as api, httpx.AsyncClient(timeout=5) as client:
        api.put(ORG, "2026-11", (await faithful_csv(billing)).encode())
        api.put(ORG, "2026-10", (await faithful_csv(billing, ("2026-10",))).encode())
        f = await fetch_billing_exports(client, api.template, TOKEN, ORG, None, ["2026-11", "2026-10"])
        got = await reconcile_export(f, billing, months=["2026-10", "2026-11"])
        assert got.faithful, got.findings
        assert got.read.months == ["2026-10", "2026-11"] and got.read.lines == 9
        assert got.read.origin.startswith("BILLING_EXPORT_URL http://127.0.0.1:")
        assert [r.params["month"] for r in api.requests] == ["2026-10", "2026-11"]
        assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in api.requests)


async def test_a_malformed_fetched_export_names_its_month_line_and_column(billing: PostgresBillingReader) -> None:
    async with ExportApiStandIn() as api, httpx.AsyncClient(timeout=5) as client:
        api.put(ORG, "2026-11", (await faithful_csv(billing)).replace(",1200,", ",12.5,", 1).encode())
        f = await fetch_billing_exports(client, api.template, None, ORG, None, ["2026-11"])
        with pytest.raises(ExportInvalid, match=r"usage export of 2026-11, line \d+, column amount_minor"):
            await reconcile_export(f, billing)


@pytest.mark.parametrize("setup, error, words", [
    ("unauthorized", SourceError, "answered HTTP 401"),
    ("missing", SourceError, "answered HTTP 404"),
    ("down", SourceUnavailable, "answered HTTP 503"),
    ("html", SourceError, "answered text/html, not a CSV export"),
])
async def test_endpoint_failures(setup: str, error: type[Exception], words: str) -> None:
    async with ExportApiStandIn(token=TOKEN) as api, httpx.AsyncClient(timeout=5) as client:
        api.put(ORG, "2026-11", b"billing_month\r\n")
        token: str | None = TOKEN
        if setup == "unauthorized":
            token = "wrong"
        elif setup == "down":
            api.fail(503)
        elif setup == "html":
            api.respond(200, "<html>login</html>", content_type="text/html")
        months = ["2026-09"] if setup == "missing" else ["2026-11"]
        with pytest.raises(error) as e:
            await fetch_billing_exports(client, api.template + "&sig=zzz", token, ORG, None, months)
        assert words in str(e.value)
        assert "sig=zzz" not in str(e.value) and TOKEN not in str(e.value) and "month=" not in str(e.value)


async def test_unreachable_and_slow_endpoints_are_unavailable() -> None:
    async with httpx.AsyncClient(timeout=0.2) as client:
        with pytest.raises(SourceUnavailable, match="cannot reach"):
            await fetch_billing_exports(client, dead_url() + "/{org_id}/{month}", None, ORG, None, ["2026-11"])
        async with ExportApiStandIn(delay_s=5) as api:
            with pytest.raises(SourceUnavailable, match="timed out"):
                await fetch_billing_exports(client, api.template, None, ORG, None, ["2026-11"])


async def test_a_fetched_export_over_the_cap_is_refused() -> None:
    async with ExportApiStandIn() as api, httpx.AsyncClient(timeout=5) as client:
        api.put(ORG, "2026-11", b"x" * 5000)
        with pytest.raises(ExportInvalid, match="larger than 1,000 bytes"):
            await fetch_billing_exports(client, api.template, None, ORG, None, ["2026-11"], max_bytes=1000)


@pytest.mark.parametrize("template", ["https://billing/{org}/{month}", "https://billing/{org_id}", "ftp://x/{org_id}/{month}"])
def test_a_bad_template_names_the_setting(template: str) -> None:
    with pytest.raises(ConfigError, match="BILLING_EXPORT_URL"):
        check_template(template)


async def test_a_slack_file_needs_the_bot_token(billing: PostgresBillingReader) -> None:
    async with ExportApiStandIn(token="xoxb-bot") as api, httpx.AsyncClient(timeout=5) as client:
        url = api.put_file("usage.csv", (await faithful_csv(billing)).encode())
        f = await download_slack_file(client, url, "xoxb-bot", "usage.csv")
        got = await reconcile_export(f, billing)
        assert got.faithful and got.read.origin == "Slack file usage.csv"
        with pytest.raises(SourceError, match="files:read"):
            await download_slack_file(client, url, "xoxb-other", "usage.csv")
        with pytest.raises(ExportInvalid, match="larger than"):
            await download_slack_file(client, url, "xoxb-bot", "usage.csv", max_bytes=100)
