"""``GET /incidents/{incident_id}?token=…``: the incident report page.

The token is a signed, expiring link (``bot.report.tokens``). No token: 401; a bad,
expired or other incident's token: 403; both pages say why and show nothing of the
incident. A valid token for an unknown incident (purged by retention): 404. Otherwise
the page (``bot.report.render.render_html``). Every answer carries the security headers
below: the page needs nothing but its own inline styles and SVG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from bot.errors import StoreError
from bot.report.data import load_report
from bot.report.render import refusal_html, render_html
from bot.report.tokens import INCIDENT_ID_RE, ReportLinkRefused, check_token, verifying_secrets
from bot.settings import Settings
from bot.store.store import Store

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_TITLES = {
    "missing": "Access token required",
    "bad": "Invalid link",
    "expired": "Link expired",
    "other_incident": "Link for another incident",
}


@dataclass(frozen=True, slots=True)
class ReportDeps:
    store: Store
    settings: Settings  # report_secret: the configured link secret, if any


_DEPS: web.AppKey[ReportDeps] = web.AppKey("report_deps", ReportDeps)


def _page(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8",
                        headers=SECURITY_HEADERS)


async def incident_report(request: web.Request) -> web.Response:
    deps = request.app[_DEPS]
    incident_id = request.match_info["incident_id"]
    token = request.query.get("token")
    try:
        secrets = await verifying_secrets(deps.settings, deps.store.pool)
        check_token(secrets, incident_id, token, datetime.now(UTC))
    except ReportLinkRefused as exc:
        status = 401 if exc.reason == "missing" else 403
        log.info("refused a report request for %s: %s", incident_id[:40], exc.reason)
        resp = _page(status, refusal_html(status, _TITLES[exc.reason], str(exc)))
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="recon report", error="invalid_token"'
        return resp
    except StoreError:
        log.exception("report secret unavailable")
        return _page(503, refusal_html(503, "Temporarily unavailable", "The incident store cannot be read now."))
    if not INCIDENT_ID_RE.fullmatch(incident_id):
        return _page(404, refusal_html(404, "No such incident", "There is no incident with this id."))
    try:
        report = await load_report(deps.store.pool, incident_id)
    except StoreError:
        log.exception("could not load the report of %s", incident_id)
        return _page(503, refusal_html(503, "Temporarily unavailable", "The incident store cannot be read now."))
    if report is None:
        return _page(404, refusal_html(404, "No such incident",
                                       "There is no incident with this id (it may have been removed by retention)."))
    return _page(200, render_html(report))


def add_routes(app: web.Application, deps: ReportDeps) -> None:
    """Register ``GET /incidents/{incident_id}``, reading ``deps`` (the store and the
    settings, given when the app is built)."""
    app[_DEPS] = deps
    app.router.add_get("/incidents/{incident_id}", incident_report)


__all__ = ["SECURITY_HEADERS", "ReportDeps", "add_routes", "incident_report"]
