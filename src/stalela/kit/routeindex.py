"""Routing a request without asking every router: one regular expression per router first.

Recent FastAPI keeps each ``include_router`` as one route of the app. To route a request it asks each
of them in turn, and each tries every route it holds, with some bookkeeping of the request scope per
route; the router that matches does it all again to run the route. With some thirty routers and 140
routes, finding ``POST /_bench/noop`` (the last one) was half of that request's CPU, and every route
of a late router paid most of that (py-spy, docs/performance.md).

``install`` gives each such router a guard: the union of its routes' path patterns, tried first. A
path that none of them matches is a path that every one of those routes answers ``Match.NONE`` to,
so skipping the router is exactly what asking it would have decided; otherwise FastAPI routes as
before. Routers holding a route that does not match by path pattern alone (a ``Host``, a frontend
group) are left unguarded. Install it once the app holds all its routes, like the OpenAPI document:
a route added later to an included router would be missed by the guard.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.routing import Match

_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def _guard(patterns: list[re.Pattern[str]]) -> Callable[[str], bool]:
    """One compiled alternation of the patterns (their group names dropped: they may repeat)."""
    try:
        union = re.compile("|".join(f"(?:{_NAMED_GROUP.sub('(?:', p.pattern)})" for p in patterns))
    except re.error:  # a pattern the rewrite cannot handle: try them one by one
        return lambda path: any(p.match(path) for p in patterns)
    return lambda path: union.match(path) is not None


def _leaf_patterns(route: Any, contexts: Callable[[list[Any]], Any]) -> list[re.Pattern[str]] | None:
    """The path patterns of every route under ``route``, or None if one of them has none."""
    patterns = []
    for leaf in contexts([route]):
        pattern = getattr(leaf, "path_regex", None)
        if not isinstance(pattern, re.Pattern):
            return None
        patterns.append(pattern)
    return patterns


def install(app: Any) -> int:
    """Guard each included router of ``app``; returns how many were guarded (0 on a FastAPI that
    copies included routes into the app, whose routes are plain patterns already)."""
    try:
        from fastapi.routing import _IncludedRouter, iter_route_contexts
        from starlette._utils import get_route_path  # what Starlette's own routes match against
    except ImportError:
        return 0
    guarded = 0
    for route in app.router.routes:
        if not isinstance(route, _IncludedRouter) or "matches" in vars(route):
            continue
        patterns = _leaf_patterns(route, iter_route_contexts)
        if not patterns:
            continue
        may_match, matches = _guard(patterns), route.matches

        def guarded_matches(scope: Any, may_match: Callable[[str], bool] = may_match,
                            matches: Callable[[Any], Any] = matches, route_path: Callable[[Any], str] = get_route_path,
                            ) -> tuple[Match, dict]:
            if scope["type"] in ("http", "websocket") and not may_match(route_path(scope)):
                return Match.NONE, {}
            return matches(scope)

        route.matches = guarded_matches  # this instance only: FastAPI's class stays as it is
        guarded += 1
    return guarded
