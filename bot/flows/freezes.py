"""``/recon freezes`` and ``/recon unfreeze <incident>``: what the answers say and what
follows them. The handler (handlers/approvals.py) acks with the text these return.

- ``freezes_answer``: the active freezes of manual customer-facing adjustments (at most
  20 listed), or that there are none.
- ``unfreeze``: the answer, and a ``Followup`` that asks the approvers to lift each
  active freeze of the incident (a prompt in the incident's thread, else in the channel
  the command came from): run it after the ack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.flows.approvals import ApprovalFlow
from bot.render.approvals import scope_lines
from bot.render.mrkdwn import esc, mention

MAX_LISTED = 20
MAX_ANSWER = 3000

Followup = Callable[[], Awaitable[None]]


async def freezes_answer(flow: ApprovalFlow) -> str:
    active = await flow.approvals.active_freezes()
    if not active:
        return ":sunny: No active freezes of manual customer-facing adjustments."
    lines = [f"*{len(active)} active freeze(s)* of manual customer-facing adjustments:"]
    for f in active[:MAX_LISTED]:
        scope = "; ".join(scope_lines(f.scope)[:5])
        lines.append(f"• #{f.freeze_id} · incident {esc(f.incident_id)} · since {f.frozen_at:%Y-%m-%d %H:%M UTC} · "
                     f"by {', '.join(mention(u) for u in f.approved_by)} · {scope}")
    return "\n".join(lines)[:MAX_ANSWER]


@dataclass(frozen=True, slots=True)
class Unfreeze:
    answer: str
    followup: Followup | None = None


async def unfreeze(flow: ApprovalFlow, incident_id: str, *, channel: str, user: str | None) -> Unfreeze:
    incident = await flow.store.get_incident(incident_id)
    if incident is None:
        return Unfreeze(f":warning: No incident {incident_id}.")
    active = [f for f in await flow.approvals.freezes_of(incident_id) if f.status == "active"]
    if not active:
        return Unfreeze(f":sunny: Incident {incident_id} has no active freeze.")
    where = incident.slack_channel or channel
    thread = incident.slack_thread_ts if incident.slack_channel else None

    async def ask() -> None:
        for f in active:
            await flow.request_unfreeze(f, where, thread, reason=f"requested by Slack user {user} with /recon unfreeze")

    return Unfreeze(f":hourglass_flowing_sand: Asking the approvers to lift {len(active)} freeze(s) of "
                    f"{incident_id}.", ask)
