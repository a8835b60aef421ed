"""Exports that come over HTTP: the billing API's export endpoint, and a file shared in Slack.

- ``fetch_billing_exports``: ``BILLING_EXPORT_URL`` is a template with ``{org_id}``,
  ``{month}`` (``YYYY-MM``) and optionally ``{project_id}``; one request per month of
  the scope (bearer ``BILLING_EXPORT_TOKEN`` when set), the bodies read as one export.
- ``download_slack_file``: a CSV shared in an incident's thread, downloaded from its
  ``url_private_download`` with the bot token (scope ``files:read``). Without that
  scope Slack answers 200 with an HTML sign-in page, so the content type is checked.

Bodies are streamed to temporary files within the size cap (a larger one is refused as
soon as it passes the cap); an answer that is not a CSV export is refused. Failures are
``SourceUnavailable`` / ``SourceError`` of the source ``export``, whose messages name the
host and path only: never a token, a query string or credentials in the URL.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import IO
from urllib.parse import quote, urlsplit

import httpx

from bot.errors import ConfigError, SourceError, SourceUnavailable
from bot.export.csvfile import DEFAULT_MAX_BYTES, ExportFile, ExportInvalid

SOURCE = "export"
SLACK_MAX_BYTES = 50 * 1024 * 1024
_NOT_CSV = ("text/html", "application/json", "application/xml", "text/xml")
_FIELDS = ("org_id", "month", "project_id")


def shown_url(url: str) -> str:
    """scheme://host/path of a URL: no credentials, no query, for messages and evidence."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if p.port:
            host += f":{p.port}"
        return f"{p.scheme}://{host}{p.path}"
    except ValueError:
        return "(an unreadable URL)"


def check_template(template: str) -> None:
    """``BILLING_EXPORT_URL`` must name ``{org_id}`` and ``{month}`` and nothing else."""
    try:
        probe = template.format_map(dict.fromkeys(_FIELDS, "x"))
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"BILLING_EXPORT_URL: a placeholder other than {{org_id}}, {{month}}, "
                          f"{{project_id}} ({e})") from None
    if "{org_id}" not in template or "{month}" not in template:
        raise ConfigError("BILLING_EXPORT_URL must contain {org_id} and {month}")
    if urlsplit(probe).scheme not in ("http", "https"):
        raise ConfigError("BILLING_EXPORT_URL must be an http(s) URL")


async def fetch_billing_exports(client: httpx.AsyncClient, template: str, token: str | None, org_id: str,
                                project_id: str | None, months: Sequence[str],
                                max_bytes: int = DEFAULT_MAX_BYTES) -> ExportFile:
    """The export of each month, as one ``ExportFile`` (closed by the caller)."""
    check_template(template)
    headers = {"Accept": "text/csv"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    parts: list[tuple[str, IO[bytes]]] = []
    try:
        for month in sorted(set(months)):
            url = template.format_map({"org_id": quote(org_id, safe=""), "month": quote(month, safe=""),
                                       "project_id": quote(project_id or "", safe="")})
            parts.append((f"of {month}, ", await _download(client, url, headers, max_bytes)))
    except BaseException:
        for _, s in parts:
            s.close()
        raise
    return ExportFile(parts, f"BILLING_EXPORT_URL {shown_url(template)}", max_bytes=max_bytes,
                      expected_org=org_id)


async def download_slack_file(client: httpx.AsyncClient, url: str, bot_token: str, name: str,
                              max_bytes: int = SLACK_MAX_BYTES, expected_org: str | None = None) -> ExportFile:
    """A file shared in Slack, downloaded with the bot token."""
    stream = await _download(client, url, {"Authorization": f"Bearer {bot_token}"}, max_bytes,
                             html_hint="the bot could not download it: does the app have the files:read scope?")
    return ExportFile([("", stream)], f"Slack file {name}", max_bytes=max_bytes, expected_org=expected_org)


async def _download(client: httpx.AsyncClient, url: str, headers: dict[str, str], max_bytes: int,
                    html_hint: str = "") -> IO[bytes]:
    where = shown_url(url)
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, closed by the ExportFile
    try:
        async with client.stream("GET", url, headers=headers, follow_redirects=True) as r:
            if r.status_code != 200:
                cls = SourceUnavailable if r.status_code >= 500 or r.status_code == 429 else SourceError
                raise cls(SOURCE, f"{where} answered HTTP {r.status_code}")
            kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind in _NOT_CSV:
                raise SourceError(SOURCE, f"{where} answered {kind}, not a CSV export"
                                  + (f": {html_hint}" if html_hint and kind == "text/html" else ""))
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ExportInvalid(f"the file is larger than {max_bytes:,} bytes")
            size = 0
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ExportInvalid(f"the file is larger than {max_bytes:,} bytes")
                tmp.write(chunk)
    except httpx.TimeoutException:
        tmp.close()
        raise SourceUnavailable(SOURCE, f"{where} timed out") from None
    except httpx.HTTPError as e:
        tmp.close()
        raise SourceUnavailable(SOURCE, f"cannot reach {where}: {type(e).__name__}") from None
    except BaseException:
        tmp.close()
        raise
    tmp.seek(0)
    return tmp
