"""A GitHub REST stand-in: issues, comments and issue search of a few repositories.

It serves the shapes protocols.md §7 lists: ``Authorization: Bearer <token>`` (else 401
``Bad credentials``); ``POST /repos/{o}/{r}/issues`` (201 with ``number``,
``html_url``; 422 ``Validation Failed`` without a title; 404 for an unknown repo);
``GET /repos/{o}/{r}/issues`` (``labels``, ``state``, ``since``, ``per_page``, ``page``;
pull requests included as GitHub does; ``Link`` with ``rel="next"``/``"last"``);
comments (``POST``/``GET …/issues/{n}/comments``, paged the same way); and
``GET /search/issues?q="…" repo:o/r in:body``, whose index lags: with
``search_lags=True`` an issue created after it was set is not found until ``index()``.
Every answer carries ``x-ratelimit-remaining`` and ``x-ratelimit-reset``.

Failure modes, beyond the base ``StandIn``'s: ``script(status, body, headers=…,
times=…, method=…, path_prefix=…)`` answers the next matching requests that way (429
with ``Retry-After``, 403 with ``x-ratelimit-remaining: 0``, 500 …); ``delay_s`` for
timeouts.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from tests.standins import StandIn

__all__ = ["GitHubStandIn", "Scripted", "github_standin"]


@dataclass(slots=True)
class Scripted:
    """A canned answer for the next ``times`` requests matching ``method``/``path_prefix``."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    times: int = 1
    method: str | None = None
    path_prefix: str = ""

    def matches(self, request: web.Request) -> bool:
        return (self.method is None or request.method == self.method) and request.path.startswith(self.path_prefix)


def scripted_answer(scripts: list[Scripted], request: web.Request) -> web.Response | None:
    for s in scripts:
        if s.times > 0 and s.matches(request):
            s.times -= 1
            if s.times == 0:
                scripts.remove(s)
            body = s.body if isinstance(s.body, str) else json.dumps(s.body)
            ctype = "text/plain" if isinstance(s.body, str) else "application/json"
            return web.Response(status=s.status, text=body, content_type=ctype, headers=dict(s.headers))
    return None


