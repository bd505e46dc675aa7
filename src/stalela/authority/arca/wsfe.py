"""WSFEv1 (factura electrónica without item detail): the four operations the sync agent needs.

``FEDummy`` (health), ``FECompUltimoAutorizado`` (the last number ARCA holds for a point of sale and
type), ``FECAESolicitar`` (one receipt, built from the sealed document's ``ar`` block) and
``FECompConsultar`` (what ARCA stored under a number: how a lost answer is recovered without asking
for a second CAE). Answers carry ``Errors`` (request-level, no CAE), per-receipt ``Observaciones``
and service ``Events``; they are sorted into the exceptions of ``errors`` by what the caller must do.

Amounts go out as plain decimal text with two places ("121.00"), from ``Decimal`` or strings, never
through ``float``: the schema says double, but the text is what ARCA reads and what we signed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from lxml import etree

from stalela.authority.arca import soap
from stalela.authority.arca.errors import NumberMismatch, Rejected, TokenRejected, Transient

NS = "http://ar.gov.afip.dif.FEV1/"
HOMOLOGATION_URL = "https://wswhomo.afip.gov.ar/wsfev1/service.asmx"
PRODUCTION_URL = "https://servicios1.afip.gov.ar/wsfev1/service.asmx"

TOKEN_ERRORS = frozenset({600, 601})  # 600: ticket expired or clock; 601: CUIT not represented by the ticket
NOT_FOUND = 602  # FECompConsultar: "No existen datos en nuestros registros"
NUMBER_MISMATCH = 10016
BUSY = 502  # "Transacción activa": ARCA is still busy with a previous request of ours


@dataclass(frozen=True)
class Auth:
    token: str
    sign: str
    cuit: str


@dataclass
class CaeResult:
    """FECAESolicitar's answer for one receipt. ``cae_due`` from CAEFchVto; codes as (int, message)."""

    result: str  # A (approved) | R (rejected)
    cae: str | None
    cae_due: date | None
    number: int | None
    processed_at: str | None  # FchProceso, yyyyMMddHHmmss, ARCA's clock
    observations: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)
    raw: str = ""


@dataclass
class StoredReceipt:
    """FECompConsultar's ResultGet: what ARCA holds under (point of sale, type, number)."""

    result: str | None
    cae: str | None
    cae_due: date | None
    point_of_sale: int
    cbte_tipo: int
    number: int
    date: date | None
    total: str | None
    doc_type: int | None
    doc_number: str | None
    emission_type: str | None
    observations: list[tuple[int, str]] = field(default_factory=list)
    raw: str = ""


# --- building requests -------------------------------------------------------------------------


def money(value: Any, name: str) -> str:
    """A plain two-place decimal text; refuses floats, and amounts with more than two places."""
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError(f"{name}: amounts are Decimal or text, never float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name}: not a decimal: {value!r}") from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"{name}: not an amount with at most two decimals: {value!r}")
    return format(amount.quantize(Decimal("0.01")), "f")


