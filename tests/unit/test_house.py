"""The house rule on imports: no module of bot/ or handlers/ imports itself back, through
any chain of imports. Every import counts, wherever it is written: at the top, under
``if TYPE_CHECKING:``, or inside a function (a late import hides a cycle, it does not
remove it)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(tree: ast.Module, name: str, is_package: bool, mods: Mapping[str, Path]) -> Iterator[str]:
    """The modules a module's import statements load, relative ones resolved:
    ``from a.b import c`` loads module ``a.b.c`` if there is one, else ``a.b``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base


def import_graph(mods: Mapping[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        loaded = _imported(tree, name, path.name == "__init__.py", mods)
        graph[name] = {target for target in loaded if target in mods and target != name}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph(modules(ROOT))
    assert len(graph) > 50, "the walk found the packages"
    assert cycles(graph) == [], "modules that import each other (move the shared part down, or pass it in)"


def test_the_walk_sees_late_and_type_checking_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle closed only by a TYPE_CHECKING import, or only by a
    function-local relative one, is still a cycle."""
    (tmp_path / "bot").mkdir()
    (tmp_path / "handlers").mkdir()
    (tmp_path / "bot" / "__init__.py").write_text("")
    (tmp_path / "handlers" / "__init__.py").write_text("")
    (tmp_path / "bot" / "a.py").write_text("from bot.b import thing\n")
    (tmp_path / "bot" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot import a\nthing = 1\n")
    (tmp_path / "handlers" / "h.py").write_text("import bot.a\n")
    (tmp_path / "bot" / "c.py").write_text("def f():\n    from . import d\n")
    (tmp_path / "bot" / "d.py").write_text("from bot.c import f\n")
    graph = import_graph(modules(tmp_path))
    assert graph["handlers.h"] == {"bot.a"}
    assert cycles(graph) == [["bot.a", "bot.b"], ["bot.c", "bot.d"]]
