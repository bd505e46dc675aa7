"""The parser is pure (issue 19, item 5): besides the import-linter contract (which cannot see the
standard library: its graph leaves it out), no drafting module imports the standard library's I/O,
clock or randomness, nor calls open(). evaluate.py is the offline evaluation tool of the same
package: it reads the evaluation set and `--fit` writes the table, so it is the one exception."""
from __future__ import annotations

import ast
from pathlib import Path

import stalela.assistants.parser as parser_package

FORBIDDEN = {"socket", "ssl", "urllib", "http", "ftplib", "smtplib", "asyncio", "subprocess", "multiprocessing",
             "threading", "time", "random", "secrets", "uuid", "sqlite3", "shelve", "tempfile", "os", "pathlib",
             "io", "shutil", "glob", "importlib", "requests", "httpx"}
TOOLS = {"evaluate.py"}


def _modules():
    root = Path(parser_package.__file__).parent
    return [p for p in sorted(root.glob("*.py")) if p.name not in TOOLS]


def test_the_drafting_modules_import_no_io_clock_or_randomness():
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"open", "eval", "exec"}:
                found.append(f"{path.name}: {node.func.id}()")
    assert not found
    assert len(_modules()) >= 8
