"""The jurisdictions Stalela knows, by ISO 3166-1 alpha-2 code."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from stalela.fiscal.core.invoice import ComputedInvoice, InvoiceDraft, OriginalInvoice
from stalela.fiscal.core.rules import Jurisdiction
from stalela.fiscal.jurisdictions.ar import JURISDICTION as _AR
from stalela.fiscal.jurisdictions.drc import JURISDICTION as _DRC

REGISTRY: Mapping[str, Jurisdiction] = MappingProxyType({_DRC.code: _DRC, _AR.code: _AR})


def get_jurisdiction(code: str) -> Jurisdiction:
    """Raises ``KeyError`` for a code with no jurisdiction module."""
    try:
        return REGISTRY[code]
    except KeyError:
        raise KeyError(f"no jurisdiction {code!r}; known: {', '.join(sorted(REGISTRY))}") from None


def jurisdiction_codes() -> frozenset[str]:
    return frozenset(REGISTRY)


# The entry points by code live with the registry, not in the pure core: the core defines the
# protocol and the registry depends on it, so the core never reaches back up for a jurisdiction.
def compute(draft: InvoiceDraft, original: OriginalInvoice | None = None, *,
            jurisdiction: Jurisdiction | str = "CD") -> ComputedInvoice:
    """For callers that hold a jurisdiction code rather than the object."""
    return _resolve(jurisdiction).compute(draft, original)


def validate(draft: InvoiceDraft, original: OriginalInvoice | None = None, *,
             jurisdiction: Jurisdiction | str = "CD") -> None:
    _resolve(jurisdiction).validate(draft, original)


def _resolve(jurisdiction: Jurisdiction | str) -> Jurisdiction:
    return get_jurisdiction(jurisdiction) if isinstance(jurisdiction, str) else jurisdiction
