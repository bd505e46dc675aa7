"""A setting is declared once: a second declaration in the class body silently replaces the first (its
default, bounds and description), so the one read in config.py may not be the one in force."""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import stalela.config


def test_no_setting_is_declared_twice():
    tree = ast.parse(Path(stalela.config.__file__).read_text())
    twice = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        names = Counter(s.target.id for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name))
        twice.update({f"{cls.name}.{name}": n for name, n in names.items() if n > 1})
    assert twice == {}
