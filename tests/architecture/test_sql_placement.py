"""All SQL lives in the repositories (DESIGN.md §3): a module elsewhere that builds a statement fails here.

Read from the source (no import), so a module is judged even where nothing imports it yet.
"""
from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "stalela"
# What builds or runs a statement; column types, events and the session classes are not SQL.
STATEMENT_BUILDERS = {"select", "update", "insert", "delete", "text", "func", "case", "exists", "tuple_", "and_",
                      "or_", "not_", "literal", "literal_column", "union", "union_all", "values"}
# Debts from before this test, each to move into its package's repository; the list may only shrink.
# tenancy/context.py stays: it is the session's row-level-security binding (set_config), not a query.
KNOWN = {"accounts/audit_endpoints.py", "accounts/service.py", "audit/service.py", "auth/tokens.py", "auth/users.py",
         "cli/audit.py", "cli/bootstrap.py", "fiscal/ledger/tasks.py", "fiscal/reports/export.py",
         "fiscal/reports/jobs.py", "tenancy/context.py"}


def builds_sql(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "sqlalchemy" or node.module.startswith(("sqlalchemy.sql", "sqlalchemy.dialects"))):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name in STATEMENT_BUILDERS or node.module.startswith("sqlalchemy.dialects")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "sqlalchemy" or a.name.startswith("sqlalchemy.sql")]
    return found


def offenders() -> dict[str, list[str]]:
    out = {}
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        # Where SQL and tables belong: a package's repository.py and models.py, or, in a package shared by
        # several topics (privacy: exports, retention), each topic's <topic>_repository.py and <topic>_models.py.
        if path.name in ("repository.py", "models.py") or path.name.endswith(("_repository.py", "_models.py")) \
                or rel.startswith(("db/", "migrations/")):
            continue
        if found := builds_sql(path):
            out[rel] = found
    return out


def test_sql_is_built_only_in_repositories():
    new = {rel: found for rel, found in offenders().items() if rel not in KNOWN}
    assert not new, f"SQL outside a repository.py (add a method to the package's repository): {new}"


def test_the_detector_sees_a_statement(tmp_path):
    probe = tmp_path / "gauges.py"
    probe.write_text("from sqlalchemy import func, select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n")
    assert builds_sql(probe) == ["sqlalchemy.func", "sqlalchemy.select"]