@dataclass(slots=True)
class Issue:
    number: int
    repo: str
    title: str
    body: str
    labels: list[str]
    created_at: datetime
    state: str = "open"
    pull_request: bool = False
    comments: list[dict[str, Any]] = field(default_factory=list)
    indexed: bool = True

    def json(self, base: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "number": self.number, "title": self.title, "body": self.body, "state": self.state,
            "labels": [{"name": n} for n in self.labels],
            "html_url": f"{base}/{self.repo}/issues/{self.number}",
            "created_at": _iso(self.created_at), "updated_at": _iso(self.created_at),
        }
        if self.pull_request:
            d["pull_request"] = {"url": f"{base}/{self.repo}/pull/{self.number}"}
        return d


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubStandIn(StandIn):
    name = "github"

    def __init__(self, *, token: str = "ghp-test-token", repos: tuple[str, ...] = ("acme/billing",),
                 delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.token = token
        self.repos = set(repos)
        self.issues: list[Issue] = []
        self.scripts: list[Scripted] = []
        self.search_lags = False
        self.create_delay_s = 0.0

    async def __aenter__(self) -> GitHubStandIn:
        await self.start()
        return self

    # ------------------------------------------------------------ knobs

    def script(self, status: int, body: Any = "", *, headers: Mapping[str, str] | None = None, times: int = 1,
               method: str | None = None, path_prefix: str = "") -> None:
        self.scripts.append(Scripted(status, body, dict(headers or {}), times, method, path_prefix))

    def index(self) -> None:
        """The search index catches up."""
        for i in self.issues:
            i.indexed = True

    def add_issue(self, repo: str, title: str, body: str = "", labels: tuple[str, ...] = (),
                  *, pull_request: bool = False) -> Issue:
        issue = Issue(len(self.issues) + 1, repo, title, body, list(labels), datetime.now(UTC),
                      pull_request=pull_request, indexed=not self.search_lags)
        self.issues.append(issue)
        return issue

    def issues_of(self, repo: str) -> list[Issue]:
        return [i for i in self.issues if i.repo == repo and not i.pull_request]

    def creates(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.path.endswith("/issues"))

    # ------------------------------------------------------------ routes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/repos/{owner}/{repo}/issues", self._create),
            web.get("/repos/{owner}/{repo}/issues", self._list),
            web.post("/repos/{owner}/{repo}/issues/{number}/comments", self._comment),
            web.get("/repos/{owner}/{repo}/issues/{number}/comments", self._comments),
            web.get("/search/issues", self._search),
        ]

    def _answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        h = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999",
             "x-ratelimit-reset": str(int(time.time()) + 3600), **(headers or {})}
        return web.json_response(body, status=status, headers=h)

    async def _gate(self, request: web.Request) -> web.Response | None:
        canned = scripted_answer(self.scripts, request)
        if canned is not None:
            return canned
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com"})
        repo = f"{request.match_info.get('owner')}/{request.match_info.get('repo')}"
        if "owner" in request.match_info and repo not in self.repos:
            return self._answer(404, {"message": "Not Found"})
        return None

    async def _create(self, request: web.Request) -> web.Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        body = await request.json()
        if self.create_delay_s:  # widens the window two racing creators would share
            await asyncio.sleep(self.create_delay_s)
        if not isinstance(body, dict) or not body.get("title"):
            return self._answer(422, {"message": "Validation Failed", "errors": [
                {"resource": "Issue", "field": "title", "code": "missing_field"}]})
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        issue = self.add_issue(repo, str(body["title"]), str(body.get("body") or ""),
                               tuple(str(x) for x in body.get("labels") or ()))
        return self._answer(201, issue.json(self.url))

    def _page(self, request: web.Request, items: list[Any]) -> web.Response:
        per_page = min(100, int(request.query.get("per_page", "30")))
        page = max(1, int(request.query.get("page", "1")))
        chunk = items[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            for rel, n in (("next", page + 1), ("last", last)):
                q = {**request.query, "page": str(n)}
                links.append(f'<{self.url}{request.path}?{urlencode(q)}>; rel="{rel}"')
        return self._answer(200, chunk, {"Link": ", ".join(links)} if links else None)

    async def _list(self, request: web.Request) -> web.Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        wanted = [x for x in request.query.get("labels", "").split(",") if x]
        state = request.query.get("state", "open")
        since = request.query.get("since")
        found = [i for i in self.issues if i.repo == repo and all(w in i.labels for w in wanted)
                 and (state == "all" or i.state == state)
                 and (since is None or _iso(i.created_at) >= since)]
        if request.query.get("direction", "desc") == "desc":
            found = list(reversed(found))
        return self._page(request, [i.json(self.url) for i in found])

    def _issue(self, request: web.Request) -> Issue | None:
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        number = int(request.match_info["number"])
        return next((i for i in self.issues if i.repo == repo and i.number == number), None)

    async def _comment(self, request: web.Request) -> web.Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        issue = self._issue(request)
        if issue is None:
            return self._answer(404, {"message": "Not Found"})
        body = await request.json()
        if not isinstance(body, dict) or not body.get("body"):
            return self._answer(422, {"message": "Validation Failed"})
        comment = {"id": 1000 + len(issue.comments), "body": body["body"]}
        issue.comments.append(comment)
        return self._answer(201, comment)

    async def _comments(self, request: web.Request) -> web.Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        issue = self._issue(request)
        if issue is None:
            return self._answer(404, {"message": "Not Found"})
        return self._page(request, list(issue.comments))

    async def _search(self, request: web.Request) -> web.Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        q = request.query.get("q", "")
        phrase = re.search(r'"([^"]*)"', q)
        repo = re.search(r"repo:(\S+)", q)
        items = [i for i in self.issues if i.indexed and (repo is None or i.repo == repo.group(1))
                 and (phrase is None or phrase.group(1) in i.body)]
        return self._answer(200, {"total_count": len(items), "incomplete_results": False,
                                  "items": [i.json(self.url) for i in items]})


@pytest.fixture
async def github_standin() -> AsyncIterator[GitHubStandIn]:
    """A started ``GitHubStandIn`` with the repository ``acme/billing``, no issues."""
    async with GitHubStandIn() as s:
        yield s
