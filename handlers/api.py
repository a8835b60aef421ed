"""``GET /api/freezes``: the active freezes of manual customer-facing adjustments, so
billing tools can refuse adjustments in scope. Bearer ``RECON_API_TOKEN``; with none
configured every request is refused. Filters: ``?org_id=``, ``?project_id=``."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.errors import BadInput, StoreError
from bot.ids import validate_id
from bot.store.approvals import ApprovalStore, Freeze

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApiDeps:
    approvals: ApprovalStore
    token: str | None


def freeze_json(f: Freeze) -> dict[str, Any]:
    return {"freeze_id": f.freeze_id, "incident_id": f.incident_id, "status": f.status, "scope": f.scope,
            "reason": f.reason, "approved_by": f.approved_by, "frozen_at": f.frozen_at.isoformat()}


def _refuse(status: int, reason: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="recon api"'} if status == 401 else None
    return web.json_response({"error": reason}, status=status, headers=headers)


def freezes(deps: ApiDeps) -> Any:
    async def handle(request: web.Request) -> web.Response:
        if deps.token is None:
            log.warning("refused GET /api/freezes: RECON_API_TOKEN is not set, so /api/* refuses every request")
            return _refuse(401, "the API is disabled: the bot has no RECON_API_TOKEN")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), deps.token.encode()):
            return _refuse(401, "missing or wrong bearer token")
        try:
            org = request.query.get("org_id")
            project = request.query.get("project_id")
            org = validate_id(org, "org_id") if org is not None else None
            project = validate_id(project, "project_id") if project is not None else None
        except BadInput as exc:
            return _refuse(400, str(exc))
        try:
            active = await deps.approvals.active_freezes(org, project)
        except StoreError:
            log.exception("GET /api/freezes: store unavailable")
            return web.json_response({"error": "store unavailable"}, status=503)
        return web.json_response({"freezes": [freeze_json(f) for f in active], "count": len(active),
                                  "filters": {"org_id": org, "project_id": project}},
                                 headers={"Cache-Control": "no-store"})

    return handle


def add_routes(app: web.Application, deps: ApiDeps) -> None:
    app.router.add_get("/api/freezes", freezes(deps))
