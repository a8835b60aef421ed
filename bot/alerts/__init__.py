"""Alert notifications: webhook payloads (Alertmanager, Grafana) and Slack alert posts.

Pure parsing, no I/O::

    from bot.alerts import parse_alertmanager, parse_grafana, parse_alert_post, PayloadError

    n = parse_alertmanager(json.loads(body))   # raises PayloadError("alerts must be a list")
    n.group_key, n.status, n.severity(), n.labels_for_triage()
    n.digest()   # what the intake keeps: NotificationDigest
"""

from bot.alerts.model import (
    ID_LABELS,
    SEVERITY_ORDER,
    Alert,
    AlertNotification,
    NotificationDigest,
    is_safe_id,
    severity_rank,
)
from bot.alerts.parse import MAX_ALERTS, PayloadError, parse_alertmanager, parse_grafana
from bot.alerts.slack_posts import parse_alert_post

__all__ = [
    "ID_LABELS",
    "MAX_ALERTS",
    "SEVERITY_ORDER",
    "Alert",
    "AlertNotification",
    "NotificationDigest",
    "PayloadError",
    "is_safe_id",
    "parse_alert_post",
    "parse_alertmanager",
    "parse_grafana",
    "severity_rank",
]
