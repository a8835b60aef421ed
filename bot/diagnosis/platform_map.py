"""The platform's names, in one place: services, span names of the four trace stages,
and the log events that tell who emitted, published and recorded metering.

An operator whose platform names these differently changes this file, not the checks.
"""

from __future__ import annotations

import re

from bot.diagnosis.model import StageName

SVC_API = "gpuaas-api"
SVC_RUNTIME = "gpuaas-app-runtime-worker"
SVC_BILLING = "gpuaas-billing-worker"
SVC_WEBHOOK = "gpuaas-webhook-worker"

# stage -> (service, span-name pattern)
STAGE_SPANS: dict[StageName, tuple[str, re.Pattern[str]]] = {
    "app_lifecycle": (SVC_API, re.compile(r"POST /v1/app-instances/[^/\s]+/(start|stop)")),
    "outbox_publish": (SVC_RUNTIME, re.compile(r"outbox\.publish")),
    "billing_worker": (SVC_BILLING, re.compile(r"billing\.handle_usage")),
    "payment_webhook": (SVC_WEBHOOK, re.compile(r"payment\.webhook")),
}

EV_METERING_EMITTED = "metering.emitted"
EV_OUTBOX_PUBLISHED = "outbox.published"
EV_OUTBOX_FAILED = "outbox.publish_failed"
EV_USAGE_RECORDED = "billing.usage_recorded"
EV_USAGE_REJECTED = "billing.usage_rejected"
EV_DUPLICATE_SKIPPED = "billing.duplicate_skipped"
EV_LEDGER_POSTED = "billing.ledger_posted"

GRACE_HOURS = 2  # usage may arrive up to 2 hours after its hour ends (rule 4)
