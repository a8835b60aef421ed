"""Files shared in Slack that recon reads: usage exports (CSV).

A file counts as a CSV export by its name (``.csv``), its ``filetype`` (``csv``) or its
MIME type (``text/csv``, ``application/csv``); anything else is left alone. ``offer``
asks ``files.info`` what the file is now (it may have been deleted, or be too large)
for the modal's "reconcile the attached export" option.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.export.fetch import SLACK_MAX_BYTES
from bot.slack.mentions import read_mentions
from bot.slack.modal import ExportOffer, Prefill

log = logging.getLogger(__name__)
CSV_TYPES = frozenset({"text/csv", "application/csv"})
MAX_NAME = 200


def is_csv(f: Mapping[str, Any]) -> bool:
    name = str(f.get("name") or "").lower()
    mimetype = str(f.get("mimetype") or "").split(";")[0].strip().lower()
    return name.endswith(".csv") or f.get("filetype") == "csv" or mimetype in CSV_TYPES


def csv_files(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The CSV files a message carries, with a usable id."""
    files: Sequence[Any] = message.get("files") or []
    return [f for f in files if isinstance(f, Mapping) and isinstance(f.get("id"), str) and is_csv(f)]


def file_name(f: Mapping[str, Any]) -> str:
    return str(f.get("name") or f.get("title") or f.get("id") or "file")[:MAX_NAME]


async def offer(client: AsyncWebClient, f: Mapping[str, Any]) -> tuple[ExportOffer | None, str | None]:
    """The export the modal may offer to reconcile, or why not (a remark for the form)."""
    fid = str(f["id"])
    try:
        info = (await client.files_info(file=fid))["file"]
    except SlackApiError as exc:
        log.info("files.info %s: %s", fid, exc.response.get("error"))
        return None, f"The attached file {file_name(f)} cannot be read by recon ({exc.response.get('error')})."
    name, size = file_name(info), int(info.get("size") or 0)
    if not is_csv(info):
        return None, None
    if size > SLACK_MAX_BYTES:
        return None, f"The attached export {name} is larger than {SLACK_MAX_BYTES // (1024 * 1024)} MB: not offered."
    return ExportOffer(fid, name, size), None


async def prefill(client: AsyncWebClient, message: Mapping[str, Any], now: datetime) -> Prefill:
    """What the modal is pre-filled with: the ids and window the message names, and its export."""
    got = Prefill(read_mentions(message, now))
    csvs = csv_files(message)
    if csvs:
        got.export, remark = await offer(client, csvs[0])
        if remark:
            got.remarks.append(remark)
        if len(csvs) > 1:
            got.remarks.append(f"Only the first CSV file ({file_name(csvs[0])}) is offered; "
                               "share the others in the incident's thread.")
    return got
