"""Block Kit for freeze, unfreeze and corrections prompts (templates/slack/prompt.json.j2)."""

from __future__ import annotations

from typing import Any

from bot.render.corrections import prompt_what
from bot.render.mrkdwn import Mrkdwn, mention, mrkdwn
from bot.render.slack import Message, esc
from bot.render.templating import render_json
from bot.store.approvals import Prompt, Vote

MAX_SCOPE_LINES = 25


def scope_lines(scope: dict[str, Any]) -> list[Mrkdwn]:
    lines = [mrkdwn(f"org `{esc(o)}` (all projects)") for o in scope.get("orgs", [])]
    lines += [mrkdwn(f"project `{esc(o)}/{esc(p)}`") for o, p in scope.get("projects", [])]
    lines += [mrkdwn(f"app instance `{esc(a)}` ({esc(o)}/{esc(p)})") for o, p, a in scope.get("app_instances", [])]
    return lines


def prompt_message(p: Prompt, votes: dict[str, Vote], *, who: str, approve_emoji: str, decline_emoji: str) -> Message:
    freeze = p.kind == "freeze"
    if p.kind == "corrections":
        header = "Approve the proposed ledger corrections?"
        what = prompt_what({**p.scope, "incident_id": p.incident_id})
        why = f"*Why*: {esc(p.reason)}"
    else:
        header = ("Freeze manual customer-facing adjustments?" if freeze
                  else "Lift the freeze of manual customer-facing adjustments?")
        lines = scope_lines(p.scope)
        shown = "\n".join(f"• {x}" for x in lines[:MAX_SCOPE_LINES])
        if len(lines) > MAX_SCOPE_LINES:
            shown += f"\n• … and {len(lines) - MAX_SCOPE_LINES} more (see the incident report)"
        what = (f"*What would be {'frozen' if freeze else 'unfrozen'}*: manual customer-facing adjustments "
                f"(credits, refunds, corrections) for\n{shown}")
        why = f"*Why*: {esc(p.reason)}"
    how = (f"react :{approve_emoji}: to approve or :{decline_emoji}: to decline (or use the buttons); "
           f"{p.quorum} approver(s) decide; removing your reaction takes your vote back")
    who_text = f"*Who may decide*: {esc(who)}\n*How*: {esc(how)}"
    approvals = sorted(u for u, v in votes.items() if v == "approve")
    declines = sorted(u for u, v in votes.items() if v == "decline")
    if p.status == "open":
        state = (f":hourglass_flowing_sand: open until {p.expires_at:%Y-%m-%d %H:%M UTC} · "
                 f"approve {len(approvals)}/{p.quorum}" + (f" ({', '.join(mention(u) for u in approvals)})"
                                                            if approvals else "")
                 + (f" · decline {len(declines)}/{p.quorum}" if declines else ""))
    elif p.status == "approved" and p.kind == "corrections":
        state = (f":lock: *Approved* by {', '.join(mention(u) for u in p.decided_by)} at "
                 f"{p.decided_at:%Y-%m-%d %H:%M UTC}: the batch is sealed (recon does not apply it). "
                 "Further reactions change nothing.")
    elif p.status == "approved":
        done = "frozen" if freeze else "lifted"
        state = (f":ice_cube: *Approved* by {', '.join(mention(u) for u in p.decided_by)} at "
                 f"{p.decided_at:%Y-%m-%d %H:%M UTC}: adjustments {done}"
                 + (f" (freeze #{p.freeze_id})" if p.freeze_id else "") + ". Further reactions change nothing.")
    elif p.status == "declined":
        state = (f":no_entry_sign: *Declined* by {', '.join(mention(u) for u in p.decided_by)} at "
                 f"{p.decided_at:%Y-%m-%d %H:%M UTC}. Further reactions change nothing.")
    elif p.status == "superseded":
        state = (":arrows_counterclockwise: *Superseded* by a newer diagnosis's proposals (below). "
                 "Votes on this prompt no longer count.")
    else:
        state = (f":alarm_clock: *Expired* at {p.expires_at:%Y-%m-%d %H:%M UTC} without a decision. "
                 "Further reactions change nothing; ask for a new prompt if it is still needed.")
    blocks = render_json("slack/prompt.json.j2", header=header, what=mrkdwn(what), why=mrkdwn(why),
                         who=mrkdwn(who_text), state=mrkdwn(state),
                         buttons=p.status == "open", prompt_id=p.prompt_id)
    text = f"{header} {p.status}"
    return Message(text=text, blocks=blocks)


def short(text: str) -> Message:
    """One mrkdwn section: ``text`` is escaped unless it is ``Mrkdwn`` (bot.render.mrkdwn)."""
    text = esc(text)
    return Message(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}])
