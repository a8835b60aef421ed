"""A usage export shared as a file in Slack, read and reconciled before a diagnosis.

``files.info`` gives the file's ``url_private_download``; it is downloaded with the bot
token (scope ``files:read``), at most 50 MB, its content type checked (without the
scope Slack answers 200 with an HTML sign-in page), and reconciled against the billing
database (``ExportReady``). The token goes only to Slack's file host (or the host of
``SLACK_API_URL``, a proxy or a test stand-in), never to a URL of another host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SourceError, SourceFailure, SourceUnavailable
from bot.export.csvfile import ExportInvalid
from bot.export.fetch import SLACK_MAX_BYTES, SOURCE, download_slack_file
from bot.export.request import ExportReady
from bot.export.run import reconcile_export
from bot.render.mrkdwn import esc
from bot.settings import Settings
from bot.sources.protocols import BillingReader

SLACK_FILE_HOSTS = frozenset({"files.slack.com", "slack-files.com"})
MAX_SHOWN_NAME = 100


def file_host_allowed(url: str, settings: Settings) -> bool:
    try:
        p = urlsplit(url)
    except ValueError:
        return False
    hosts = set(SLACK_FILE_HOSTS)
    if settings.slack_api_url:
        hosts.add(urlsplit(settings.slack_api_url).hostname or "")
    return p.scheme in ("https", "http") and (p.hostname or "") in hosts and \
        (p.scheme == "https" or p.hostname not in SLACK_FILE_HOSTS)


async def read_slack_export(slack: AsyncWebClient, settings: Settings, billing: BillingReader | None, file_id: str,
                            *, expected_org: str | None = None, project_id: str | None = None) -> ExportReady:
    """The shared file, read and reconciled. ``ExportInvalid``: the file is bad (line and
    column named); ``SourceFailure``: it could not be fetched, or the billing database
    could not be read."""
    if billing is None:
        raise SourceUnavailable("billing", "the billing database is not available")
    try:
        info = (await slack.files_info(file=file_id))["file"]
    except SlackApiError as exc:
        raise SourceError(SOURCE, f"Slack's files.info answered {exc.response.get('error')}") from None
    url, name = str(info.get("url_private_download") or ""), str(info.get("name") or file_id)
    if int(info.get("size") or 0) > SLACK_MAX_BYTES:
        raise ExportInvalid(f"the file is larger than {SLACK_MAX_BYTES:,} bytes")
    if not file_host_allowed(url, settings):
        raise SourceError(SOURCE, "the file's download URL is not on Slack's file host")
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    async with httpx.AsyncClient(timeout=settings.export_timeout_s) as client:
        export = await download_slack_file(client, url, token, name[:MAX_SHOWN_NAME], expected_org=expected_org)
        try:
            return ExportReady(await reconcile_export(export, billing, project_id=project_id))
        finally:
            export.close()


def export_problem_text(name: str, exc: ExportInvalid | SourceFailure) -> str:
    """The reply in the thread: which file, what is wrong (its line and column), what now."""
    shown = esc(name[:MAX_SHOWN_NAME])
    if isinstance(exc, ExportInvalid):
        return (f":warning: The usage export *{shown}* was not read: {esc(str(exc))}. Nothing was reconciled; "
                "fix the file and share it in this thread again.")
    return f":warning: The usage export *{shown}* could not be fetched or reconciled: {esc(exc.reason)}."

