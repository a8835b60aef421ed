"""A generated platform as the pure checks' evidence, with no database: what the diagnosis
flow would read for a set of app instances (their rows, those rows' ledger entries, the
debits of their calls whose row does not exist, their accounts, rate cards and logs)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.diagnosis.checks import BillingEvidence
from bot.diagnosis.model import Window
from bot.scenario.platform import Platform


def billing_evidence(
    platform: Platform, app_instance_ids: Iterable[str] | None = None, *, window: Window | None = None
) -> BillingEvidence:
    """The evidence of ``app_instance_ids`` (every instance by default) in ``window`` (the
    7 days before ``platform.now`` by default). Orphan debits are found as the flow finds
    them for a correlation id: usage debits of the rows' calls that name no usage row."""
    window = window or platform.window(7)
    wanted = (
        {i.app_instance_id for i in platform.instances}
        if app_instance_ids is None
        else set(app_instance_ids)
    )
    instances = [i for i in platform.instances if i.app_instance_id in wanted]
    first_hour = window.start.replace(minute=0, second=0, microsecond=0)
    usage = [
        u for u in platform.usage
        if u.app_instance_id in wanted and first_hour <= u.period_start < window.end
    ]
    rows = {u.usage_record_id for u in usage}
    every_row = {u.usage_record_id for u in platform.usage}
    calls = {u.correlation_id for u in usage if u.correlation_id}
    ledger = [
        e for e in platform.ledger
        if (e.usage_record_id in rows)
        or (
            e.direction == "debit" and e.kind == "usage" and e.correlation_id in calls
            and e.usage_record_id not in every_row and window.start <= e.posted_at < window.end
        )
    ]
    orgs = {i.org_id for i in instances}
    accounts = [a for a in platform.accounts if a.org_id in orgs]
    currencies = {a.currency for a in accounts}
    return BillingEvidence(
        window=window,
        now=platform.now,
        instances=instances,
        components=[c for c in platform.components if c.app_instance_id in wanted],
        usage=usage,
        ledger=ledger,
        accounts=accounts,
        rate_cards=[c for c in platform.rate_cards if c.currency in currencies],
        logs=[e for e in platform.logs if e.app_instance_id in wanted],
    )
