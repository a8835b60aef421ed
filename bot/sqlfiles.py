"""Named SQL queries kept in ``.sql`` files, one query per file, loaded once.

``Queries("bot.sources", "sql")["usage_by_correlation"]`` is the text of
``bot/sources/sql/usage_by_correlation.sql``. Queries are parameterised ($1, $2, …),
always; nothing is ever formatted into SQL text.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


class Queries:
    def __init__(self, package: str, folder: str) -> None:
        self._package = package
        self._folder = folder

    def __getitem__(self, name: str) -> str:
        return _load(self._package, self._folder, name)

    def names(self) -> list[str]:
        root = resources.files(self._package).joinpath(self._folder)
        return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".sql"))


@cache
def _load(package: str, folder: str, name: str) -> str:
    path = resources.files(package).joinpath(folder).joinpath(f"{name}.sql")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(f"no SQL query named {name!r} in {package}/{folder}") from None
