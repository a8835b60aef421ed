"""Opening the bot's store: where it lives, migrated, wrapped in a ``Store``.

- ``store_url(settings)``: ``DATABASE_URL``, or the embedded server's database
  ``recon`` (created when missing).
- ``open_store(settings)``: a pool on that URL (``bot.store.db.connect_pool``), the
  schema brought up to date (``bot.store.db.migrate``), as a ``Store``.
"""

from __future__ import annotations

import logging

from bot.settings import Settings
from bot.store.db import connect_pool, migrate
from bot.store.embedded import ensure_database, ensure_embedded
from bot.store.store import Store

log = logging.getLogger(__name__)


async def store_url(settings: Settings) -> str:
    """``DATABASE_URL``, or the URL of database ``recon`` on the embedded server."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    server = await ensure_embedded(settings.pgdata_dir)
    await ensure_database(server.base_uri, "recon")
    return server.url_for("recon")


async def open_store(settings: Settings, *, max_size: int = 10) -> Store:
    """The store, migrated: ``DATABASE_URL`` if set, else the embedded server."""
    url = await store_url(settings)
    pool = await connect_pool(url, max_size=max_size, acquire_timeout_s=settings.store_acquire_timeout_s,
                              statement_timeout_ms=settings.store_statement_timeout_ms)
    try:
        applied = await migrate(pool)
    except BaseException:
        await pool.close()
        raise
    if applied:
        log.info("store schema brought up to date: %s", ", ".join(applied))
    return Store(pool)
