"""Who may decide approval prompts: ``RECON_APPROVERS``, Slack user ids (``U…``/``W…``)
and user-group ids (``S…``), the groups resolved through the Web API
(``usergroups.users.list``) and kept fresh.

Fail closed, never silently: a group whose membership could not be read when it was due
(a Slack API error, a timeout, a dropped connection) is *unknown* until it is read again —
its stale list is not used. ``is_approver`` then answers for the users it can (named
users; members of groups that are known) and raises ``SourceUnavailable`` for the rest,
so the caller can retry the vote later instead of counting or refusing it on stale data.
A failed read is tried again on the next question, not after the refresh interval. An
answer that repeating cannot change (``no_such_subteam``, ``missing_scope``, …) makes the
group count nobody until its next refresh, and is logged.

``RECON_USERS`` (who may run ``/recon``, bot.slack.access) is a list of the same kind,
resolved the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SourceUnavailable
from bot.render.mrkdwn import Mrkdwn, esc, mention, mrkdwn

log = logging.getLogger(__name__)
_GROUP = re.compile(r"S[A-Z0-9]{2,30}")
# what a Web API call raises when Slack answers ok:false, or cannot be reached in time
SLACK_CALL_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError, OSError)
# answers that the same call cannot change by being repeated: the group counts nobody
# (logged), rather than holding every vote back forever
PERMANENT = frozenset({"no_such_subteam", "subteam_not_found", "invalid_usergroup", "missing_scope",
                       "not_authed", "invalid_auth", "account_inactive", "token_revoked",
                       "not_allowed_token_type", "plan_upgrade_required", "no_permission"})


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
        self._members: dict[str, frozenset[str]] = {}  # only groups read within refresh_s
        self._fetched_at: dict[str, float] = {}
        self._failed: dict[str, str] = {}  # group -> why its last read failed
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            for g in self.groups:
                if g in self._members and now - self._fetched_at.get(g, -1e18) < self.refresh_s:
                    continue
                try:
                    resp = await self.client.usergroups_users_list(usergroup=g)
                except SLACK_CALL_ERRORS as exc:
                    why = (str(exc.response.get("error")) if isinstance(exc, SlackApiError)
                           else type(exc).__name__)
                    log.warning("could not resolve approver group %s: %s", g, why)
                    if why in PERMANENT:  # misconfigured: nobody in it counts until it is fixed
                        self._members[g] = frozenset()
                        self._fetched_at[g] = time.monotonic()
                    else:  # fail closed: a stale list is not used; read again next time
                        self._members.pop(g, None)
                    self._failed[g] = why
                    continue
                self._members[g] = frozenset(resp.get("users", []) or [])
                self._fetched_at[g] = time.monotonic()
                self._failed.pop(g, None)

    async def is_approver(self, user_id: str) -> bool:
        """True or False; raises ``SourceUnavailable`` when the answer depends on a group
        that cannot be read right now (the user is in no group that could be read)."""
        if user_id in self.users:
            return True
        if not self.groups:
            return False
        await self._refresh()
        if any(user_id in m for m in self._members.values()):
            return True
        unknown = [g for g in self.groups if g not in self._members]
        if unknown:
            why = "; ".join(f"{g}: {self._failed.get(g, 'not read')}" for g in unknown)
            raise SourceUnavailable("slack", f"approver group membership cannot be read ({why})")
        return False

    def mentions(self) -> Mrkdwn:
        if not self.configured:
            return mrkdwn("nobody: RECON_APPROVERS is not set, so this prompt cannot be decided")
        parts = [mention(u) for u in sorted(self.users)] + [
            f"<!subteam^{g}>" if _GROUP.fullmatch(g) else esc(g) for g in self.groups]
        return mrkdwn(", ".join(parts))
