"""Freeze, unfreeze and proposed corrections, decided by approvers.

After a diagnosis that recommends a freeze (several app instances impacted), the thread
gets a freeze prompt; after a later diagnosis of the same scope that shows attribution
verified (no wrong_source, wrong_anchor or control_plane_drift), an unfreeze prompt for
each active freeze it touches; when it proposes ledger corrections, a corrections prompt
(sealed into a batch on approval, uploaded as CSV; superseded by a newer diagnosis with
other proposals). Only approvers' reactions (or buttons) count; anyone
else gets a short answer saying who can decide. Every vote, retraction, decision,
expiry and refusal is an audit record and a timeline event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.diagnosis.checks import ATTRIBUTION_CHECKS
from bot.diagnosis.corrections import batch_digest, proposal_rows
from bot.diagnosis.model import Diagnosis, Finding, Subject
from bot.metrics import Metrics
from bot.render.approvals import prompt_message, scope_lines, short
from bot.render.corrections import corrections_csv
from bot.render.mrkdwn import esc, mention, mrkdwn
from bot.render.slack import parent_message
from bot.report.links import incident_link
from bot.settings import Settings
from bot.slack.approvers import SLACK_CALL_ERRORS, Approvers
from bot.slack.pace import ChannelPacer
from bot.slack.poster import SlackThread
from bot.store.approvals import ApprovalStore, Freeze, Prompt, Vote, VoteResult
from bot.store.corrections import CorrectionStore
from bot.store.jobs import JobQueue
from bot.store.store import Store

log = logging.getLogger(__name__)


def freeze_scope(findings: Iterable[Finding]) -> dict[str, Any]:
    """The app instances with findings (and the projects of findings without one)."""
    instances = sorted({(f.org_id, f.project_id, f.app_instance_id) for f in findings
                        if f.app_instance_id and f.org_id and f.project_id})
    projects = sorted({(f.org_id, f.project_id) for f in findings
                       if not f.app_instance_id and f.org_id and f.project_id})
    return {"orgs": [], "projects": [list(p) for p in projects], "app_instances": [list(i) for i in instances]}


def freeze_reason(d: Diagnosis) -> str:
    checks = d.failed_checks()
    n = len({f.app_instance_id for f in d.findings if f.app_instance_id})
    return (f"{n} app instances have findings ({', '.join(checks)}); the runbook freezes manual "
            "customer-facing adjustments until source attribution is verified")


@dataclass(slots=True)
class ApprovalFlow:
    settings: Settings
    store: Store
    approvals: ApprovalStore
    queue: JobQueue
    slack: AsyncWebClient
    approvers: Approvers
    metrics: Metrics | None = None
    # the channel pacer that alert triage posts through: a prompt raised during a storm
    # is paced with the storm's replies in the same channel
    pacer: ChannelPacer | None = None

    def sink(self, p: Prompt) -> SlackThread:
        return SlackThread(self.slack, self.queue, f"prompt:{p.prompt_id}", p.channel, thread_ts=p.thread_ts,
                           pacer=self.pacer)

    def _message(self, p: Prompt, votes: dict[str, Vote]) -> Any:
        return prompt_message(p, votes, who=self.approvers.mentions(), approve_emoji=self.settings.approve_emoji,
                              decline_emoji=self.settings.decline_emoji)

    async def _post_prompt(self, p: Prompt) -> None:
        if p.message_ts:
            return
        sink = self.sink(p)
        ts = await sink.post("prompt", self._message(p, {}), thread_ts=p.thread_ts)
        await self.approvals.set_message(p.prompt_id, ts)
        for emoji in (self.settings.approve_emoji, self.settings.decline_emoji):
            try:  # an affordance: people click the reaction that is already there
                await self.slack.reactions_add(channel=p.channel, timestamp=ts, name=emoji)
            except SlackApiError as exc:
                if exc.response.get("error") != "already_reacted":
                    log.info("could not add :%s: to prompt %s: %s", emoji, p.prompt_id, exc.response.get("error"))
        await self.store.add_timeline_event(
            incident_id=p.incident_id, run_id=None, type=f"{p.kind}_prompt", source="recon",
            description=f"{p.kind} prompt posted: "
                        f"{len(scope_lines(p.scope)) or len(p.scope.get('corrections') or [])} item(s) in scope",
            details={"prompt_id": p.prompt_id, "scope": p.scope, "quorum": p.quorum,
                     "expires_at": p.expires_at.isoformat(), "channel": p.channel, "message_ts": ts})

    async def after_diagnosis(self, incident_id: str, d: Diagnosis, channel: str, thread_ts: str) -> None:
        """Prompt to freeze when the diagnosis recommends it; to unfreeze when it shows a
        frozen scope's attribution verified; then to approve its proposed corrections."""
        await self._freeze_prompts(incident_id, d, channel, thread_ts)
        await self.propose_corrections(incident_id, d, channel, thread_ts)

    async def _freeze_prompts(self, incident_id: str, d: Diagnosis, channel: str, thread_ts: str) -> None:
        expires = self.settings.approval_expiry_h * 3600
        if d.freeze_recommended:
            active = await self.approvals.active_freezes_touching(incident_id, d.identifiers.app_instance_ids)
            if not any(f.incident_id == incident_id for f in active):
                p, _ = await self.approvals.create_prompt(
                    incident_id=incident_id, kind="freeze", channel=channel, thread_ts=thread_ts,
                    scope=freeze_scope(d.findings), reason=freeze_reason(d), quorum=self.settings.approval_quorum,
                    expires_in_s=expires)
                await self._post_prompt(p)
            return
        if not d.complete or any(f.check in ATTRIBUTION_CHECKS for f in d.findings):
            return
        for f in await self.approvals.active_freezes_touching(incident_id, d.identifiers.app_instance_ids):
            await self.request_unfreeze(f, channel, thread_ts,
                                        reason=f"a diagnosis of {d.subject.label()} found no wrong_source, "
                                               "wrong_anchor or control_plane_drift: attribution is verified")

    async def propose_corrections(self, incident_id: str, d: Diagnosis, channel: str,
                                  thread_ts: str) -> Prompt | None:
        """A corrections prompt for the diagnosis's proposals. An open one with the same
        proposals stays; one with other proposals is superseded (its votes no longer
        count). An approved batch is never touched: new drift makes a new prompt."""
        if not d.corrections:
            return None
        rows = proposal_rows([c.model_dump() for c in d.corrections])
        latest = await CorrectionStore(self.store.pool).latest_run(incident_id)
        run_id = latest[0] if latest and proposal_rows(latest[1].get("corrections") or []) == rows else None
        current = await self.approvals.open_prompt(incident_id, "corrections")
        if current is not None and proposal_rows(current.scope.get("corrections") or []) == rows:
            await self._post_prompt(current)  # a job resumed after a crash: posts it if it was not
            return current
        if current is not None:
            await self._supersede(current, run_id)
        scope = {"run_id": run_id, "digest": batch_digest(incident_id, run_id, rows), "corrections": rows,
                 "link": _to_corrections(await incident_link(self.settings, self.store, incident_id))}
        p, _ = await self.approvals.create_prompt(
            incident_id=incident_id, kind="corrections", channel=channel, thread_ts=thread_ts, scope=scope,
            reason=(f"a diagnosis of {d.subject.label()} found ledger drift ({', '.join(d.failed_checks())}); "
                    "these entries would correct it"),
            quorum=self.settings.approval_quorum, expires_in_s=self.settings.approval_expiry_h * 3600)
        await self._post_prompt(p)
        return p

    async def _supersede(self, p: Prompt, run_id: int | None) -> None:
        closed = await self.approvals.supersede(p, by_run=run_id)
        if closed is None:
            return
        text = (":arrows_counterclockwise: A newer diagnosis proposes different corrections: the earlier "
                "corrections prompt is superseded and votes on it no longer count.")
        await self._timeline(closed, "corrections_superseded", text, None)
        if closed.message_ts:
            await self.sink(closed).update(closed.message_ts,
                                           self._message(closed, await self.approvals.votes(closed.prompt_id)))
        await self.sink(closed).post("superseded", short(text), thread_ts=closed.thread_ts)

    async def request_unfreeze(self, f: Freeze, channel: str, thread_ts: str | None, *, reason: str) -> Prompt:
        p, _ = await self.approvals.create_prompt(
            incident_id=f.incident_id, kind="unfreeze", channel=channel, thread_ts=thread_ts, scope=f.scope,
            reason=reason, quorum=self.settings.approval_quorum,
            expires_in_s=self.settings.approval_expiry_h * 3600, freeze_id=f.freeze_id)
        await self._post_prompt(p)
        return p

    # ------------------------------------------------------------ votes

    def vote_of(self, reaction: str) -> Vote | None:
        name = reaction.split("::")[0]  # skin tones: thumbsup::skin-tone-2
        if name == self.settings.approve_emoji:
            return "approve"
        if name == self.settings.decline_emoji:
            return "decline"
        return None

    async def on_vote(self, p: Prompt, *, user: str, vote: Vote, via: str, dedup_key: str) -> VoteResult:
        res = await self.approvals.vote(p.prompt_id, user_id=user, vote=vote,
                                        via="button" if via == "button" else "reaction",
                                        is_approver=await self.approvers.is_approver(user), dedup_key=dedup_key)
        if self.metrics is not None:
            self.metrics.approvals.labels(p.kind, res.outcome).inc()
            if res.decided is not None:
                self.metrics.approvals.labels(p.kind, res.decided).inc()
        await self._effects(res, user, vote, dedup_key)
        return res

    async def on_retract(self, p: Prompt, *, user: str, vote: Vote, dedup_key: str) -> VoteResult:
        res = await self.approvals.retract(p.prompt_id, user_id=user, vote=vote, dedup_key=dedup_key)
        if res.outcome == "retracted":
            await self._timeline(res.prompt, "vote_retracted", f"<@{user}> took back their {vote}", user)
            await self._refresh(res)
        return res

    async def _effects(self, res: VoteResult, user: str, vote: Vote, dedup_key: str) -> None:
        p = res.prompt
        if res.outcome == "duplicate":
            return
        if res.outcome == "refused":  # the first time on this prompt; later ones are not answered
            await self._timeline(p, "vote_refused", f"<@{user}> is not an approver; their {vote} changes nothing", user)
            await self.tell(p, user, f"refusal:{user}",
                            f"Your {vote} on this {p.kind} prompt changes nothing: only the approvers named on "
                            "the prompt decide it.")
            return
        if res.outcome == "expired":
            await self._timeline(p, "prompt_expired", f"{p.kind} prompt expired", None)
            await self._refresh(res)
            return
        if res.outcome != "counted":
            return
        await self._timeline(p, "vote", f"<@{user}> voted {vote} on the {p.kind} prompt", user)
        await self._refresh(res)
        if res.decided is not None:
            await self._decided(res)

    async def tell(self, p: Prompt, user: str, key: str, text: str) -> None:
        """Answer one person in the prompt's thread: ephemerally (only they see it), or, when
        Slack refuses that (not in the channel, …), as a reply that names only them."""
        try:
            await self.slack.chat_postEphemeral(channel=p.channel, user=user, thread_ts=p.thread_ts, text=text)
            return
        except SLACK_CALL_ERRORS as exc:
            log.info("prompt %s: ephemeral answer to %s failed (%s); replying in the thread", p.prompt_id, user,
                     type(exc).__name__)
        await self.sink(p).post(key, short(mrkdwn(f"{mention(user)}: {esc(text)}")), thread_ts=p.thread_ts)

    async def _decided(self, res: VoteResult) -> None:
        p = res.prompt
        who = ", ".join(mention(u) for u in p.decided_by)
        if res.decided == "approved" and p.kind == "corrections":
            text = (f":lock: Corrections approved by {who}: the batch is sealed (sha256 "
                    f"`{p.scope.get('digest')}`). recon never applies them; the CSV below is for the approved "
                    "correction procedure.")
        elif res.decided == "approved" and p.kind == "freeze":
            text = (f":ice_cube: Frozen by {who}: manual customer-facing adjustments are refused for the scope "
                    f"above until attribution is verified (freeze #{p.freeze_id}; billing tools read "
                    "GET /api/freezes).")
        elif res.decided == "approved":
            text = f":sunny: Freeze #{p.freeze_id} lifted by {who}."
        else:
            text = f":no_entry_sign: The {p.kind} prompt was declined by {who}; nothing changes."
        await self._timeline(p, f"{p.kind}_{res.decided}", text, None)
        await self.sink(p).post("decision", short(mrkdwn(text)), thread_ts=p.thread_ts)
        if res.batch_id is not None:
            await self.upload_batch(p)
        await self.refresh_parent(p.incident_id)

    async def upload_batch(self, p: Prompt) -> None:
        """The sealed batch as a CSV file in the thread (files.getUploadURLExternal, the
        bytes to its upload_url, files.completeUploadExternal): the bytes of
        ``recon corrections INCIDENT --format csv``."""
        store = CorrectionStore(self.store.pool)
        batch = await store.by_prompt(p.prompt_id)
        if batch is None:
            return
        data = corrections_csv(p.incident_id, await store.rows(batch.batch_id), batch).encode("utf-8")
        name = f"recon-corrections-{p.incident_id}-batch-{batch.batch_id}.csv"
        try:
            await self.slack.files_upload_v2(channel=p.channel, thread_ts=p.thread_ts, file=data, filename=name,
                                             title=f"Sealed corrections, batch {batch.batch_id} (not applied)")
        except SLACK_CALL_ERRORS as exc:
            log.warning("prompt %s: uploading batch %s failed: %s", p.prompt_id, batch.batch_id, type(exc).__name__)
            await self.sink(p).post("batch-upload-failed", short(
                f":warning: The sealed batch could not be uploaded here; `recon corrections {p.incident_id} "
                "--format csv` prints it."), thread_ts=p.thread_ts)

    async def _refresh(self, res: VoteResult) -> None:
        p = res.prompt
        if p.message_ts:
            await self.sink(p).update(p.message_ts, self._message(p, res.votes))

    async def _timeline(self, p: Prompt, type_: str, description: str, actor: str | None) -> None:
        await self.store.add_timeline_event(
            incident_id=p.incident_id, run_id=None, type=type_, source="slack", description=description,
            details={"prompt_id": p.prompt_id, "kind": p.kind, "status": p.status, "channel": p.channel,
                     "message_ts": p.message_ts},
            actor=actor or "recon")

    async def refresh_parent(self, incident_id: str) -> None:
        """Show the incident's freezes on the parent message of its /recon thread."""
        inc = await self.store.get_incident(incident_id)
        if inc is None or inc.origin != "slack" or not inc.slack_channel or not inc.slack_thread_ts:
            return
        result = await self.approvals.latest_result(incident_id)
        if result is None:
            return
        d = Diagnosis.model_validate(result)
        freezes = await self.approvals.freezes_of(incident_id)
        note = None
        if freezes:
            f = freezes[-1]
            note = mrkdwn(f":ice_cube: adjustments frozen (freeze #{f.freeze_id}, by "
                          f"{', '.join(mention(u) for u in f.approved_by)})" if f.status == "active"
                          else f":sunny: freeze #{f.freeze_id} lifted")
        msg = parent_message(Subject.model_validate(d.subject.model_dump()), "done", d, incident_id=incident_id,
                             freeze_note=note)
        await self.slack.chat_update(channel=inc.slack_channel, ts=inc.slack_thread_ts, text=msg.text,
                                     blocks=msg.blocks)

    async def expire_due(self) -> int:
        expired = await self.approvals.expire_due()
        for p in expired:
            await self._timeline(p, "prompt_expired", f"{p.kind} prompt expired without a decision", None)
            if p.message_ts:
                await self.sink(p).update(p.message_ts, self._message(p, await self.approvals.votes(p.prompt_id)))
        return len(expired)


def _to_corrections(url: str | None) -> str | None:
    """The report link, opened at its corrections section."""
    return f"{url}#corrections" if url else url
