"""Builds the sources a diagnosis reads from the settings (and nothing else).

- Logs: ``LOKI_URL`` → Loki over HTTP; else an offline evidence folder
  (``--evidence`` / ``RECON_EVIDENCE_DIR``); else unavailable.
- Traces: likewise with ``TEMPO_URL``.
- Billing: ``BILLING_DATABASE_URL`` → that database (read-only); else the demo
  billing database inside the embedded PostgreSQL. When the demo billing database is
  in use and no folder is given, the demo's own offline evidence is the folder, so
  the demo platform is read as one consistent whole.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from bot.errors import EmbeddedPostgresError
from bot.export.fetch import check_template
from bot.export.request import ExportFetch
from bot.flows.diagnosis import SourceSet
from bot.settings import Settings
from bot.sources.billing import PostgresBillingReader
from bot.sources.loki import LokiLogSource
from bot.sources.offline import OfflineEvidence
from bot.sources.tempo import TempoTraceSource

log = logging.getLogger(__name__)

DEMO_BILLING_DB = "recon_demo_billing"


def export_fetch(settings: Settings) -> ExportFetch | None:
    """``BILLING_EXPORT_URL`` as the export every diagnosis fetches (None when unset)."""
    if not settings.billing_export_url:
        return None
    check_template(settings.billing_export_url)
    return ExportFetch(settings.billing_export_url, _secret(settings.billing_export_token),
                       timeout_s=settings.export_timeout_s, max_bytes=settings.export_max_bytes)


async def demo_billing_url(settings: Settings, *, create: bool = False) -> str | None:
    """The embedded demo billing database's URL; None when it does not exist (yet)."""
    from bot.store.embedded import ensure_database, ensure_embedded

    server = await ensure_embedded(settings.pgdata_dir)
    if create:
        await ensure_database(server.base_uri, DEMO_BILLING_DB)
        return server.url_for(DEMO_BILLING_DB)
    conn = await asyncpg.connect(server.base_uri)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", DEMO_BILLING_DB)
    finally:
        await conn.close()
    return server.url_for(DEMO_BILLING_DB) if exists else None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


@contextlib.asynccontextmanager
async def open_sources(settings: Settings, evidence_dir: Path | None = None) -> AsyncIterator[SourceSet]:
    """The three sources, closed again on exit."""
    missing: dict[str, str] = {}
    folder = evidence_dir or settings.evidence_dir
    billing: PostgresBillingReader | None = None
    using_demo_billing = False
    if settings.billing_database_url is not None:
        billing = PostgresBillingReader(settings.billing_database_url.get_secret_value(),
                                        statement_timeout_ms=settings.billing_statement_timeout_ms)
    else:
        try:
            url = await demo_billing_url(settings)
        except (EmbeddedPostgresError, OSError, asyncpg.PostgresError) as exc:
            url = None
            missing["billing"] = f"BILLING_DATABASE_URL is not set and the embedded PostgreSQL failed: {exc}"
        if url is None:
            missing.setdefault("billing", "BILLING_DATABASE_URL is not set and the demo billing database "
                                          "does not exist yet: run `recon demo` first")
        else:
            using_demo_billing = True
            billing = PostgresBillingReader(url, statement_timeout_ms=settings.billing_statement_timeout_ms)
    if folder is None and using_demo_billing and settings.demo_evidence_dir.is_dir():
        folder = settings.demo_evidence_dir
    offline = OfflineEvidence(folder) if folder is not None else None

    loki = None
    if settings.loki_url:
        loki = LokiLogSource(settings.loki_url, settings.loki_tenant, timeout_s=settings.source_timeout_s,
                             batch=settings.loki_batch, max_entries=settings.loki_max_entries,
                             user=settings.loki_user, password=_secret(settings.loki_password),
                             bearer_token=_secret(settings.loki_bearer_token))
    elif offline is None:
        missing["loki"] = "LOKI_URL is not set and no offline evidence folder was given (--evidence)"
    tempo = None
    if settings.tempo_url:
        tempo = TempoTraceSource(settings.tempo_url, settings.tempo_tenant, timeout_s=settings.source_timeout_s,
                                 user=settings.tempo_user, password=_secret(settings.tempo_password),
                                 bearer_token=_secret(settings.tempo_bearer_token))
    elif offline is None:
        missing["tempo"] = "TEMPO_URL is not set and no offline evidence folder was given (--evidence)"

    sources = SourceSet(
        logs=loki if loki is not None else (offline.logs if offline is not None else None),
        traces=tempo if tempo is not None else (offline.traces if offline is not None else None),
        billing=billing,
        missing=missing,
        warm_up=(offline.prepare,) if offline is not None and (loki is None or tempo is None) else (),
        export=export_fetch(settings),
        sequential=settings.diagnosis_sequential,
    )
    try:
        yield sources
    finally:
        for closer in (loki, tempo, billing):
            if closer is not None:
                try:
                    await closer.aclose()
                except Exception:
                    log.warning("closing %s failed", type(closer).__name__, exc_info=True)
