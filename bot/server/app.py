"""The HTTP face of ``recon serve`` (aiohttp): Slack's request URL, health and readiness.

``POST /slack/events`` takes the Events API, slash commands and interactivity on one
URL. Before bolt sees a request this route checks Slack's signature and timestamp
(401 otherwise, as bolt answers) and that the body parses (400 with the reason).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.metrics import CONTENT_TYPE_LATEST
from bot.server.guard import loads_json, slack_request_verified
from bot.server.services import Services
from bot.store.db import schema_status
from handlers.alerts import add_routes as add_alert_routes
from handlers.api import ApiDeps
from handlers.api import add_routes as add_api_routes
from handlers.report import ReportDeps
from handlers.report import add_routes as add_report_routes

log = logging.getLogger(__name__)
SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def _json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def parse_slack_body(body: str, content_type: str) -> dict[str, Any]:
    """The request as Slack meant it, or ValueError saying why it is malformed."""
    if "application/json" in content_type:
        try:
            doc = loads_json(body)
        except ValueError as exc:
            raise ValueError(f"body is not JSON: {getattr(exc, 'msg', exc)}") from None
        if not isinstance(doc, dict) or "type" not in doc:
            raise ValueError("body is not a Slack event envelope (no type)")
        return doc
    if "application/x-www-form-urlencoded" in content_type:
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if "payload" in form:
            try:
                payload = loads_json(form["payload"])
            except ValueError as exc:
                raise ValueError(f"payload is not JSON: {getattr(exc, 'msg', exc)}") from None
            if not isinstance(payload, dict) or "type" not in payload:
                raise ValueError("payload has no type")
            return payload
        if "command" in form:
            return form
        raise ValueError("form body is neither a slash command nor an interaction payload")
    raise ValueError(f"unsupported content type {content_type or '(none)'}")


async def slack_events(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    secret = svc.settings.slack_signing_secret
    raw = await request.read()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _json_error(400, "body is not UTF-8")
    if secret is None:
        return _json_error(404, "this recon runs in Socket Mode; it takes no HTTP events")
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not slack_request_verified(secret.get_secret_value(), body, timestamp, signature):
        log.warning("refused a Slack request: bad or missing signature, or a stale timestamp")
        return _json_error(401, "invalid request")
    try:
        parse_slack_body(body, request.headers.get("Content-Type", ""))
    except ValueError as exc:
        return _json_error(400, f"malformed request: {exc}")
    bolt_req = AsyncBoltRequest(body=body, query=request.query_string,
                                headers={k: v for k, v in request.headers.items()})
    started = time.perf_counter()
    bolt_resp = await svc.bolt.async_dispatch(bolt_req)
    log.debug("slack request answered %s in %.1f ms", bolt_resp.status, (time.perf_counter() - started) * 1000)
    return await to_aiohttp_response(bolt_resp)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    try:
        current, latest = await schema_status(svc.store.pool)
    except Exception as exc:
        return web.json_response({"status": "unavailable", "store": f"unreachable: {type(exc).__name__}"},
                                 status=503)
    if current != latest:
        return web.json_response({"status": "unavailable", "store": f"schema {current}, expected {latest}"},
                                 status=503)
    return web.json_response({"status": "ready", "store": "ok", "schema": current,
                              "jobs_running_here": svc.worker.busy})


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    try:
        svc.metrics.set_job_counts(await svc.queue.counts())
    except Exception:
        log.warning("job counts unavailable for /metrics", exc_info=True)
    return web.Response(body=svc.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        resp: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        request.app[SERVICES].metrics.http_requests.labels(route, str(exc.status)).inc()
        raise
    request.app[SERVICES].metrics.http_requests.labels(route, str(resp.status)).inc()
    return resp


def build_app(svc: Services) -> web.Application:
    app = web.Application(client_max_size=svc.settings.max_body_bytes, middlewares=[count_requests])
    app[SERVICES] = svc
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_alert_routes(app, svc.alert_intake)
    token = svc.settings.api_token.get_secret_value() if svc.settings.api_token else None
    add_api_routes(app, ApiDeps(approvals=svc.approvals.approvals, token=token))
    add_report_routes(app, ReportDeps(store=svc.store, settings=svc.settings))
    return app
