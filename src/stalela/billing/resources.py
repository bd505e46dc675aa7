"""The metered resources: what a usage event may name, whether it is a counter or a gauge, and how many
decimal places its quantities carry (``scale``: quantities are stored as integers ``quantity × 10^scale``).

Six are built in; ``settings.usage_resources`` ("name:kind:scale,...") adds more. ``all_resources``
parses the setting and remembers it, so that ``get(name)``, ``of_stored`` and ``gauges`` without settings
know the extras of the running process: the worker bootstrap installs its settings so; a process that
installed none reads them from its environment (``get_settings``), as it was started.

This is the one registry: rating (prices, quotas), anomalies (scales) and usage all read it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Literal

from stalela.config import Settings, get_settings
from stalela.errors import ValidationFailed

Kind = Literal["counter", "gauge"]
MAX_SCALE = 9
# At most 10^15 minor units per event: a day's sum of many events still fits a 64-bit integer column
# (the daily aggregate) with room to spare, and no single event can be a typo of many orders of magnitude.
MAX_UNITS = 10**15
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A plain decimal: digits, optionally a point and more digits. No sign, exponent, NaN or Infinity.
_DECIMAL_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?\Z")


@dataclass(frozen=True)
class Resource:
    name: str
    kind: Kind
    scale: int
    unit: str

    def to_units(self, quantity: Decimal) -> int:
        return int(quantity.scaleb(self.scale))

    def from_units(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.scale) if self.scale else Decimal(units)


BUILTIN: dict[str, Resource] = {r.name: r for r in (
    Resource("api_calls", "counter", 0, "call"),
    Resource("invoices_sealed", "counter", 0, "invoice"),
    Resource("storage_bytes", "gauge", 0, "byte"),
    Resource("network_bytes", "counter", 0, "byte"),
    Resource("cpu_seconds", "counter", 6, "second"),
    Resource("memory_byte_seconds", "counter", 0, "byte-second"),
)}
_configured: dict[str, Resource] | None = None  # the running process's registry, once known


@lru_cache(maxsize=16)
def _parse(spec: str | None) -> dict[str, Resource]:
    out = dict(BUILTIN)
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3 or not _NAME_RE.match(parts[0]) or parts[1] not in ("counter", "gauge") \
                or not parts[2].isdigit() or int(parts[2]) > MAX_SCALE:
            raise ValueError(f"STALELA_USAGE_RESOURCES: {item!r} is not name:counter|gauge:scale (scale 0-{MAX_SCALE})")
        if parts[0] in BUILTIN:
            raise ValueError(f"STALELA_USAGE_RESOURCES: {parts[0]!r} is built in")
        out[parts[0]] = Resource(parts[0], parts[1], int(parts[2]), "unit")  # type: ignore[arg-type]
    return out


def all_resources(settings: Settings) -> dict[str, Resource]:
    """Built-ins plus the settings' extras, by name."""
    global _configured
    _configured = _parse(settings.usage_resources)
    return _configured


def _registry(settings: Settings | None) -> dict[str, Resource]:
    if settings is not None:
        return all_resources(settings)
    return _configured if _configured is not None else all_resources(get_settings())


def gauges(settings: Settings | None = None) -> list[str]:
    """The names of the gauges (without settings: those of the running process)."""
    registry = _registry(settings)
    return sorted(name for name, resource in registry.items() if resource.kind == "gauge")


def of_stored(name: str, settings: Settings | None = None) -> Resource:
    """The resource of rows already stored. A name since removed from ``STALELA_USAGE_RESOURCES`` still
    reads (as a counter without decimals): its events stay readable, never a 404."""
    return _registry(settings).get(name) or Resource(name, "counter", 0, "unit")


def lookup(registry: dict[str, Resource], name: object, field: str = "resource") -> Resource:
    """The resource an input names, or a 422 naming the field."""
    resource = registry.get(name) if isinstance(name, str) else None
    if resource is None:
        raise ValidationFailed(f"unknown resource {name!r}; known: {', '.join(sorted(registry))}",
                               code="unknown_resource", field=field)
    return resource


def parse_quantity(resource: Resource, raw: object, field: str = "quantity") -> int:
    """A quantity as sent (a decimal string, or an integer) -> integer minor units, or a 422 naming the field."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise _bad_quantity(field, "the quantity is a decimal string, e.g. \"12.5\"")
    text = str(raw)
    match = _DECIMAL_RE.match(text)
    if match is None:
        raise _bad_quantity(field, "the quantity is a non-negative plain decimal (digits and at most one point; "
                                   "no sign, exponent, NaN or Infinity)")
    if len(match.group(2) or "") > resource.scale:
        raise _bad_quantity(field, f"{resource.name} quantities carry at most {resource.scale} decimal places",
                            code="usage_quantity_precision")
    if len(text) > 40:
        raise _bad_quantity(field, "the quantity is too large", code="usage_quantity_too_large")
    try:
        units = resource.to_units(Decimal(text))
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise _bad_quantity(field, "the quantity is not a decimal") from None
    if units > MAX_UNITS:
        raise _bad_quantity(field, f"the quantity is too large (at most {resource.from_units(MAX_UNITS)} for "
                                   f"{resource.name})", code="usage_quantity_too_large")
    return units


def _bad_quantity(field: str, detail: str, code: str = "usage_quantity_invalid") -> ValidationFailed:
    return ValidationFailed(detail, code=code, field=field)
