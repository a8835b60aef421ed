"""An org (and project) named as a dispute's scope: does the billing database know it?

``/recon org`` and the reconcile modal take any well-formed org id; before a whole
diagnosis is opened for it, the billing database is asked whether the org exists at
all (a billing account, or any app instance ever). An unknown org is answered as such,
with no incident opened; a known org with no instance in the window is a clean answer
from the diagnosis itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.diagnosis.model import Subject, Window
from bot.errors import SourceFailure
from bot.sources.protocols import BillingReader

_EVER = datetime(2000, 1, 1, tzinfo=UTC)


def org_scope_of(subject: Subject) -> tuple[str, str | None] | None:
    """An org (and project) diagnosed as a whole: a subject with no correlation or app instance id."""
    if subject.org_id and not (subject.correlation_id or subject.app_instance_id):
        return subject.org_id, subject.project_id
    return None


async def org_unknown(billing: BillingReader | None, org_id: str, now: datetime) -> bool:
    """True when the billing database has neither a billing account nor any app instance
    of ``org_id``. False when it knows the org, or cannot be asked (the diagnosis then
    reports the source as unavailable)."""
    if billing is None:
        return False
    try:
        accounts = await billing.billing_accounts([org_id])
        if accounts.items:
            return False
        ever = await billing.instances_in_scope(org_id, None, Window(_EVER, now))
    except SourceFailure:
        return False
    return not ever.items


def unknown_org_text(org_id: str, project_id: str | None) -> str:
    scope = f"`{org_id}`" + (f" (project `{project_id}`)" if project_id else "")
    return (f":grey_question: The billing database knows no org {scope}: no billing account and no app "
            "instance. Nothing was diagnosed; check the id in the dispute.")
