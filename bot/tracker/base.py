"""The ``Tracker`` protocol: what ``ensure_ticket`` needs from GitHub or Jira."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.tracker.model import Ticket, TicketSpec
from bot.tracker.render import Doc


class Tracker(Protocol):
    """A ticket tracker. Every method raises ``TrackerRetryable`` or ``TrackerRejected``
    (``bot.errors``) when the tracker fails."""

    @property
    def name(self) -> str:
        """``github`` or ``jira``."""

    @property
    def lookup_lag_s(self) -> float:
        """How long after a create ``find`` may still miss the ticket (0: read-your-writes)."""

    def target_for(self, layer: str) -> str:
        """The repository (``owner/name``) or project key of a layer's tickets."""

    async def find(self, spec: TicketSpec, *, since: datetime | None) -> Ticket | None:
        """The ticket carrying ``spec``'s marker, if one exists (``since``: it was made
        no earlier than this)."""

    async def create(self, spec: TicketSpec) -> Ticket:
        """A new ticket for ``spec``, with its marker."""

    async def has_comment(self, ticket: Ticket, comment_marker: str) -> bool:
        """Whether a comment of the ticket carries ``comment_marker`` (read-your-writes)."""

    async def comment(self, ticket: Ticket, doc: Doc) -> None:
        """Add a comment (``doc.marker`` goes with it)."""

    async def aclose(self) -> None:
        """Close the HTTP client if the tracker made it."""
