"""Follow-up tickets as GitHub issues (REST, ``Authorization: Bearer``).

- create: ``POST /repos/{owner}/{repo}/issues`` (title, Markdown body with the hidden
  marker ``<!-- recon:incident=…:layer=… -->``, labels ``recon`` and ``recon:<layer>``);
- find: ``GET /search/issues`` first (cheap, but its index lags behind writes: a hit is
  used, a miss proves nothing), then the authoritative, read-your-writes listing
  ``GET /repos/{owner}/{repo}/issues?labels=recon&state=all&since=…``, page by page
  (``Link: rel="next"``), each body checked for the marker;
- comment: ``POST /repos/{owner}/{repo}/issues/{n}/comments``; a comment's own marker is
  looked up in ``GET …/issues/{n}/comments`` (read-your-writes) before posting again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.errors import TrackerFailure, TrackerRetryable
from bot.tracker.http import TrackerHttp, next_link
from bot.tracker.model import Ticket, TicketSpec
from bot.tracker.render import Doc, ticket_doc, to_markdown
from bot.tracker.settings import TrackerConfig

log = logging.getLogger(__name__)

LABEL = "recon"
MAX_PAGES = 20  # of 100 issues each, in one lookup
SINCE_SLACK = timedelta(hours=1)  # clocks differ


class GitHubTracker:
    name = "github"
    lookup_lag_s = 0.0  # the issues list is read-your-writes

    def __init__(self, config: TrackerConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        token = config.token.get_secret_value()
        self._http = TrackerHttp(
            "github", config.base_url,
            {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
             "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "recon"},
            timeout_s=config.timeout_s, secrets=[token], client=client)

    def target_for(self, layer: str) -> str:
        return self._config.target_for(layer)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ lookups

    async def find(self, spec: TicketSpec, *, since: datetime | None) -> Ticket | None:
        repo = self.target_for(spec.layer)
        hidden = f"<!-- {spec.marker} -->"
        try:
            hit = await self._search(repo, spec.marker, hidden)
        except TrackerFailure as exc:  # a hint only: the listing below decides
            log.info("github search skipped: %s", exc)
            hit = None
        if hit is not None:
            return hit
        params = {"labels": LABEL, "state": "all", "per_page": "100", "sort": "created", "direction": "desc"}
        if since is not None:
            params["since"] = (since.astimezone(UTC) - SINCE_SLACK).strftime("%Y-%m-%dT%H:%M:%SZ")
        async for item in self._pages(f"/repos/{repo}/issues", params):
            if "pull_request" not in item and _ends_with(item, hidden):
                return self._ticket(repo, item)
        return None

    async def _search(self, repo: str, text: str, hidden: str) -> Ticket | None:
        params = {"q": f'"{text}" repo:{repo} in:body', "per_page": "20"}
        resp = await self._http.request("GET", "/search/issues", params=params)
        body = self._http.json("GET /search/issues", resp)
        for item in body.get("items", []) if isinstance(body, dict) else []:
            if isinstance(item, dict) and _ends_with(item, hidden) and "pull_request" not in item:
                return self._ticket(repo, item)
        return None

    async def _pages(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paged list (``Link: rel="next"``), at most ``MAX_PAGES`` pages."""
        resp = await self._http.request("GET", path, params=params)
        for _ in range(MAX_PAGES):
            items = self._http.json(f"GET {path}", resp)
            if not isinstance(items, list):
                raise TrackerRetryable("github", f"GET {path}: the answer is not a list")
            for item in _dicts(items):
                yield item
            url = next_link(resp)
            if url is None:
                return
            resp = await self._http.request("GET", path, url=url)
        log.warning("github: GET %s has more than %d pages; the rest was not read", path, MAX_PAGES)

    def _ticket(self, repo: str, item: Mapping[str, Any]) -> Ticket:
        number = item.get("number")
        url = item.get("html_url")
        if not isinstance(number, int) or not isinstance(url, str):
            raise TrackerRetryable("github", "an issue without number or html_url")
        return Ticket("github", repo, f"#{number}", url, number)

    # ------------------------------------------------------------ writes

    async def create(self, spec: TicketSpec) -> Ticket:
        repo = self.target_for(spec.layer)
        body = {"title": spec.title, "body": to_markdown(ticket_doc(spec)),
                "labels": [LABEL, f"recon:{spec.layer}"]}
        resp = await self._http.request("POST", f"/repos/{repo}/issues", json_body=body)
        item = self._http.json(f"POST /repos/{repo}/issues", resp)
        if not isinstance(item, dict):
            raise TrackerRetryable("github", "the created issue is not an object")
        return self._ticket(repo, item)

    async def has_comment(self, ticket: Ticket, comment_marker: str) -> bool:
        hidden = f"<!-- {comment_marker} -->"
        path = f"/repos/{ticket.target}/issues/{ticket.number}/comments"
        async for item in self._pages(path, {"per_page": "100"}):
            if _ends_with(item, hidden):
                return True
        return False

    async def comment(self, ticket: Ticket, doc: Doc) -> None:
        path = f"/repos/{ticket.target}/issues/{ticket.number}/comments"
        await self._http.request("POST", path, json_body={"body": to_markdown(doc)})


def _dicts(items: list[Any]) -> Iterator[dict[str, Any]]:
    return (i for i in items if isinstance(i, dict))


def _ends_with(item: Mapping[str, Any], hidden: str) -> bool:
    """Whether the body ends with the marker: recon writes it last, so a marker quoted
    inside a body (an id, a person's text) is not taken for one."""
    return str(item.get("body") or "").rstrip().endswith(hidden)
