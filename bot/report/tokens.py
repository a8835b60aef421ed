"""Signed, expiring links to an incident report.

A token is ``<payload>.<signature>``, both urlsafe base64 without padding:

- payload: ``<incident id>|<expiry, unix seconds>`` (the expiry travels in the token);
- signature: HMAC-SHA256 of the payload with the report secret.

``check_token`` refuses (``ReportLinkRefused``, a ``NotAuthorized``) with a reason a person
can act on: ``missing``, ``bad`` (malformed or not signed by this recon), ``expired``, or
``other_incident`` (a genuine link, to another incident). The signature is checked
before anything the token says is believed, in constant time.

The secret: ``RECON_REPORT_SECRET`` when set (at least 32 bytes: ``Settings`` refuses a
shorter one); else a per-install secret drawn once and kept in the store (table
``report_secret``, migration 005), so links survive restarts and work on every process of
one store. Links live ``RECON_REPORT_LINK_TTL_H`` hours (72).

Rotation: new links are always signed with the current secret; a link signed with
``RECON_REPORT_SECRET_PREVIOUS`` still opens until that setting is removed
(``verifying_secrets``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import asyncpg

from bot.errors import NotAuthorized, StoreError
from bot.sqlfiles import Queries
from bot.store.db import Pool

Q = Queries("bot.report", "sql")
INCIDENT_ID_RE = re.compile(r"INC-[0-9]{8}-[a-z0-9]{6}")  # as the incidents table checks
DEFAULT_TTL_H = 72.0
Reason = Literal["missing", "bad", "expired", "other_incident"]
_MAX_TOKEN = 512
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

REASON_TEXT: dict[str, str] = {
    "missing": "This link has no access token. Open the incident from the link recon posted in Slack.",
    "bad": "This link's access token is not valid (it was altered or cut short, or signed by another "
           "recon installation).",
    "expired": "This link has expired. Ask recon in the incident's Slack thread for a fresh link.",
    "other_incident": "This link's access token belongs to another incident.",
}


class ReportLinkRefused(NotAuthorized):
    """A report link that does not grant access; ``reason`` says why."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail or REASON_TEXT[reason])
        self.reason: Reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def make_token(secret: bytes, incident_id: str, expires_at: datetime) -> str:
    """A token granting ``incident_id``'s report until ``expires_at`` (aware datetime)."""
    if not secret:
        raise ValueError("the report secret is empty")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    if "|" in incident_id:
        raise ValueError("an incident id has no '|'")
    payload = f"{incident_id}|{int(expires_at.timestamp())}".encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def check_token(secret: bytes | Sequence[bytes], incident_id: str, token: str | None, now: datetime) -> None:
    """Returns when ``token`` grants ``incident_id`` at ``now``; else ``ReportLinkRefused``.
    ``secret``: the secret, or the secrets that verify (the current one, a previous one)."""
    keys = [secret] if isinstance(secret, bytes) else list(secret)
    if not token:
        raise ReportLinkRefused("missing")
    if len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise ReportLinkRefused("bad")
    payload_b64, sig_b64 = token.split(".")
    try:
        payload = _unb64(payload_b64)
        sig = _unb64(sig_b64)
    except (binascii.Error, ValueError):
        raise ReportLinkRefused("bad") from None
    # every key is tried (no early exit), each in constant time
    if not [k for k in keys if k and hmac.compare_digest(sig, _sign(k, payload))]:
        raise ReportLinkRefused("bad")
    try:
        token_incident, _, exp_text = payload.decode("utf-8").rpartition("|")
        expires = datetime.fromtimestamp(int(exp_text), UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise ReportLinkRefused("bad") from None
    if not hmac.compare_digest(token_incident.encode(), incident_id.encode()):
        raise ReportLinkRefused("other_incident")
    if now >= expires:
        raise ReportLinkRefused(
            "expired", f"{REASON_TEXT['expired']} (it expired {expires:%Y-%m-%d %H:%M} UTC)")


def token_expiry(token: str) -> datetime | None:
    """The expiry a token claims (unverified; for display only)."""
    try:
        payload = _unb64(token.split(".")[0])
        return datetime.fromtimestamp(int(payload.decode().rpartition("|")[2]), UTC)
    except (binascii.Error, ValueError, UnicodeDecodeError, OverflowError, OSError, IndexError):
        return None


def report_url(public_url: str, incident_id: str, token: str) -> str:
    """``<public_url>/incidents/<id>?token=<token>``."""
    return f"{public_url.rstrip('/')}/incidents/{quote(incident_id, safe='')}?token={quote(token, safe='')}"


# ---------------------------------------------------------------- the secret


def configured_secret(settings: Any) -> bytes | None:
    """``RECON_REPORT_SECRET`` as bytes, when set (``settings.report_secret``)."""
    value = getattr(settings, "report_secret", None)
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text.encode("utf-8") if text else None


def previous_secret(settings: Any) -> bytes | None:
    """``RECON_REPORT_SECRET_PREVIOUS`` as bytes, when set (``settings.report_secret_previous``)."""
    value = getattr(settings, "report_secret_previous", None)
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text.encode("utf-8") if text else None


def link_ttl(settings: Any) -> timedelta:
    """``RECON_REPORT_LINK_TTL_H`` (``settings.report_link_ttl_h``), 72 hours by default."""
    hours = getattr(settings, "report_link_ttl_h", None)
    return timedelta(hours=float(hours) if hours is not None else DEFAULT_TTL_H)


async def install_secret(pool: Pool) -> bytes:
    """The per-install secret kept in the store; drawn (32 random bytes) on first use."""
    try:
        async with pool.acquire() as conn:
            found = await conn.fetchval(Q["secret_get"])
            if found is None:
                found = await conn.fetchval(Q["secret_init"], secrets.token_bytes(32))
            if found is None:  # another process inserted it after our statement's snapshot
                found = await conn.fetchval(Q["secret_get"])
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot read the report-link secret: {exc}") from exc
    if found is None:
        raise StoreError("the report-link secret could not be created")
    return bytes(found)


async def report_secret(settings: Any, pool: Pool) -> bytes:
    """The secret that signs report links: the setting, else the per-install one."""
    return configured_secret(settings) or await install_secret(pool)


async def verifying_secrets(settings: Any, pool: Pool) -> tuple[bytes, ...]:
    """The secrets a link may be signed with: the current one, then the previous one if set."""
    current = await report_secret(settings, pool)
    previous = previous_secret(settings)
    return (current, previous) if previous and previous != current else (current,)


__all__ = [
    "DEFAULT_TTL_H",
    "INCIDENT_ID_RE",
    "REASON_TEXT",
    "ReportLinkRefused",
    "check_token",
    "configured_secret",
    "install_secret",
    "link_ttl",
    "make_token",
    "previous_secret",
    "report_secret",
    "report_url",
    "token_expiry",
    "verifying_secrets",
]
