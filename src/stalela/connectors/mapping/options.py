"""A connection's mapping settings. Stored as JSON with the connection (`as_json` / `from_json`), and
given in full to every mapping call: the mapping reads no setting, tenant or clock of its own."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from stalela.connectors.mapping.values import Unmappable, amount


@dataclass(frozen=True, kw_only=True)
class ExchangeRate:
    """Units of the jurisdiction's currency (CDF, pesos) per 1 unit of a foreign one, on ``date``."""

    rate: Decimal
    date: str  # YYYY-MM-DD: the DRC shows it with the USD equivalent


@dataclass(frozen=True, kw_only=True)
class MappingOptions:
    # DRC: the tax group of a line the platform says nothing about, and of one it says is untaxed.
    default_tax_group: str = "B"
    untaxed_tax_group: str = "A"
    # Argentina: the same, as line vat_rate codes.
    default_vat_rate: str = "21"
    untaxed_vat_rate: str = "exento"
    # The order currencies (ISO 4217) the connection invoices; None: the jurisdiction's own, plus any
    # currency of ``exchange_rates``. Another one parks the order (unsupported_currency).
    currencies: frozenset[str] | None = None
    # Per foreign currency: the DRC converts the amounts to CDF at this rate and shows the USD
    # equivalent; Argentina issues a DOL receipt with it as MonCotiz. The caller supplies the day's rate.
    exchange_rates: Mapping[str, ExchangeRate] = field(default_factory=lambda: MappingProxyType({}))
    # DRC: shipping is a service line (item type SER); False bills it as part of the goods (BIE).
    shipping_as_service: bool = True
    # The rounding rule's unit (totals.allowed_difference): per order, plus per line the platform taxed.
    tolerance: Decimal = Decimal("0.01")
    # Argentina: the tenant's own IVA condition (decides A/B or C receipts); required for AR.
    issuer_vat_condition: str | None = None
    # Argentina: the IVA condition of a buyer who gave a CUIT and whose platform states none.
    cuit_vat_condition: str = "responsable_inscripto"
    # DRC: the client type of a buyer who gave a tax id (PM company; PC trader, PL liberal profession).
    buyer_type_with_tax_id: str = "PM"
    # DRC: the nature of the credit note for a refunded order (COR: correction).
    credit_note_nature: str = "COR"
    # DRC: when set (CARTEBANCAIRE, MOBILEMONEY, ...), the invoice says the payable was paid so.
    payment_method: str | None = None
    # The invoice's ``reference`` is prefix + order key (unique per outlet: a second seal of the same
    # order is refused by the API); None: "<platform>:". Give the shop when one outlet has several.
    reference_prefix: str | None = None

    def __post_init__(self) -> None:
        # Same rule as order amounts: no float, so the tolerance is exactly what was configured.
        object.__setattr__(self, "tolerance", _number(self.tolerance, "options.tolerance"))
        if self.tolerance < 0:
            raise ValueError("options.tolerance must not be negative")
        rates = {}
        for currency, rate in dict(self.exchange_rates).items():
            if not isinstance(rate, ExchangeRate):
                raise TypeError(f"options.exchange_rates[{currency!r}] must be an ExchangeRate")
            rates[currency] = ExchangeRate(rate=_number(rate.rate, f"options.exchange_rates[{currency}].rate"),
                                           date=rate.date)
        object.__setattr__(self, "exchange_rates", MappingProxyType(rates))
        if self.currencies is not None:
            object.__setattr__(self, "currencies", frozenset(self.currencies))

    def as_json(self) -> dict[str, Any]:
        return {
            "default_tax_group": self.default_tax_group, "untaxed_tax_group": self.untaxed_tax_group,
            "default_vat_rate": self.default_vat_rate, "untaxed_vat_rate": self.untaxed_vat_rate,
            "currencies": sorted(self.currencies) if self.currencies is not None else None,
            "exchange_rates": {c: {"rate": str(r.rate), "date": r.date} for c, r in sorted(self.exchange_rates.items())},
            "shipping_as_service": self.shipping_as_service, "tolerance": str(self.tolerance),
            "issuer_vat_condition": self.issuer_vat_condition, "cuit_vat_condition": self.cuit_vat_condition,
            "buyer_type_with_tax_id": self.buyer_type_with_tax_id, "credit_note_nature": self.credit_note_nature,
            "payment_method": self.payment_method, "reference_prefix": self.reference_prefix,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MappingOptions:
        values = dict(data)
        if values.get("currencies") is not None:
            values["currencies"] = frozenset(values["currencies"])
        if "exchange_rates" in values:
            values["exchange_rates"] = {c: ExchangeRate(rate=r["rate"], date=r["date"])
                                        for c, r in (values["exchange_rates"] or {}).items()}
        return cls(**values)  # __post_init__ reads the numbers (strings, as as_json wrote them)


def _number(value: Any, field: str) -> Decimal:
    # A bad setting is the caller's error (ValueError), not an order to park.
    try:
        return amount(value, field)
    except Unmappable as exc:
        raise ValueError(exc.detail) from None
