"""What step 2 starts when its billing rows are in: the billing reads of steps 4 to 6 for
the instances those rows name, with the arguments the steps compute from the same answers
(``bot.flows.diagnosis.ahead`` says why, and how the steps take them)."""

from __future__ import annotations

from bot.errors import SourceFailure
from bot.flows.diagnosis.attribution import currencies, price_orgs, screened, with_rows
from bot.flows.diagnosis.context import Context
from bot.flows.diagnosis.pivot import guessed_instance_ids
from bot.flows.diagnosis.reconciliation import correlation_ids, row_ids
from bot.flows.diagnosis.state import RunState
from bot.sources.protocols import BillingReader


def read_ahead(ctx: Context, state: RunState) -> None:
    """Start ``prefetch`` for a diagnosis that reads its instances in full (not an org's)."""
    billing = ctx.sources.billing
    if billing is not None and ctx.org_scope is None:
        ctx.ahead.launch(lambda: prefetch(ctx, state, billing))


async def prefetch(ctx: Context, state: RunState, billing: BillingReader) -> None:
    """The reads of steps 4 to 6 for the instances the billing rows name, in the order
    their answers allow, with the arguments the steps compute from the same answers."""
    ahead = ctx.ahead
    ids = guessed_instance_ids(ctx, state)
    if not ids or screened(ctx, len(ids)):
        return
    try:
        instances = ahead.start(billing.app_instances, ids)
        ahead.start(billing.components, ids)
        usage = ahead.start(billing.usage_for_instances, ids, ctx.window)
        orgs = price_orgs((await instances).items, state.rows)
        if orgs:
            accounts = await ahead.start(billing.billing_accounts, orgs)
            ahead.start(billing.rate_cards, currencies(accounts.items))
        rows = with_rows(list((await usage).items), state.rows, in_scope=set())
        ahead.start(billing.ledger_for_usage, row_ids(rows))
        ahead.start(billing.orphan_debits_by_correlation,
                    correlation_ids(ctx.subject.correlation_id, rows), ctx.window)
    except SourceFailure:
        return  # the step that asks the same reads again says what failed
