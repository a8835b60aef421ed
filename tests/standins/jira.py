"""A Jira Cloud REST v3 stand-in: issues, comments and the JQL search of a few projects.

Shapes (protocols.md §7): basic auth ``user:api_token`` (else 401); ``POST
/rest/api/3/issue`` with ``fields.project.key``, ``summary``, ``issuetype``, ``labels``
and an ADF ``description`` answers 201 ``{id, key, self}`` (400 with ``errors`` for a
missing summary, an unknown project, a description that is not ADF);
``POST /rest/api/3/issue/{key}/comment`` (ADF ``body``) 201; ``GET …/comment``
(``startAt``, ``maxResults``, ``total``); ``POST /rest/api/3/search/jql`` understands
``project = "K" AND labels = "L"`` and pages with ``nextPageToken`` (``isLast``); the
old ``/rest/api/3/search`` answers 410. Search is eventually consistent: with
``search_lags=True`` issues created after it was set are not found until ``index()``.
``empty_first_page=True`` makes a search answer an empty page with a ``nextPageToken``
first (as the enhanced search may).

Failure modes: ``script(…)`` (see ``tests.standins.github``), ``delay_s``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.standins import StandIn
from tests.standins.github import Scripted, scripted_answer

__all__ = ["JiraStandIn", "jira_standin"]


@dataclass(slots=True)
class JiraIssue:
    id: str
    key: str
    project: str
    fields: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)
    indexed: bool = True


class JiraStandIn(StandIn):
    name = "jira"

    def __init__(self, *, user: str = "bot@example.com", token: str = "jira-test-token",
                 projects: tuple[str, ...] = ("OPS",), delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.user = user
        self.token = token
        self.projects = set(projects)
        self.issues: list[JiraIssue] = []
        self.scripts: list[Scripted] = []
        self.search_lags = False
        self.empty_first_page = False

    async def __aenter__(self) -> JiraStandIn:
        await self.start()
        return self

    def script(self, status: int, body: Any = "", *, headers: Mapping[str, str] | None = None, times: int = 1,
               method: str | None = None, path_prefix: str = "") -> None:
        self.scripts.append(Scripted(status, body, dict(headers or {}), times, method, path_prefix))

    def index(self) -> None:
        for i in self.issues:
            i.indexed = True

    def creates(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.path == "/rest/api/3/issue")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/rest/api/3/issue", self._create),
            web.post("/rest/api/3/issue/{key}/comment", self._comment),
            web.get("/rest/api/3/issue/{key}/comment", self._comments),
            web.post("/rest/api/3/search/jql", self._search),
            web.get("/rest/api/3/search", self._gone),
            web.post("/rest/api/3/search", self._gone),
        ]

    def _gate(self, request: web.Request) -> web.Response | None:
        canned = scripted_answer(self.scripts, request)
        if canned is not None:
            return canned
        expected = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"errorMessages": ["You are not authenticated."], "errors": {}}, status=401)
        return None

    async def _create(self, request: web.Request) -> web.Response:
        if (gate := self._gate(request)) is not None:
            return gate
        body = await request.json()
        fields = body.get("fields") if isinstance(body, dict) else None
        errors = _create_errors(fields, self.projects)
        if errors:
            return web.json_response({"errorMessages": [], "errors": errors}, status=400)
        assert isinstance(fields, dict)
        project = fields["project"]["key"]
        n = len(self.issues) + 1
        issue = JiraIssue(str(10000 + n), f"{project}-{n}", project, dict(fields), indexed=not self.search_lags)
        self.issues.append(issue)
        return web.json_response({"id": issue.id, "key": issue.key,
                                  "self": f"{self.url}/rest/api/3/issue/{issue.id}"}, status=201)

    def _issue(self, key: str) -> JiraIssue | None:
        return next((i for i in self.issues if i.key == key), None)

    async def _comment(self, request: web.Request) -> web.Response:
        if (gate := self._gate(request)) is not None:
            return gate
        issue = self._issue(request.match_info["key"])
        if issue is None:
            return web.json_response({"errorMessages": ["Issue does not exist or you do not have permission "
                                                        "to see it."], "errors": {}}, status=404)
        body = await request.json()
        if not _is_adf(body.get("body") if isinstance(body, dict) else None):
            return web.json_response({"errorMessages": [], "errors": {"comment": "Comment body is not valid"}},
                                     status=400)
        comment = {"id": str(20000 + len(issue.comments)), "body": body["body"]}
        issue.comments.append(comment)
        return web.json_response(comment, status=201)

    async def _comments(self, request: web.Request) -> web.Response:
        if (gate := self._gate(request)) is not None:
            return gate
        issue = self._issue(request.match_info["key"])
        if issue is None:
            return web.json_response({"errorMessages": ["Issue does not exist"], "errors": {}}, status=404)
        start = int(request.query.get("startAt", "0"))
        size = min(100, int(request.query.get("maxResults", "50")))
        return web.json_response({"startAt": start, "maxResults": size, "total": len(issue.comments),
                                  "comments": issue.comments[start:start + size]})

    async def _search(self, request: web.Request) -> web.Response:
        if (gate := self._gate(request)) is not None:
            return gate
        body = await request.json()
        jql = str(body.get("jql", ""))
        project = re.search(r'project = "([^"]+)"', jql)
        label = re.search(r'labels = "([^"]+)"', jql)
        if project is None:
            return web.json_response({"errorMessages": ["Error in the JQL Query"], "errors": {}}, status=400)
        token = body.get("nextPageToken")
        if self.empty_first_page and token is None:
            return web.json_response({"issues": [], "nextPageToken": _token(0), "isLast": False})
        start = int(base64.b64decode(token).decode()) if token else 0
        size = int(body.get("maxResults", 50))
        found = [i for i in self.issues if i.indexed and i.project == project.group(1)
                 and (label is None or label.group(1) in i.fields.get("labels", []))]
        page = found[start:start + size]
        out: dict[str, Any] = {"issues": [{"id": i.id, "key": i.key, "fields": {
            "summary": i.fields.get("summary"), "labels": i.fields.get("labels", [])}} for i in page]}
        if start + size < len(found):
            out["nextPageToken"] = _token(start + size)
        else:
            out["isLast"] = True
        return web.json_response(out)

    async def _gone(self, request: web.Request) -> web.Response:
        return web.json_response({"errorMessages": ["The requested API has been removed. Please migrate to the "
                                                    "/rest/api/3/search/jql API."]}, status=410)


def _token(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _is_adf(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("type") == "doc" and doc.get("version") == 1 \
        and isinstance(doc.get("content"), list)


def _create_errors(fields: Any, projects: set[str]) -> dict[str, str]:
    if not isinstance(fields, dict):
        return {"fields": "fields are required"}
    errors: dict[str, str] = {}
    project = fields.get("project")
    if not isinstance(project, dict) or project.get("key") not in projects:
        errors["project"] = "valid project is required"
    if not fields.get("summary"):
        errors["summary"] = "You must specify a summary of the issue."
    if not isinstance(fields.get("issuetype"), dict):
        errors["issuetype"] = "valid issue type is required"
    if "description" in fields and not _is_adf(fields["description"]):
        errors["description"] = "Operation value must be an Atlassian Document"
    return errors


@pytest.fixture
async def jira_standin() -> AsyncIterator[JiraStandIn]:
    """A started ``JiraStandIn`` with the project ``OPS``, no issues."""
    async with JiraStandIn() as s:
        yield s
