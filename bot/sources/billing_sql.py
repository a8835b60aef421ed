"""The billing reader's named queries (one ``.sql`` file each, ``bot/sources/sql/``) and
its source name, shared by ``billing`` and ``billing_export``."""

from __future__ import annotations

from bot.sqlfiles import Queries

SOURCE = "billing"
QUERIES = Queries("bot.sources", "sql")
