"""A stand-in of the billing API's usage export (platform.md "The usage export") and of a
Slack file download, on loopback.

* ``GET /orgs/{org}/usage-export?month=YYYY-MM[&project=P]``: the CSV set with ``put``
  for (org, month, project), ``text/csv``; 404 for one it does not have. With ``token``
  set, a request without ``Authorization: Bearer <token>`` gets 401.
* ``GET /files/{name}``: a file set with ``put_file``; without the bearer token it
  answers 200 with an HTML sign-in page, as Slack does.

Failure modes, delay and the request log: ``StandIn``.
"""

from __future__ import annotations

from aiohttp import web

from tests.standins import StandIn

__all__ = ["ExportApiStandIn"]

SIGN_IN = "<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


class ExportApiStandIn(StandIn):
    name = "export API stand-in"

    def __init__(self, *, token: str | None = None, delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.token = token
        self.exports: dict[tuple[str, str, str], bytes] = {}
        self.files: dict[str, bytes] = {}

    async def __aenter__(self) -> ExportApiStandIn:
        await self.start()
        return self

    @property
    def template(self) -> str:
        return self.url + "/orgs/{org_id}/usage-export?month={month}&project={project_id}"

    def put(self, org: str, month: str, body: bytes, project: str = "") -> None:
        self.exports[(org, month, project)] = body

    def put_file(self, name: str, body: bytes) -> str:
        self.files[name] = body
        return f"{self.url}/files/{name}"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/orgs/{org}/usage-export", self._export), web.get("/files/{name}", self._file)]

    def _authorized(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _export(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, text="unauthorized")
        key = (request.match_info["org"], request.query.get("month", ""), request.query.get("project", ""))
        body = self.exports.get(key)
        if body is None:
            return web.Response(status=404, text="no such export")
        return web.Response(body=body, content_type="text/csv", charset="utf-8")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(text=SIGN_IN, content_type="text/html")
        body = self.files.get(request.match_info["name"])
        if body is None:
            return web.Response(status=404, text="file_not_found")
        return web.Response(body=body, content_type="application/octet-stream")
