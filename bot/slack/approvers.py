"""Who may decide freeze and unfreeze prompts: ``RECON_APPROVERS``, Slack user ids
(``U…``/``W…``) and user-group ids (``S…``), the groups resolved through the Web API
(``usergroups.users.list``) and kept fresh. ``RECON_USERS`` (who may run ``/recon``,
bot.slack.access) is a list of the same kind, resolved the same way."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.render.mrkdwn import Mrkdwn, esc, mention, mrkdwn

log = logging.getLogger(__name__)
_GROUP = re.compile(r"S[A-Z0-9]{2,30}")


class Approvers:
    def __init__(self, client: AsyncWebClient, spec: str, *, refresh_s: float = 300.0,
                 setting: str = "RECON_APPROVERS") -> None:
        ids = [x.strip() for x in spec.split(",") if x.strip()]
        self.users = frozenset(i for i in ids if i[:1] in ("U", "W"))
        self.groups = tuple(i for i in ids if i[:1] == "S")
        self.unknown = tuple(i for i in ids if i[:1] not in ("U", "W", "S"))
        if self.unknown:
            log.warning("%s: ignoring %s (not U…/W… users or S… user groups)", setting, ", ".join(self.unknown))
        self.client = client
        self.refresh_s = refresh_s
        self._members: dict[str, frozenset[str]] = {}
        self._fetched_at = -1e18
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.refresh_s:
                return
            for g in self.groups:
                try:
                    resp = await self.client.usergroups_users_list(usergroup=g)
                    self._members[g] = frozenset(resp.get("users", []) or [])
                except SlackApiError as exc:
                    # keep what we knew; a group we never resolved counts nobody
                    log.warning("could not resolve approver group %s: %s", g, exc.response.get("error"))
            self._fetched_at = time.monotonic()

    async def is_approver(self, user_id: str) -> bool:
        if user_id in self.users:
            return True
        if not self.groups:
            return False
        await self._refresh()
        return any(user_id in m for m in self._members.values())

    def mentions(self) -> Mrkdwn:
        if not self.configured:
            return mrkdwn("nobody: RECON_APPROVERS is not set, so this prompt cannot be decided")
        parts = [mention(u) for u in sorted(self.users)] + [
            f"<!subteam^{g}>" if _GROUP.fullmatch(g) else esc(g) for g in self.groups]
        return mrkdwn(", ".join(parts))