def rate(value: Any) -> str:
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError("exchange_rate: Decimal or text, never float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"exchange_rate: not a decimal: {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"exchange_rate: must be positive: {value!r}")
    return format(amount, "f")


def ymd(value: str | date) -> str:
    return (value if isinstance(value, date) else date.fromisoformat(value)).strftime("%Y%m%d")


def _el(parent: etree._Element, name: str, value: Any = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if value is not None:
        element.text = str(value)
    return element


def _operation(name: str) -> etree._Element:
    return etree.Element(f"{{{NS}}}{name}", nsmap={"ar": NS})


def _auth(parent: etree._Element, auth: Auth) -> None:
    element = _el(parent, "Auth")
    _el(element, "Token", auth.token)
    _el(element, "Sign", auth.sign)
    _el(element, "Cuit", auth.cuit)


def cae_request(auth: Auth, ar: dict[str, Any] | list[dict[str, Any]]) -> etree._Element:
    """FECAESolicitar for one receipt, or for consecutive receipts of one series (one FECAEDetRequest
    each, CantReg of them): the ``ar`` blocks as WSFEv1's FECAEDetRequest, elements in the schema's
    order (a .NET service reads a sequence in order)."""
    blocks = ar if isinstance(ar, list) else [ar]
    first = blocks[0]
    if any((b["point_of_sale"], b["cbte_tipo"]) != (first["point_of_sale"], first["cbte_tipo"]) for b in blocks):
        raise ValueError("one FECAESolicitar carries receipts of one point of sale and type")
    operation = _operation("FECAESolicitar")
    _auth(operation, auth)
    request = _el(operation, "FeCAEReq")
    header = _el(request, "FeCabReq")
    _el(header, "CantReg", len(blocks))
    _el(header, "PtoVta", int(first["point_of_sale"]))
    _el(header, "CbteTipo", int(first["cbte_tipo"]))
    details = _el(request, "FeDetReq")
    for block in blocks:
        _detail(details, block)
    return operation


def _detail(details: etree._Element, ar: dict[str, Any]) -> None:
    detail = _el(details, "FECAEDetRequest")
    _el(detail, "Concepto", int(ar["concept"]))
    _el(detail, "DocTipo", int(ar["doc_type"]))
    doc_number = str(ar["doc_number"])
    if not doc_number.isdigit():
        raise ValueError(f"doc_number: digits only: {doc_number!r}")
    _el(detail, "DocNro", doc_number)
    _el(detail, "CbteDesde", int(ar["number"]))
    _el(detail, "CbteHasta", int(ar["number"]))
    _el(detail, "CbteFch", ymd(ar["date"]))
    for name, key in (("ImpTotal", "imp_total"), ("ImpTotConc", "imp_tot_conc"), ("ImpNeto", "imp_neto"),
                      ("ImpOpEx", "imp_op_ex"), ("ImpTrib", "imp_trib"), ("ImpIVA", "imp_iva")):
        _el(detail, name, money(ar.get(key) or "0", key))
    for name, key in (("FchServDesde", "service_from"), ("FchServHasta", "service_to"),
                      ("FchVtoPago", "payment_due")):
        if ar.get(key):
            _el(detail, name, ymd(ar[key]))
    _el(detail, "MonId", ar.get("currency") or "PES")
    _el(detail, "MonCotiz", rate(ar.get("exchange_rate") or "1"))
    # RG 5616: mandatory since 2025 (Err 10246 without it), whatever the receipt class.
    _el(detail, "CondicionIVAReceptorId", int(ar["buyer_vat_condition_id"]))
    if ar.get("associated"):
        associated = _el(detail, "CbtesAsoc")
        for original in ar["associated"]:
            item = _el(associated, "CbteAsoc")
            _el(item, "Tipo", int(original["cbte_tipo"]))
            _el(item, "PtoVta", int(original["point_of_sale"]))
            _el(item, "Nro", int(original["number"]))
            if original.get("cuit"):
                _el(item, "Cuit", original["cuit"])
            if original.get("date"):
                _el(item, "CbteFch", ymd(original["date"]))
    if ar.get("iva"):  # class C sends none
        iva = _el(detail, "Iva")
        for group in ar["iva"]:
            item = _el(iva, "AlicIva")
            _el(item, "Id", int(group["id"]))
            _el(item, "BaseImp", money(group["base_imp"], "iva.base_imp"))
            _el(item, "Importe", money(group["importe"], "iva.importe"))


def last_authorized_request(auth: Auth, point_of_sale: int, cbte_tipo: int) -> etree._Element:
    operation = _operation("FECompUltimoAutorizado")
    _auth(operation, auth)
    _el(operation, "PtoVta", int(point_of_sale))
    _el(operation, "CbteTipo", int(cbte_tipo))
    return operation


def query_request(auth: Auth, point_of_sale: int, cbte_tipo: int, number: int) -> etree._Element:
    operation = _operation("FECompConsultar")
    _auth(operation, auth)
    query = _el(operation, "FeCompConsReq")
    _el(query, "CbteTipo", int(cbte_tipo))
    _el(query, "CbteNro", int(number))
    _el(query, "PtoVta", int(point_of_sale))
    return operation


# --- reading answers ---------------------------------------------------------------------------


def _codes(parent: etree._Element | None, container: str, item: str) -> list[tuple[int, str]]:
    out = []
    for element in soap.children(soap.child(parent, container), item):
        try:
            code = int(soap.text(element, "Code") or "0")
        except ValueError:
            code = 0
        out.append((code, soap.text(element, "Msg") or ""))
    return out


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise Transient(f"ARCA answered an unreadable date: {value!r}") from None


def _int(value: str | None, what: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise Transient(f"ARCA answered an unreadable {what}: {value!r}") from None


def _result(body: etree._Element, operation: str, *, tolerate: frozenset[int] = frozenset()) -> etree._Element:
    """The ``<operation>Result`` element; raise for request-level errors, except codes in ``tolerate``."""
    result = soap.find(body, f"{operation}Result")
    if result is None:
        raise Transient(f"ARCA answered {operation} without {operation}Result")
    errors = [e for e in _codes(result, "Errors", "Err") if e[0] not in tolerate]
    codes = {code for code, _ in errors}
    if codes & TOKEN_ERRORS:
        raise TokenRejected(*next(e for e in errors if e[0] in TOKEN_ERRORS))
    if BUSY in codes:
        raise Transient(f"ARCA is busy: {dict(errors)[BUSY]}")
    return result


def parse_cae_answer(body: etree._Element) -> CaeResult:
    """FECAESolicitar's answer for one receipt as a CaeResult; raises unless it was approved (A)."""
    [answer] = parse_cae_answers(body, per_receipt=False)
    if answer.result == "A":
        return answer
    raise Rejected(answer.errors, answer.observations, answer)


def parse_cae_answers(body: etree._Element, *, per_receipt: bool = True) -> list[CaeResult]:
    """FECAESolicitar's answer, one CaeResult per receipt answered (each its own Resultado, and the
    request's errors: the caller matches them by ``number``).

    Raises for what concerns the whole request: ``NumberMismatch`` (10016 among the errors and no
    receipt answered; or, unless ``per_receipt``, any 10016), ``Rejected`` (request errors and no
    receipt answered), ``Transient`` (an approval without a readable CAE, or an answer that says
    nothing). With ``per_receipt``, a 10016 with receipts answered is theirs to read: in a run, the
    receipts after a refused one are answered 10016, and the refused one carries its own reason."""
    raw = etree.tostring(body, encoding="unicode")
    result = _result(body, "FECAESolicitar")
    errors = _codes(result, "Errors", "Err")
    events = _codes(result, "Events", "Evt")
    header = soap.child(result, "FeCabResp")
    details = soap.children(soap.child(result, "FeDetResp"), "FECAEDetResponse")
    answers = []
    for detail in details:
        verdict = soap.text(detail, "Resultado") or soap.text(header, "Resultado") or ("R" if errors else "")
        number = soap.text(detail, "CbteDesde")
        answers.append(CaeResult(result=verdict, cae=soap.text(detail, "CAE") or None,
                                 cae_due=_date(soap.text(detail, "CAEFchVto")), number=int(number) if number else None,
                                 processed_at=soap.text(header, "FchProceso"),
                                 observations=_codes(detail, "Observaciones", "Obs"), errors=errors, events=events,
                                 raw=raw))
    if any(code == NUMBER_MISMATCH for code, _ in errors) and not (per_receipt and answers):
        raise NumberMismatch(next(m for c, m in errors if c == NUMBER_MISMATCH), answers[0] if answers else None)
    if not answers:
        if errors:
            raise Rejected(errors, [], None)
        raise Transient("ARCA answered FECAESolicitar without a receipt")
    for answer in answers:
        if answer.result == "A" and (not answer.cae or not answer.cae.isdigit() or answer.cae_due is None):
            raise Transient("ARCA approved a receipt without a readable CAE and due date")
        if answer.result not in ("A", "R"):
            raise Transient(f"ARCA answered FECAESolicitar with Resultado {answer.result!r}")
    return answers


def parse_stored(body: etree._Element) -> StoredReceipt | None:
    raw = etree.tostring(body, encoding="unicode")
    result = _result(body, "FECompConsultar", tolerate=frozenset({NOT_FOUND}))
    errors = _codes(result, "Errors", "Err")
    got = soap.child(result, "ResultGet")
    if got is None:
        if any(code == NOT_FOUND for code, _ in errors):
            return None
        if errors:
            raise Rejected(errors)
        raise Transient("ARCA answered FECompConsultar without ResultGet")
    total = soap.text(got, "ImpTotal")
    try:
        total = format(Decimal(total).quantize(Decimal("0.01")), "f") if total else None
    except InvalidOperation:
        raise Transient(f"ARCA answered an unreadable ImpTotal: {total!r}") from None
    doc_type = soap.text(got, "DocTipo")
    return StoredReceipt(
        result=soap.text(got, "Resultado"), cae=soap.text(got, "CodAutorizacion") or None,
        cae_due=_date(soap.text(got, "FchVto")), point_of_sale=_int(soap.text(got, "PtoVta"), "PtoVta"),
        cbte_tipo=_int(soap.text(got, "CbteTipo"), "CbteTipo"), number=_int(soap.text(got, "CbteDesde"), "CbteDesde"),
        date=_date(soap.text(got, "CbteFch")), total=total, doc_type=int(doc_type) if doc_type else None,
        doc_number=soap.text(got, "DocNro"), emission_type=soap.text(got, "EmisionTipo"),
        observations=_codes(got, "Observaciones", "Obs"), raw=raw)


class WsfeClient:
    """One WSFEv1 endpoint (homologation, production or a simulator). ``allow_private``: the development
    setting that lets the guard reach loopback (a simulator)."""

    def __init__(self, url: str, *, timeout: float = 10.0, allow_private: bool = False,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url, self.timeout, self.allow_private, self._client = url, timeout, allow_private, client

    async def _call(self, operation: etree._Element) -> etree._Element:
        name = soap.local(operation)
        try:
            return await soap.call(self.url, NS + name, soap.envelope(operation), timeout=self.timeout,
                                   allow_private=self.allow_private, operation=name, client=self._client)
        except soap.Fault as fault:
            # soap:Client: the service could not read our request (a bug of ours: retrying cannot help);
            # soap:Server and anything else: ARCA's side.
            if fault.code.lower() == "client":
                raise Rejected([(0, fault.message)]) from None
            raise Transient(str(fault)) from None

    async def fe_dummy(self) -> dict[str, str]:
        """{"AppServer": "OK", "DbServer": "OK", "AuthServer": "OK"} when ARCA is up (no ticket needed)."""
        result = soap.find(await self._call(_operation("FEDummy")), "FEDummyResult")
        if result is None:
            raise Transient("ARCA answered FEDummy without FEDummyResult")
        return {name: soap.text(result, name) or "" for name in ("AppServer", "DbServer", "AuthServer")}

    async def fe_comp_ultimo_autorizado(self, auth: Auth, point_of_sale: int, cbte_tipo: int) -> int:
        """The last number ARCA authorised for (CUIT, point of sale, type); 0 before the first."""
        result = _result(await self._call(last_authorized_request(auth, point_of_sale, cbte_tipo)),
                         "FECompUltimoAutorizado")
        errors = _codes(result, "Errors", "Err")
        if errors:
            raise Rejected(errors)
        return _int(soap.text(result, "CbteNro"), "CbteNro")

    async def fe_cae_solicitar(self, auth: Auth, ar: dict[str, Any]) -> CaeResult:
        """Ask for the receipt's CAE. Returns the approved CaeResult, or raises (see ``errors``)."""
        return parse_cae_answer(await self._call(cae_request(auth, ar)))

    async def fe_cae_solicitar_many(self, auth: Auth, ars: list[dict[str, Any]]) -> list[CaeResult]:
        """CAEs for consecutive receipts of one series in one call: a result per receipt, in order, each
        approved (A) or rejected (R) on its own; request-wide failures raise as ``parse_cae_answers``."""
        return parse_cae_answers(await self._call(cae_request(auth, ars)))

    async def fe_comp_consultar(self, auth: Auth, point_of_sale: int, cbte_tipo: int,
                                number: int) -> StoredReceipt | None:
        """What ARCA holds under this number; None if nothing (Err 602: never authorised, safe to send)."""
        return parse_stored(await self._call(query_request(auth, point_of_sale, cbte_tipo, number)))
