"""The mapping is pure (issue 20, item 4): the import-linter contract cannot see the standard library
(its graph leaves it out), so this test forbids the standard library's I/O, clock and randomness in the
package, and calls of open()/eval()/exec() and of the clock through datetime."""
from __future__ import annotations

import ast
from pathlib import Path

import stalela.connectors.mapping as mapping_package

FORBIDDEN = {"socket", "ssl", "urllib", "http", "ftplib", "smtplib", "asyncio", "subprocess", "multiprocessing",
             "threading", "time", "random", "secrets", "uuid", "sqlite3", "shelve", "tempfile", "os", "pathlib",
             "io", "shutil", "glob", "importlib", "requests", "httpx", "logging", "structlog", "json"}
CLOCK_CALLS = {"now", "utcnow", "today", "fromtimestamp", "time"}


def _modules() -> list[Path]:
    return sorted(Path(mapping_package.__file__).parent.glob("*.py"))


def test_the_mapping_modules_import_no_io_clock_or_randomness() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id in {"open", "eval", "exec", "print"}:
                    found.append(f"{path.name}: {node.func.id}()")
                if isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS:
                    found.append(f"{path.name}: .{node.func.attr}() (the clock)")
    assert not found
    assert len(_modules()) >= 12


def test_no_module_is_long() -> None:
    assert all(len(p.read_text(encoding="utf-8").splitlines()) < 600 for p in _modules())
