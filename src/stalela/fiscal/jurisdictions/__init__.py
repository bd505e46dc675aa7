"""The jurisdictions Stalela knows, by ISO 3166-1 alpha-2 code."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from stalela.fiscal.core.rules import Jurisdiction
from stalela.fiscal.jurisdictions.drc import JURISDICTION as _DRC

REGISTRY: Mapping[str, Jurisdiction] = MappingProxyType({_DRC.code: _DRC})


def get_jurisdiction(code: str) -> Jurisdiction:
    """Raises ``KeyError`` for a code with no jurisdiction module."""
    try:
        return REGISTRY[code]
    except KeyError:
        raise KeyError(f"no jurisdiction {code!r}; known: {', '.join(sorted(REGISTRY))}") from None


def jurisdiction_codes() -> frozenset[str]:
    return frozenset(REGISTRY)
