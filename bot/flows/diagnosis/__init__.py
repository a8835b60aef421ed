"""The correlation-first diagnosis, step by step, as the runbook has it.

1. ``logs``: Loki, every service's lines for the correlation id.
2. ``billing_rows``: usage rows and ledger entries that carry the correlation id.
3. ``trace``: the traces those name, read from Tempo; the four stages.
4. ``pivot``: every app instance the evidence names; Loki again by app_instance_id;
   the instances' metadata.
5. ``attribution``: the instances' usage rows in the window against their metadata.
6. ``reconciliation``: ledger entries, accounts and rate cards; the six checks.

One module per step (a ``Step``: ``fetch`` reads the sources into the typed
``RunState``, ``report`` tells it); ``runner`` runs them in order; ``assemble`` makes
the ``Diagnosis``. The reads follow their data, not the runbook's order: a trace and an
instance's logs are asked as soon as any source names them (``leads``: the billing rows
name most of them within milliseconds), so the common case costs one Loki/Tempo round
trip, not three. A step that cannot read a source says so and the run goes on with
what the other sources support (``complete: false``). Every source call is handed to
the observer with what came back, so a recorder can keep it as evidence.
"""

from bot.flows.diagnosis.context import SourceSet
from bot.flows.diagnosis.runner import STEPS, Outcome, diagnose

__all__ = ["STEPS", "Outcome", "SourceSet", "diagnose"]
