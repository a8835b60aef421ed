"""Alert notifications as the bot sees them, whatever delivered them.

Alertmanager's webhook (payload version 4), Grafana's unified-alerting webhook
(version 1) and alert posts that Alertmanager's or Grafana's Slack integrations
left in a channel all become one ``AlertNotification`` holding ``Alert``\\ s.
Everything here is pure data: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ID_LABELS",
    "SEVERITY_ORDER",
    "Alert",
    "AlertNotification",
    "NotificationDigest",
    "highest_severity",
    "is_safe_id",
    "safe_labels",
    "severity_rank",
]

Status = Literal["firing", "resolved"]

# Labels whose values are identifiers the bot puts into queries: they must be
# 1..128 characters of [A-Za-z0-9._:-] (the same charset as ``bot.ids``).
ID_LABELS = frozenset({"org_id", "project_id", "app_instance_id", "correlation_id"})
_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# Highest first. A value not in this list ranks just below "warning" (above
# "medium"); a missing or empty severity counts as "none".
SEVERITY_ORDER: tuple[str, ...] = ("critical", "page", "high", "error", "warning", "medium", "info", "low", "none")
_RANK = {name: (len(SEVERITY_ORDER) - i) * 10 for i, name in enumerate(SEVERITY_ORDER)}
_UNKNOWN_RANK = _RANK["warning"] - 5


def is_safe_id(value: str) -> bool:
    """True when ``value`` is 1..128 characters of ``[A-Za-z0-9._:-]``."""
    return _SAFE_ID.fullmatch(value) is not None


def safe_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` without the id labels (``ID_LABELS``) whose values are not safe ids."""
    return {k: v for k, v in labels.items() if k not in ID_LABELS or is_safe_id(v)}


def severity_rank(value: str | None) -> int:
    """Rank of a severity value (case-insensitive; higher is more severe)."""
    v = (value or "").strip().lower() or "none"
    return _RANK.get(v, _UNKNOWN_RANK)


def highest_severity(values: Iterable[str]) -> str:
    """The most severe of ``values`` (severity label values), stripped and lower-cased;
    ``"none"`` when every value is empty. Order: ``SEVERITY_ORDER``, unknown values just
    below ``"warning"``."""
    best, best_rank = "none", severity_rank("none")
    for raw in dict.fromkeys(values):  # each distinct value once: hundreds of alerts, a few severities
        v = raw.strip().lower()
        if not v:
            continue
        r = severity_rank(v)
        if r > best_rank:
            best, best_rank = v, r
    return best


@dataclass(frozen=True, slots=True)
class NotificationDigest:
    """What the intake keeps of a notification besides its payload (which it stores as
    received): enough to route it, group it, rank it and triage it later. Made by
    ``AlertNotification.digest()``, or straight from a webhook's body by
    ``bot.alerts.parse.digest_alertmanager_json`` without a model per alert."""

    source: Literal["alertmanager", "grafana", "slack"]
    group_key: str
    status: Status
    severity: str  # AlertNotification.severity()
    labels: dict[str, str]  # AlertNotification.labels_for_triage()
    common_annotations: dict[str, str]
    alerts: int
    firing: int


class Alert(BaseModel):
    """One alert of a notification."""

    model_config = ConfigDict(frozen=True)

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None  # None for Alertmanager's zero time "0001-01-01T00:00:00Z"
    ends_at: datetime | None
    fingerprint: str
    generator_url: str | None = None


class AlertNotification(BaseModel):
    """One delivery: a group of alerts that a receiver was told about together."""

    model_config = ConfigDict(frozen=True)

    source: Literal["alertmanager", "grafana", "slack"]
    # Alertmanager: groupKey. Grafana: groupKey when present, else "grafana:" + a
    # stable fingerprint of (orgId, receiver, sorted groupLabels). Slack:
    # "slack:{channel}:{ts}".
    group_key: str
    status: Status
    receiver: str | None
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str | None
    alerts: list[Alert]
    truncated_alerts: int = 0
    title: str | None = None  # Grafana's title / the Slack attachment's title

    def severity(self) -> str:
        """The highest severity among the alerts and the common labels, lower-cased.

        Order: critical > page > high > error > warning > (unknown values) > medium >
        info > low > none. ``"none"`` when no alert has a severity.
        """
        return highest_severity([self.common_labels.get("severity", "")]
                                + [a.labels.get("severity", "") for a in self.alerts])

    def first_alert(self) -> Alert | None:
        """The first firing alert, else the first alert, else None."""
        for a in self.alerts:
            if a.status == "firing":
                return a
        return self.alerts[0] if self.alerts else None

    def labels_for_triage(self) -> dict[str, str]:
        """Common labels merged with the first firing alert's labels (or the first alert's).

        Id labels (``ID_LABELS``) whose values are not safe ids are left out, so
        what this returns can go into queries.
        """
        merged = dict(self.common_labels)
        first = self.first_alert()
        if first is not None:
            merged.update(first.labels)
        return safe_labels(merged)

    def digest(self) -> NotificationDigest:
        """What the intake keeps of this notification (``NotificationDigest``)."""
        return NotificationDigest(
            source=self.source, group_key=self.group_key, status=self.status, severity=self.severity(),
            labels=self.labels_for_triage(), common_annotations=dict(self.common_annotations),
            alerts=len(self.alerts), firing=sum(1 for a in self.alerts if a.status == "firing"))
