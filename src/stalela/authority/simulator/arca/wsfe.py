"""WSFEv1 operations: each takes the request's operation element and returns its Result nodes.

Shapes follow the recorded replies (reference §2.4). Request-level problems go in
``Errors{Err{Code,Msg}}``; per-receipt ones in the receipt's ``Observaciones{Obs{Code,Msg}}``.
A rejected receipt has ``Resultado R`` and empty ``CAE``/``CAEFchVto``. Authentication failures
(600, 601) answer with ``Errors`` only, before anything else is read.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from lxml import etree

from .rules import (CONDITIONS, CONDITIONS_A, IVA_NAMES, LETTER, Detail, Message, RequestError,
                    check_numbering, check_receipt, read_detail, read_int)
from .soap import Node, child, children, text
from .state import ArcaState, Receipt, Ticket

MAX_POS = 99998


@dataclass
class Outcome:
    result: list[Node]
    committed: bool = False  # at least one CAE was issued and stored


class AuthError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def errors_node(errors: list[Message]) -> Node:
    return ("Errors", [("Err", [("Code", code), ("Msg", message)]) for code, message in errors])


def authenticate(state: ArcaState, op: etree._Element) -> str:
    """The represented CUIT of a valid Auth{Token, Sign, Cuit}; AuthError 600/601 otherwise."""
    auth = child(op, "Auth")
    token, sign, cuit = text(auth, "Token"), text(auth, "Sign"), text(auth, "Cuit")
    if not token or not sign:
        raise AuthError(600, "ValidacionDeToken: Token y Sign son obligatorios")
    ticket, why = state.ticket(token, sign)
    if ticket is None:
        raise AuthError(600, why)
    if ticket.service != "wsfe":
        raise AuthError(600, f"ValidacionDeToken: el token es del servicio {ticket.service}")
    if not cuit or not cuit.isdigit() or str(int(cuit)) not in _relations(ticket):
        raise AuthError(601, "CUIT representada no incluida en Token")
    return str(int(cuit))


def _relations(ticket: Ticket) -> set[str]:
    return {str(int(r)) for r in ticket.relations}


def _header(el: etree._Element | None) -> tuple[int, int]:
    """PtoVta and CbteTipo of ``el`` (FeCabReq, FeCompConsReq, or the operation itself)."""
    pos, cbte_type = read_int(el, "PtoVta"), read_int(el, "CbteTipo")
    if not 1 <= pos <= MAX_POS or cbte_type not in LETTER:
        raise RequestError(10903, f"(PtoVta {pos}, CbteTipo {cbte_type})")
    return pos, cbte_type


# ------------------------------------------------------------------------------ operations


def fe_dummy(state: ArcaState, op: etree._Element) -> Outcome:
    return Outcome([("AppServer", "OK"), ("DbServer", "OK"), ("AuthServer", "OK")])


def fe_comp_ultimo_autorizado(state: ArcaState, op: etree._Element) -> Outcome:
    cuit = authenticate(state, op)
    try:
        pos, cbte_type = _header(op)
    except RequestError as exc:
        return Outcome([("PtoVta", 0), ("CbteTipo", 0), ("CbteNro", 0),
                        errors_node([exc.message])])
    series = state.get_series(cuit, pos, cbte_type)
    return Outcome([("PtoVta", pos), ("CbteTipo", cbte_type), ("CbteNro", series.last)])


def fe_comp_consultar(state: ArcaState, op: etree._Element) -> Outcome:
    cuit = authenticate(state, op)
    try:
        pos, cbte_type = _header(child(op, "FeCompConsReq"))
        number = read_int(child(op, "FeCompConsReq"), "CbteNro")
    except RequestError as exc:
        return Outcome([errors_node([exc.message])])
    receipt = state.get_series(cuit, pos, cbte_type).receipts.get(number)
    if receipt is None:
        return Outcome([errors_node([(602, "No existen datos en nuestros registros para los "
                                           "parametros ingresados.")])])
    return Outcome([("ResultGet", _result_get(receipt))])


def _result_get(r: Receipt) -> list[Node]:
    f = r.fields
    nodes: list[Node] = [(name, f.get(name)) for name in (
        "Concepto", "DocTipo", "DocNro", "CbteDesde", "CbteHasta")]
    nodes.append(("CbteFch", r.date))
    nodes += [(name, f.get(name)) for name in (
        "ImpTotal", "ImpTotConc", "ImpNeto", "ImpOpEx", "ImpTrib", "ImpIVA", "FchServDesde",
        "FchServHasta", "FchVtoPago", "MonId", "MonCotiz", "CondicionIVAReceptorId")]
    if f.get("CbtesAsoc"):
        nodes.append(("CbtesAsoc", [("CbteAsoc", [(k, v) for k, v in a.items() if v is not None])
                                    for a in f["CbtesAsoc"]]))
    if f.get("Iva"):
        nodes.append(("Iva", [("AlicIva", [("Id", v["Id"]), ("BaseImp", v["BaseImp"]),
                                           ("Importe", v["Importe"])]) for v in f["Iva"]]))
    nodes += [("Resultado", "A"), ("CodAutorizacion", r.cae), ("EmisionTipo", "CAE"),
              ("FchVto", r.cae_due), ("FchProceso", r.processed)]
    if r.observations:
        nodes.append(_observations(r.observations))
    nodes += [("PtoVta", r.pos), ("CbteTipo", r.type)]
    return nodes


def _observations(obs: list) -> Node:
    return ("Observaciones", [("Obs", [("Code", code), ("Msg", message)]) for code, message in obs])


def fe_param_get_condicion_iva_receptor(state: ArcaState, op: etree._Element) -> Outcome:
    authenticate(state, op)
    wanted = (text(op, "ClaseCmp") or "").upper()
    rows = []
    for cid, desc in CONDITIONS.items():
        classes = "A/M/C" if cid in CONDITIONS_A else "B/C"
        if not wanted or wanted in classes.split("/"):
            rows.append(("CondicionIvaReceptor", [("Id", cid), ("Desc", desc),
                                                  ("Cmp_Clase", classes)]))
    return Outcome([("ResultGet", rows)])


def fe_param_get_tipos_iva(state: ArcaState, op: etree._Element) -> Outcome:
    authenticate(state, op)
    return Outcome([("ResultGet", [("IvaTipo", [("Id", i), ("Desc", name), ("FchDesde", "20090220"),
                                                ("FchHasta", "NULL")])
                                   for i, name in IVA_NAMES.items()])])


# --------------------------------------------------------------------------- FECAESolicitar


def fe_cae_solicitar(state: ArcaState, op: etree._Element) -> Outcome:
    cuit = authenticate(state, op)
    request = child(op, "FeCAEReq")
    now = state.now()
    processed = now.strftime("%Y%m%d%H%M%S")
    try:
        pos, cbte_type = _header(child(request, "FeCabReq"))
        count = read_int(child(request, "FeCabReq"), "CantReg")
        items = [i for d in children(request, "FeDetReq") for i in children(d, "FECAEDetRequest")]
        if count != len(items) or not items:
            raise RequestError(10901, f"(CantReg {count}, comprobantes {len(items)})")
        details = [read_detail(i) for i in items]
    except RequestError as exc:
        state.count("wsfe.rejected_request")
        return Outcome([("FeCabResp", [("Cuit", cuit), ("PtoVta", 0), ("CbteTipo", 0),
                                       ("FchProceso", processed), ("CantReg", 0),
                                       ("Resultado", "R"), ("Reproceso", "N")]),
                        errors_node([exc.message])])
    errors: list[Message] = []
    responses: list[Node] = []
    approved = 0
    with state.lock:  # from the numbering check to the commit: one number, one CAE
        for detail in details:
            node, ok, errs = _authorise(state, cuit, pos, cbte_type, detail, now, processed)
            responses.append(node)
            errors += errs
            approved += ok
    state.count("wsfe.rejected", len(details) - approved)
    result = "A" if approved == len(details) else "R" if approved == 0 else "P"
    nodes: list[Node] = [
        ("FeCabResp", [("Cuit", cuit), ("PtoVta", pos), ("CbteTipo", cbte_type),
                       ("FchProceso", processed), ("CantReg", len(details)),
                       ("Resultado", result), ("Reproceso", "N")]),
        ("FeDetResp", responses)]
    if errors:
        nodes.append(errors_node(errors))
    return Outcome(nodes, committed=approved > 0)


def _authorise(state: ArcaState, cuit: str, pos: int, cbte_type: int, detail: Detail, now,
               processed: str) -> tuple[Node, bool, list[Message]]:
    series = state.get_series(cuit, pos, cbte_type)
    today = now.date()
    errors = check_numbering(detail, last=series.last, last_date=series.last_date, today=today)
    obs = check_receipt(detail, cbte_type)
    when = detail.date or today
    head: list[Node] = [("Concepto", detail.concept), ("DocTipo", detail.doc_type),
                        ("DocNro", detail.doc_number), ("CbteDesde", detail.first),
                        ("CbteHasta", detail.last), ("CbteFch", f"{when:%Y%m%d}")]
    if errors or obs:
        tail: list[Node] = [("Resultado", "R")]
        if obs:
            tail.append(_observations(obs))
        return ("FECAEDetResponse", head + tail + [("CAE", None), ("CAEFchVto", None)]), False, \
            errors
    receipt = Receipt(cuit=cuit, pos=pos, type=cbte_type, number=detail.first,
                      cae=state.new_cae(), cae_due=f"{when + timedelta(days=10):%Y%m%d}",
                      date=f"{when:%Y%m%d}", processed=processed, fields=detail.fields)
    state.commit(receipt)
    return ("FECAEDetResponse", head + [("Resultado", "A"), ("CAE", receipt.cae),
                                        ("CAEFchVto", receipt.cae_due)]), True, []


OPERATIONS: dict[str, Callable[[ArcaState, etree._Element], Outcome]] = {
    "FEDummy": fe_dummy,
    "FECompUltimoAutorizado": fe_comp_ultimo_autorizado,
    "FECAESolicitar": fe_cae_solicitar,
    "FECompConsultar": fe_comp_consultar,
    "FEParamGetCondicionIvaReceptor": fe_param_get_condicion_iva_receptor,
    "FEParamGetTiposIva": fe_param_get_tipos_iva,
}


def run(state: ArcaState, operation: str, op: etree._Element) -> Outcome:
    """Dispatch; an authentication failure becomes the operation's Result with Errors only."""
    try:
        outcome = OPERATIONS[operation](state, op)
    except AuthError as exc:
        state.count(f"wsfe.err{exc.code}")
        return Outcome([errors_node([(exc.code, exc.message)])])
    state.count(f"wsfe.{operation}")
    return outcome


def header_info(state: ArcaState) -> list[Node]:
    return [("ambiente", "HomologacionExterno - Stalela simulator"),
            ("fecha", state.now().isoformat(timespec="milliseconds")), ("id", "4.0.0.0-sim")]
