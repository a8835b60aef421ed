"""Exactly one ticket per (incident, owning layer), across retries, restarts and replicas.

``ensure_ticket``:

1. the store's row has the ticket: done (a changed follow-up is commented, below);
2. else, under the (incident, layer) advisory lock: read the row again; look for the
   ticket's marker in the tracker (a ticket created by an attempt that died before
   storing it is found and stored); if an earlier attempt is younger than the tracker's
   ``lookup_lag_s`` (Jira's search lags), stop with ``TrackerRetryable`` rather than
   risk a second ticket;
3. else record the attempt (committed), create, store.

A crash between "created" and "stored" leaves the attempt recorded; the next run finds
the ticket by its marker. Two processes take turns on the lock; the second finds the row.

Comments: a later run's follow-up is compared with the state last commented (checks,
app instances, impact, findings); if it differs, one comment says what changed. Each
comment carries a marker of its own, recorded before posting, so a retry after a crash
looks for it in the ticket's comments (read-your-writes) instead of posting it twice.
``comment_recovered`` does the same once per ticket when the incident recovers.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import TrackerRejected, TrackerRetryable
from bot.tracker.base import Tracker
from bot.tracker.model import Change, FollowUpState, Ticket, TicketAction, TicketSpec
from bot.tracker.render import Doc, change_doc, recovered_doc
from bot.tracker.store import StoredTicket, TicketStore

log = logging.getLogger(__name__)

RECOVERED_DIGEST = "recovered"
_DocFor = Callable[[str], Doc]  # draws a comment for its marker


@dataclass(frozen=True, slots=True)
class Ensured:
    ticket: Ticket
    action: TicketAction  # created | found | commented | unchanged


async def ensure_ticket(store: TicketStore, tracker: Tracker, spec: TicketSpec) -> Ensured:
    """The ticket of ``spec``'s (incident, layer): found, or created once; commented
    when the follow-up changed since the state last described."""
    row = await store.get(spec.incident_id, spec.layer)
    if row is None or row.ticket is None:
        async with store.lock(spec.incident_id, spec.layer):
            got = await _find_or_create(store, tracker, spec)
        if got is not None:
            return got
        row = await store.get(spec.incident_id, spec.layer)  # another process stored it
        assert row is not None
    return await _comment_if_changed(store, tracker, spec, row)


async def _find_or_create(store: TicketStore, tracker: Tracker, spec: TicketSpec) -> Ensured | None:
    """Under the lock. None: the row has a ticket already."""
    row = await store.get(spec.incident_id, spec.layer)
    if row is not None and row.ticket is not None:
        return None
    found = await tracker.find(spec, since=spec.opened_at)
    if found is not None:
        await store.created(spec.incident_id, spec.layer, found, spec.state)
        log.info("ticket %s of %s/%s found by its marker and stored", found.key, spec.incident_id, spec.layer)
        return Ensured(found, "found")
    if row is not None and row.attempt_age_s < tracker.lookup_lag_s:
        raise TrackerRetryable(
            tracker.name, "an earlier attempt may have created the ticket, and the tracker's search may not "
            "show it yet", retry_after_s=tracker.lookup_lag_s - row.attempt_age_s)
    target = tracker.target_for(spec.layer)
    await store.attempt(spec.incident_id, spec.layer, tracker.name, target)
    try:
        ticket = await tracker.create(spec)
    except TrackerRejected:
        if row is None:  # nothing was made, and no earlier attempt is in doubt
            await store.abandon(spec.incident_id, spec.layer)
        raise
    await store.created(spec.incident_id, spec.layer, ticket, spec.state)
    log.info("ticket %s created for %s/%s", ticket.key, spec.incident_id, spec.layer)
    return Ensured(ticket, "created")


async def _comment_if_changed(store: TicketStore, tracker: Tracker, spec: TicketSpec,
                              row: StoredTicket) -> Ensured:
    ticket = row.ticket
    assert ticket is not None
    state = spec.state
    if row.last_comment_digest == state.digest or row.state == "recovered":
        return Ensured(ticket, "unchanged")
    change = Change.between(row.last_state, state)
    posted = await _comment_once(store, tracker, row, state.digest, state,
                                 lambda m: change_doc(spec, change, m))
    return Ensured(ticket, "commented" if posted else "unchanged")


async def comment_recovered(store: TicketStore, tracker: Tracker, incident_id: str,
                            report_url: str | None) -> list[Ensured]:
    """One comment per stored ticket of the incident saying it recovered (once)."""
    out: list[Ensured] = []
    for row in await store.of_incident(incident_id):
        ticket = row.ticket
        if ticket is None or row.state == "recovered":
            continue
        doc_for: _DocFor = functools.partial(recovered_doc, incident_id, row.owning_layer, report_url)
        posted = await _comment_once(store, tracker, row, RECOVERED_DIGEST, None, doc_for, new_state="recovered")
        out.append(Ensured(ticket, "commented" if posted else "unchanged"))
    return out


async def _comment_once(store: TicketStore, tracker: Tracker, row: StoredTicket, digest: str,
                        state: FollowUpState | None, doc_for: _DocFor, new_state: str | None = None) -> bool:
    """Post the comment unless it is known to be on the ticket; True if this call posted
    it. ``pending_comment_digest`` is ``<digest>:<nonce>``; the nonce is the comment's
    marker."""
    ticket = row.ticket
    assert ticket is not None
    async with store.lock(row.incident_id, row.owning_layer):
        fresh = await store.get(row.incident_id, row.owning_layer)
        if fresh is None or fresh.last_comment_digest == digest or fresh.state == "recovered":
            return False
        pending = fresh.pending_comment_digest or ""
        p_digest, _, p_nonce = pending.partition(":")
        if p_digest == digest and p_nonce and await tracker.has_comment(ticket, _comment_marker(p_nonce)):
            posted = False  # an earlier attempt posted it and died before recording it
        else:
            nonce = secrets.token_hex(8)
            await store.comment_begin(row.incident_id, row.owning_layer, f"{digest}:{nonce}")
            await tracker.comment(ticket, doc_for(_comment_marker(nonce)))
            posted = True
        await store.comment_done(row.incident_id, row.owning_layer, digest, state, new_state)
    return posted


def _comment_marker(nonce: str) -> str:
    return f"recon:comment={nonce}"
