"""Follow-up tickets as Jira Cloud issues (REST v3, basic auth with ``user:api_token``).

- create: ``POST /rest/api/3/issue`` (project, summary, issue type, labels ``recon``,
  ``recon-<layer>`` and the marker label ``recon-<hash>``, ADF description ending with
  the marker text) answers 201 ``{id, key, self}``;
- find: ``POST /rest/api/3/search/jql`` by the marker label, paged with
  ``nextPageToken``. Search is eventually consistent, so ``lookup_lag_s`` tells
  ``ensure_ticket`` how long a miss proves nothing after an attempt to create;
- comment: ``POST /rest/api/3/issue/{key}/comment`` (ADF); a comment's marker is looked
  up in ``GET /rest/api/3/issue/{key}/comment`` (the issue itself: no search index).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import httpx

from bot.errors import TrackerRetryable
from bot.tracker.http import TrackerHttp
from bot.tracker.model import Ticket, TicketSpec
from bot.tracker.render import Doc, adf_text, ticket_doc, to_adf
from bot.tracker.settings import TrackerConfig

LABEL = "recon"
MAX_PAGES = 20
PAGE = 50
DEFAULT_LOOKUP_LAG_S = 120.0
ISSUE_KEY_RE = re.compile(r"[A-Z][A-Z0-9_]{0,49}-[0-9]{1,12}")


class JiraTracker:
    name = "jira"

    def __init__(self, config: TrackerConfig, *, client: httpx.AsyncClient | None = None,
                 issue_type: str = "Task", lookup_lag_s: float = DEFAULT_LOOKUP_LAG_S) -> None:
        self._config = config
        self.issue_type = issue_type
        self.lookup_lag_s = lookup_lag_s
        token = config.token.get_secret_value()
        basic = base64.b64encode(f"{config.user}:{token}".encode()).decode("ascii")
        self._http = TrackerHttp(
            "jira", config.base_url,
            {"Authorization": f"Basic {basic}", "Accept": "application/json", "User-Agent": "recon"},
            timeout_s=config.timeout_s, secrets=[token, basic], client=client)

    def target_for(self, layer: str) -> str:
        return self._config.target_for(layer)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _ticket(self, project: str, key: Any) -> Ticket:
        if not isinstance(key, str) or not ISSUE_KEY_RE.fullmatch(key):
            raise TrackerRetryable("jira", "an issue without a key of the shape PROJECT-123")
        return Ticket("jira", project, key, f"{self._config.base_url}/browse/{key}")

    async def find(self, spec: TicketSpec, *, since: datetime | None) -> Ticket | None:
        project = self.target_for(spec.layer)
        # both values are checked shapes (project key; recon-<hex>): nothing to escape
        jql = f'project = "{project}" AND labels = "{spec.marker_label}" ORDER BY created ASC'
        token: str | None = None
        for _ in range(MAX_PAGES):
            body: dict[str, Any] = {"jql": jql, "fields": ["summary", "labels"], "maxResults": PAGE}
            if token:
                body["nextPageToken"] = token
            resp = await self._http.request("POST", "/rest/api/3/search/jql", json_body=body)
            page = self._http.json("POST /rest/api/3/search/jql", resp)
            issues = page.get("issues") if isinstance(page, dict) else None
            if not isinstance(issues, list):
                raise TrackerRetryable("jira", "POST /rest/api/3/search/jql: no issues list in the answer")
            for issue in issues:
                if isinstance(issue, dict):
                    return self._ticket(project, issue.get("key"))
            token = page.get("nextPageToken") if not page.get("isLast") else None
            if not isinstance(token, str) or not token:
                return None
        return None

    async def create(self, spec: TicketSpec) -> Ticket:
        project = self.target_for(spec.layer)
        fields = {
            "project": {"key": project},
            "summary": spec.title,
            "issuetype": {"name": self.issue_type},
            "labels": [LABEL, f"recon-{spec.layer}", spec.marker_label],
            "description": to_adf(ticket_doc(spec)),
        }
        resp = await self._http.request("POST", "/rest/api/3/issue", json_body={"fields": fields})
        item = self._http.json("POST /rest/api/3/issue", resp)
        return self._ticket(project, item.get("key") if isinstance(item, dict) else None)

    async def has_comment(self, ticket: Ticket, comment_marker: str) -> bool:
        path = f"/rest/api/3/issue/{ticket.key}/comment"
        start = 0
        for _ in range(MAX_PAGES):
            resp = await self._http.request("GET", path, params={"startAt": str(start), "maxResults": "100"})
            page = self._http.json(f"GET {path}", resp)
            comments = page.get("comments") if isinstance(page, dict) else None
            if not isinstance(comments, list):
                raise TrackerRetryable("jira", f"GET {path}: no comments list in the answer")
            if any(isinstance(c, dict) and comment_marker in adf_text(c.get("body") or {}) for c in comments):
                return True
            start += len(comments)
            total = page.get("total")
            if not comments or not isinstance(total, int) or start >= total:
                return False
        return False

    async def comment(self, ticket: Ticket, doc: Doc) -> None:
        await self._http.request("POST", f"/rest/api/3/issue/{ticket.key}/comment", json_body={"body": to_adf(doc)})
