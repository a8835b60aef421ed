"""docs/ARCHITECTURE.md stays true: every `file` `function` pair it names is defined there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAIR = re.compile(r"`([\w/]+\.py)` \| `(\w+)`|`([\w/]+\.py)` `(\w+)`")


def named_pairs() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return [(m.group(1) or m.group(3), m.group(2) or m.group(4)) for m in PAIR.finditer(text)]


def defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def test_every_hop_exists() -> None:
    pairs = named_pairs()
    assert len(pairs) >= 40
    missing = [f"{f} {name}" for f, name in pairs if not (ROOT / f).is_file() or name not in defined(ROOT / f)]
    assert not missing, f"docs/ARCHITECTURE.md names what does not exist: {missing}"
