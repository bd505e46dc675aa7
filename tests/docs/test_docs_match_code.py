"""The docs match the code (issue 23, item 8): every route of the app is in the docs, with its method and path,
and every setting of `stalela/config.py` is in docs/operations.md. Routes and settings added later fail here,
the message listing exactly what is missing and where it belongs."""
from __future__ import annotations

import re
from pathlib import Path

from stalela.config import Settings
from stalela.kit.openapi import all_routes

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Where a route belongs: the API's (in the OpenAPI document) in api.md's route index; the consoles' in
# dashboards.md's routes; /metrics with the observability guide.
HOMES = {"api": "api.md", "/app": "dashboards.md", "/ops": "dashboards.md", "/static": "dashboards.md",
         "/metrics": "observability.md"}


def _params_blind(text: str) -> str:
    """``{invoice_id}`` and ``{id}`` read alike: a doc may name a path parameter its own way."""
    return re.sub(r"\{[^}/]*\}", "{}", text)


def _home(path: str, in_schema: bool) -> str:
    if in_schema:
        return HOMES["api"]
    return next((doc for prefix, doc in HOMES.items() if path == prefix or path.startswith(prefix + "/")), HOMES["api"])


def test_every_route_is_documented(app):
    texts = {name: _params_blind((DOCS / name).read_text(encoding="utf-8")) for name in set(HOMES.values())}
    missing: dict[str, list[str]] = {}
    for route in all_routes(app):
        methods, path = getattr(route, "methods", None), getattr(route, "path_format", None)
        if not methods or path is None:
            continue
        home = _home(path, bool(getattr(route, "include_in_schema", False)))
        for method in sorted(methods - {"HEAD"}):
            if f"{method} {_params_blind(path)}" not in texts[home]:
                missing.setdefault(home, []).append(f"{method} {path}")
    assert not missing, "routes missing from the docs (as `METHOD /path`):\n" + "\n".join(
        f"  docs/{home}: " + ", ".join(routes) for home, routes in sorted(missing.items()))


def test_every_setting_is_in_the_operations_guide():
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    names = [f"{Settings.model_config['env_prefix']}{field.upper()}" for field in Settings.model_fields]
    missing = [name for name in names if not re.search(re.escape(name) + r"(?![A-Z0-9_])", text)]
    assert not missing, "settings missing from docs/operations.md (table \"Every setting\"): " + ", ".join(missing)
