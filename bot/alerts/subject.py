"""From an alert's labels to the diagnosis subject: the correlation id when present,
else the app instance id, else the org (and project) scope. Pure."""

from __future__ import annotations

from bot.alerts.model import is_safe_id
from bot.diagnosis.model import Subject


def subject_from_labels(labels: dict[str, str]) -> Subject | None:
    def ok(key: str) -> str | None:
        v = labels.get(key)
        return v if v and is_safe_id(v) else None

    cid, aid, org, project = ok("correlation_id"), ok("app_instance_id"), ok("org_id"), ok("project_id")
    if cid:
        return Subject(correlation_id=cid)
    if aid:
        return Subject(app_instance_id=aid)
    if org:
        return Subject(org_id=org, project_id=project)
    return None
