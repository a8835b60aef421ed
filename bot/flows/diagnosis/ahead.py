"""The billing reads of the pivot, the attribution and the reconciliation, asked before
their turn.

Those three steps read the database for the instances the evidence names: their
metadata, their rows in the window and the prices, then the rows' ledger entries. In the
runbook's order that is three dependent round trips after the last Loki or Tempo answer,
when the bot is otherwise idle. But the billing rows that carry the correlation id name
the instances in the common case, long before the logs and spans have answered. So
``Ahead.launch`` reads for those instances at once, as the steps would (``prefetch``),
while Loki and Tempo are still out.

Each read is kept under what it asked (the reader's method and its arguments). A step
asks through ``Context.billing`` and takes the read already under way when it asks the
very same thing (the same method, the same ids: the same answer, so the thread, the
evidence and the document are what the runbook's order gives), and reads anew when the
evidence turned out to name other instances. A read nobody took is cancelled when the
run ends. Nothing starts before its turn in the runbook's order (``eager=False``), for an
org (its instances are screened in the database), or for more instances than a diagnosis
reads in full."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from bot.errors import SourceFailure
from bot.sources.protocols import BillingReader, Fetched

if TYPE_CHECKING:
    from bot.flows.diagnosis.context import Context
    from bot.flows.diagnosis.state import RunState

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def _frozen(v: Any) -> Hashable:
    if isinstance(v, list | tuple):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, set | frozenset):
        return tuple(sorted(_frozen(x) for x in v))  # type: ignore[type-var]
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v  # type: ignore[no-any-return]


def key_of(read: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    """What a read asks: the reader's method and its arguments."""
    return (getattr(read, "__name__", repr(read)), _frozen(args), _frozen(kwargs))


class Ahead:
    """The billing reads started before their step's turn, one task per distinct read."""

    def __init__(self, *, eager: bool) -> None:
        self.eager = eager
        self._reads: dict[Hashable, asyncio.Task[Any]] = {}
        self._driver: asyncio.Task[None] | None = None

    def start(self, read: Callable[P, Awaitable[Fetched[T]]], *args: P.args,
              **kwargs: P.kwargs) -> asyncio.Task[Fetched[T]]:
        """The read under way for exactly this (started now if nobody asked it yet)."""
        key = key_of(read, args, kwargs)
        task = self._reads.get(key)
        if task is None:
            task = self._reads[key] = asyncio.ensure_future(read(*args, **kwargs))
        return task

    def take(self, read: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> asyncio.Task[Any] | None:
        """The read already under way for exactly this, handed to the step that asks (once)."""
        return self._reads.pop(key_of(read, args, kwargs), None)

    def launch(self, ctx: Context, state: RunState) -> None:
        """Read ahead for the instances the billing rows name (``prefetch``)."""
        billing = ctx.sources.billing
        if self.eager and self._driver is None and billing is not None and ctx.org_scope is None:
            self._driver = asyncio.ensure_future(prefetch(self, ctx, state, billing))

    async def aclose(self) -> None:
        """Cancel every read nobody took, and the prefetch itself, and wait until they stopped."""
        tasks = [*self._reads.values(), *([self._driver] if self._driver else [])]
        self._reads.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def prefetch(ahead: Ahead, ctx: Context, state: RunState, billing: BillingReader) -> None:
    """The reads of steps 4 to 6 for the instances the billing rows name, in the order
    their answers allow, with the arguments the steps compute from the same answers."""
    from bot.flows.diagnosis import attribution, pivot, reconciliation

    ids = pivot.guessed_instance_ids(ctx, state)
    if not ids or attribution.screened(ctx, len(ids)):
        return
    try:
        instances = ahead.start(billing.app_instances, ids)
        ahead.start(billing.components, ids)
        usage = ahead.start(billing.usage_for_instances, ids, ctx.window)
        orgs = attribution.price_orgs((await instances).items, state.rows)
        if orgs:
            accounts = await ahead.start(billing.billing_accounts, orgs)
            ahead.start(billing.rate_cards, attribution.currencies(accounts.items))
        rows = attribution.with_rows(list((await usage).items), state.rows, in_scope=set())
        ahead.start(billing.ledger_for_usage, reconciliation.row_ids(rows))
        ahead.start(billing.orphan_debits_by_correlation,
                    reconciliation.correlation_ids(ctx.subject.correlation_id, rows), ctx.window)
    except SourceFailure:
        return  # the step that asks the same reads again says what failed
