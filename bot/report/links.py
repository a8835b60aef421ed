"""Signed, expiring links to an incident's report page, for Slack messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.errors import ConfigError
from bot.report.tokens import link_ttl, make_token, report_secret, report_url
from bot.store.store import Store


async def report_link(settings: Any, store: Store, incident_id: str, *, now: datetime | None = None) -> str:
    """The signed, expiring URL of the incident's report page, for Slack messages.

    ``RECON_PUBLIC_URL`` is the base; the link lives ``RECON_REPORT_LINK_TTL_H`` hours.
    """
    public_url = getattr(settings, "public_url", None)
    if not public_url:
        raise ConfigError("RECON_PUBLIC_URL is not set: report links need the bot's external URL")
    secret = await report_secret(settings, store.pool)
    expires = (now or datetime.now(UTC)) + link_ttl(settings)
    return report_url(public_url, incident_id, make_token(secret, incident_id, expires))


async def incident_link(settings: Any, store: Store, incident_id: str | None) -> str | None:
    """The report link, or None when the bot has no public URL (the message then names the incident)."""
    if not incident_id:
        return None
    try:
        return await report_link(settings, store, incident_id)
    except ConfigError:
        return None
