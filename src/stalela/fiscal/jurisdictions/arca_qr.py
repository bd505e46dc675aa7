"""The QR code ARCA requires on every printed receipt (RG 4892/2020): a URL carrying the receipt's
facts as base64 JSON, which ARCA's own page decodes and checks against its records.

Pure. The facts come from the receipt's sealed ``ar`` block and its CAE, so the QR says exactly what
was signed and authorised. Specification: https://www.afip.gob.ar/fe/qr/especificaciones.asp
(version 1); decimals and identifiers are JSON numbers, not strings, as the specification's example
shows (clients that quote them produce codes ARCA's reader refuses).
"""
from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

# The specification's URL. ARCA (ex-AFIP) also answers on www.arca.gob.ar; the printed codes in use
# and the specification page still name afip.gob.ar, which keeps working.
BASE_URL = "https://www.afip.gob.ar/fe/qr/?p="


def qr_payload(ar: dict[str, Any], seller_cuit: str, cae: str) -> str:
    """The JSON text of the QR (keys in the specification's order)."""
    fields: list[tuple[str, Any]] = [
        ("ver", 1),
        ("fecha", ar["date"]),
        ("cuit", int(seller_cuit)),
        ("ptoVta", int(ar["point_of_sale"])),
        ("tipoCmp", int(ar["cbte_tipo"])),
        ("nroCmp", int(ar["number"])),
        ("importe", Decimal(ar["imp_total"])),
        ("moneda", ar["currency"]),
        ("ctz", Decimal(ar["exchange_rate"])),
        ("tipoDocRec", int(ar["doc_type"])),
        ("nroDocRec", int(ar["doc_number"] or 0)),
        ("tipoCodAut", "E"),  # E: the receipt was authorised with a CAE (A would be a CAEA)
        ("codAut", int(cae)),
    ]
    # json cannot write a Decimal as a number; its exact text is a valid JSON number.
    parts = [f"{json.dumps(k)}:{_number(v) if isinstance(v, Decimal) else json.dumps(v)}" for k, v in fields]
    return "{" + ",".join(parts) + "}"


def qr_url(ar: dict[str, Any], seller_cuit: str, cae: str) -> str:
    """``https://www.afip.gob.ar/fe/qr/?p=`` + standard base64 (not URL-safe, as specified) of the JSON."""
    return BASE_URL + base64.b64encode(qr_payload(ar, seller_cuit, cae).encode("utf-8")).decode("ascii")


def _number(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
