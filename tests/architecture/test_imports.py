"""The architecture the build enforces: `lint-imports` runs with the tests, and every package of the
service falls under its contracts (docs/architecture.md, "Dependency rules")."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
FACES = {"stalela.app", "stalela.asgi", "stalela.cli", "stalela.dashboard", "stalela.supervisor", "stalela.workers", "stalela.sealers"}
# The base every package may use; i18n (languages, formatting) sits in it, between the kit and config.
BASE = {"stalela.kit", "stalela.i18n", "stalela.config", "stalela.errors"}


def lint_imports() -> Path:
    found = Path(sys.executable).with_name("lint-imports")
    if found.exists():
        return found
    which = shutil.which("lint-imports")
    if which is None:
        pytest.fail("lint-imports is not installed: it is in the test extras (pip install -e '.[test]')")
    return Path(which)


def contract(name_start: str) -> dict:
    (found,) = [c for c in CONFIG["contracts"] if c["name"].startswith(name_start)]
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("stalela", exclude_type_checking_imports=True)


def units(graph: grimp.ImportGraph) -> set[str]:
    """The packages the contracts speak of: stalela's children, with stalela.fiscal split in its own."""
    children = graph.find_children("stalela") - {"stalela.fiscal"}
    return children | graph.find_children("stalela.fiscal")


def test_lint_imports_keeps_every_contract():
    result = subprocess.run([str(lint_imports()), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"import-linter contracts broken:\n{result.stdout}\n{result.stderr}"
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in result.stdout


def test_no_contract_is_kept_by_ignoring_imports():
    assert not [c["name"] for c in CONFIG["contracts"] if c.get("ignore_imports")]


def test_every_package_has_its_contract_lines(graph):
    """A new package is placed under every rule the day it is created, or this fails naming it."""
    missing: dict[str, list[str]] = {}
    acyclic = set(contract("No circle between the modules or subpackages")["ancestors"])
    pure = contract("The fiscal core is pure")
    base = contract("The kit, errors and config sit below")
    outbox = contract("The outbox knows no consumer")
    observability = contract("Observability knows no domain")
    faces = contract("Nothing below the faces")
    stacked = {part.strip() for name in ("The stack of stalela:", "The stack of stalela.fiscal:")
               for layer in contract(name)["layers"] for part in layer.replace(":", "|").split("|")}
    # What the outbox may reach (the platform and the base; fiscal signing through tenancy) and what
    # observability may: everything else is named in their forbidden lists.
    outbox_may = BASE | {"stalela.outbox", "stalela.audit", "stalela.auth", "stalela.tenancy", "stalela.db",
                         "stalela.observability", "stalela.health", "stalela.fiscal.core",
                         "stalela.fiscal.jurisdictions", "stalela.fiscal.signing"} | FACES
    observability_may = BASE | {"stalela.observability"} | FACES
    for unit in sorted(units(graph)):
        is_package = bool(graph.find_children(unit))
        gaps = []
        if unit not in stacked:
            gaps.append("a layer of its stack")
        if is_package and unit not in acyclic:
            gaps.append("acyclic_siblings ancestors")
        if unit not in BASE | {"stalela.fiscal.core"} and unit not in pure["forbidden_modules"]:
            gaps.append("the pure core's forbidden_modules")
        top = ".".join(unit.split(".")[:2])
        if unit not in BASE and top not in base["forbidden_modules"]:
            gaps.append("the base's forbidden_modules")
        if unit not in outbox_may and unit not in outbox["forbidden_modules"]:
            gaps.append("the outbox's forbidden_modules")
        if top not in observability_may and top not in observability["forbidden_modules"]:
            gaps.append("observability's forbidden_modules")
        if top not in faces["forbidden_modules"] and top not in faces["source_modules"]:
            gaps.append("the faces contract (as a face, or as a source below them)")
        if gaps:
            missing[unit] = gaps
    assert not missing, f"packages missing from the import-linter contracts in pyproject.toml: {missing}"
