"""docs/architecture.md's package map names every package of `src/stalela` (issue 23, item 8: webhooks, users,
dashboards, reports, i18n and controlplane were missing from it or its diagram) and every top-level module."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "stalela"


def _package_map() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index("## Package map")
    return text[start:text.index("\n## ", start + 1)]


def test_every_package_and_module_is_in_the_package_map():
    text = _package_map()
    missing = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        relative = init.parent.relative_to(PACKAGE).as_posix()
        # A top-level package, or fiscal's, has a row of its own; a deeper one is named in its parent's row.
        if relative != "." and f"`{relative}/`" not in text and f"`{relative.rsplit('/', 1)[-1]}/`" not in text:
            missing.append(f"{relative}/")
    missing += [m.name for m in sorted(PACKAGE.glob("*.py")) if m.name != "__init__.py" and f"`{m.name}`" not in text]
    assert not missing, "docs/architecture.md's package map does not name: " + ", ".join(missing)


def test_the_diagram_shows_every_top_level_package():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = text[text.index("```mermaid"):]
    diagram = diagram[:diagram.index("```", 10)]
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    # A node's label starts with its package's name: `controlplane["controlplane<br/>...`, `obs["observability"]`.
    missing = [name for name in packages if f'["{name}' not in diagram]
    assert not missing, "the package diagram of docs/architecture.md lacks: " + ", ".join(missing)
