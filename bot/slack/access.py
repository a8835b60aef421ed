"""Who may ask recon for what, where: ``RECON_ALLOWED_CHANNELS`` (channel ids where
``/recon``, mentions, the reconcile shortcuts and CSV shares are taken) and
``RECON_USERS`` (user ids ``U…``/``W…`` and user-group ids ``S…`` who may use them).
Unset, a setting allows everyone (and ``recon serve`` warns once at start).

``refusal`` is the policy, pure: the answer for the person refused, or ``None``.
``Access`` resolves the user groups as ``bot.slack.approvers`` does (through
``usergroups.users.list``, refreshed every ``RECON_APPROVERS_REFRESH_S``; a group never
resolved counts nobody, and one that cannot be read right now refuses everyone it
does not name: fail closed) and applies the policy. The handlers ask it before any
work: handlers/slack.py (``authorized_*``) and handlers/shortcuts.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SourceUnavailable
from bot.slack.approvers import Approvers

MAX_CHANNELS_LISTED = 5
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,30}")

CHANNEL_REFUSED = ":no_entry_sign: recon does not take requests in this channel"
USER_REFUSED = (":no_entry_sign: You are not among the people who may ask recon for diagnoses and freezes "
                "(RECON_USERS); nothing was started. Ask your incident commander to run it, or to add you.")
USERS_UNREADABLE = (":warning: recon cannot check who may ask it right now (a RECON_USERS group could not be "
                    "read from Slack); nothing was started. Please try again in a minute.")
# plain text (a modal's error under its channel picker): no mrkdwn, no channel links
CHANNEL_NOT_PICKABLE = "recon does not take requests in that channel (RECON_ALLOWED_CHANNELS); pick another."


def channel_ids(spec: str) -> frozenset[str] | None:
    """The channels of ``RECON_ALLOWED_CHANNELS``; ``None`` when unset (anywhere)."""
    ids = frozenset(x.strip() for x in spec.split(",") if x.strip())
    return ids or None


def refusal(channel: str, *, allowed_channels: frozenset[str] | None, user_allowed: bool | None) -> str | None:
    """Why this request is refused, for the person; ``None`` when it is taken.

    ``allowed_channels``: ``None`` for anywhere. ``user_allowed``: ``None`` when
    ``RECON_USERS`` is unset (anyone), else whether the user is in it (directly or
    through a group)."""
    if allowed_channels is not None and channel not in allowed_channels:
        listed = sorted(c for c in allowed_channels if _CHANNEL.fullmatch(c))[:MAX_CHANNELS_LISTED]
        where = f"; ask in {', '.join(f'<#{c}>' for c in listed)}" if listed else ""
        return f"{CHANNEL_REFUSED}{where}."
    if user_allowed is False:
        return USER_REFUSED
    return None


def open_warnings(allowed_channels: str, users: str) -> list[str]:
    """What ``recon serve`` says once at start about a setting left open."""
    out = []
    if channel_ids(allowed_channels) is None:
        out.append("RECON_ALLOWED_CHANNELS is not set: /recon and mentions are taken in every channel recon is in")
    if not users.strip():
        out.append("RECON_USERS is not set: anyone in those channels may run /recon")
    return out


@dataclass(slots=True)
class Access:
    allowed_channels: frozenset[str] | None
    users: Approvers | None  # None: RECON_USERS unset

    @classmethod
    def from_settings(cls, client: AsyncWebClient, channels: str, users: str, *, refresh_s: float) -> Access:
        people = Approvers(client, users, refresh_s=refresh_s, setting="RECON_USERS")
        return cls(channel_ids(channels), people if people.configured or people.unknown else None)

    def channel_allowed(self, channel: str) -> bool:
        return self.allowed_channels is None or channel in self.allowed_channels

    async def refusal(self, channel: str, user: str) -> str | None:
        """Why ``user`` may not ask recon anything in ``channel`` (``None``: they may)."""
        if not self.channel_allowed(channel):
            return refusal(channel, allowed_channels=self.allowed_channels, user_allowed=None)
        return await self.user_refusal(user)

    async def user_refusal(self, user: str) -> str | None:
        """Why ``user`` may not ask recon anything, wherever (``None``: they may)."""
        try:
            user_allowed = None if self.users is None else bool(user) and await self.users.is_approver(user)
        except SourceUnavailable:  # a group of RECON_USERS cannot be read now: fail closed, say so
            return USERS_UNREADABLE
        return refusal("", allowed_channels=None, user_allowed=user_allowed)
