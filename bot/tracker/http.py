"""One HTTP call to a tracker, its failures sorted into retryable and permanent.

- no answer (refused, reset, timed out), 5xx, 408: ``TrackerRetryable`` (back off);
- 429, or 403 with ``Retry-After`` (GitHub's secondary limits) or with
  ``x-ratelimit-remaining: 0`` (GitHub's primary limit): ``TrackerRetryable`` with the
  delay asked for (``Retry-After`` seconds or date; else ``x-ratelimit-reset`` less now);
- 401, 403, 404, 410, 422 and other 4xx: ``TrackerRejected``;
- a 2xx whose body is not the JSON expected: ``TrackerRetryable`` (a proxy's page; the
  marker lookup makes retrying a create safe).

Messages carry the tracker's name, the method and path, the status and the tracker's
own reason (its ``message`` / ``errorMessages``, capped), never a header; every secret
the client knows is scrubbed from them all the same.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.errors import TrackerRejected, TrackerRetryable

log = logging.getLogger(__name__)

MAX_REASON = 300
DEFAULT_RATE_LIMIT_WAIT_S = 60.0  # GitHub: "wait at least one minute" when no header says


class TrackerHttp:
    """An httpx client for one tracker: base URL, auth headers, timeout, classification."""

    def __init__(self, name: str, base_url: str, headers: Mapping[str, str], *, timeout_s: float,
                 secrets: Sequence[str], client: httpx.AsyncClient | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._secrets = tuple(s for s in secrets if s)
        self._owns = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_s)
        self.timeout_s = timeout_s

    async def aclose(self) -> None:
        if self._owns:
            await self._client.aclose()

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      json_body: Any = None, url: str | None = None) -> httpx.Response:
        """The answer (2xx), or a ``TrackerFailure``. ``url``: a full URL to follow (a
        ``Link: rel=next``), which must stay on the tracker's host."""
        target = url or self.base_url + path
        what = f"{method} {path if url is None else httpx.URL(url).path}"
        if url is not None and httpx.URL(url).host != httpx.URL(self.base_url).host:
            raise TrackerRejected(self.name, f"{what}: a next-page link to another host")
        try:
            resp = await self._client.request(method, target, params=params, json=json_body,
                                              headers=self._headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise TrackerRetryable(self.name, f"{what}: no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise TrackerRetryable(self.name, self.scrub(f"{what}: {type(exc).__name__}: {exc}")) from None
        if resp.is_success:
            return resp
        raise self.classify(what, resp)

    def classify(self, what: str, resp: httpx.Response) -> TrackerRetryable | TrackerRejected:
        status = resp.status_code
        reason = self.scrub(f"{what}: {status} {_reason(resp)}")
        delay = _retry_after(resp.headers)
        limited = resp.headers.get("x-ratelimit-remaining") == "0"
        secondary = status == 403 and "secondary rate limit" in resp.text[:2000].lower()
        if status == 429 or (status == 403 and (delay is not None or limited or secondary)):
            wait = delay if delay is not None else (_reset_wait(resp.headers) if limited else None)
            err: TrackerRetryable | TrackerRejected = TrackerRetryable(
                self.name, f"{reason} (rate-limited)", retry_after_s=wait if wait is not None
                else DEFAULT_RATE_LIMIT_WAIT_S)
        elif status >= 500 or status == 408:
            err = TrackerRetryable(self.name, reason, retry_after_s=delay)
        else:
            err = TrackerRejected(self.name, reason, http_status=status)
        log.warning("%s: %s", type(err).__name__, err)
        return err

    def json(self, what: str, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TrackerRetryable(self.name, f"{what}: {resp.status_code} with a body that is not JSON") from None


def _reason(resp: httpx.Response) -> str:
    """The tracker's own words: GitHub's ``message`` (+ ``errors``), Jira's
    ``errorMessages`` / ``errors``; else the reason phrase. Capped."""
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            parts.append(body["message"])
        msgs = body.get("errorMessages")
        if isinstance(msgs, list):
            parts += [m for m in msgs if isinstance(m, str)]
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items() if isinstance(v, str)]
        elif isinstance(errors, list):
            parts += [json.dumps(e, sort_keys=True)[:100] for e in errors[:3]]
    text = "; ".join(parts) or resp.reason_phrase or "error"
    return text.replace("\n", " ")[:MAX_REASON]


def _retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        value = when.timestamp() - time.time()
    if not math.isfinite(value):
        return None
    return max(0.0, value)


def _reset_wait(headers: httpx.Headers) -> float | None:
    """Seconds until ``x-ratelimit-reset`` (epoch seconds), at least 1; None if absent."""
    try:
        reset = float(headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    return max(1.0, reset - time.time()) if math.isfinite(reset) else None


def next_link(resp: httpx.Response) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, or None."""
    link = resp.links.get("next")
    url = link.get("url") if link else None
    return url or None
