"""The simulated ARCA's memory: access tickets, the last number per series, authorised receipts.

One re-entrant lock guards everything; WSFE's FECAESolicitar holds it from the numbering check
to the commit, so two concurrent requests for one series can never both get the same number.
The clock is the simulator's own (real time plus an adjustable offset), so tests can let a
ticket expire or a date window pass without waiting.
"""
from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .cms import ARGENTINA

log = logging.getLogger("stalela.authority.simulator.arca")

TICKET_SECONDS = 12 * 3600  # reference §1.4: a TA lives 12 h


def series_key(cuit: str, pos: int, cbte_type: int) -> str:
    return f"{cuit}/{pos}/{cbte_type}"


@dataclass
class Ticket:
    token: str
    sign: str
    cuit: str  # the certificate's CUIT
    relations: list[str]  # the CUITs the ticket may represent (Auth.Cuit must be one)
    service: str
    certificate: str  # SHA-256 of the certificate's DER
    subject: str
    generated: float  # epoch seconds on the simulator's clock
    expires: float


@dataclass
class Receipt:
    cuit: str
    pos: int
    type: int
    number: int
    cae: str
    cae_due: str  # yyyymmdd
    date: str  # CbteFch, yyyymmdd
    processed: str  # FchProceso, yyyyMMddHHmmss
    fields: dict  # the request's detail as sent (text), for FECompConsultar
    observations: list[list] = field(default_factory=list)  # [[code, msg], ...]


@dataclass
class Series:
    last: int = 0
    last_date: str | None = None  # yyyymmdd of the last authorised receipt
    receipts: dict[int, Receipt] = field(default_factory=dict)


class AlreadyAuthenticated(Exception):
    """A ticket for this (certificate, service) is still valid."""


class ArcaState:
    def __init__(self, *, state_file: str | None = None) -> None:
        self.lock = threading.RLock()
        self.offset = 0.0  # seconds added to the real clock
        self.tickets: dict[str, Ticket] = {}
        self.series: dict[str, Series] = {}
        self.counts: Counter[str] = Counter()
        self._caes: set[str] = set()
        self._path = Path(state_file) if state_file else None
        if self._path is not None and self._path.exists():
            self._load()

    # --------------------------------------------------------------------------- the clock

    def epoch(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        """Aware, in Argentine time: ARCA's dates (CbteFch, FchProceso) are local."""
        return datetime.fromtimestamp(self.epoch(), timezone.utc).astimezone(ARGENTINA)

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.offset += seconds
        return self.now()

    # ------------------------------------------------------------------------------ tickets

    def issue_ticket(self, *, cuit: str, certificate: str, subject: str, service: str,
                     make_token: Callable[[float, float], str]) -> Ticket:
        """A new 12 h ticket, unless one for (certificate, service) is still valid."""
        with self.lock:
            now = self.epoch()
            for ticket in self.tickets.values():
                if (ticket.certificate, ticket.service) == (certificate, service) \
                        and ticket.expires > now:
                    self.counts["wsaa.already_authenticated"] += 1
                    raise AlreadyAuthenticated()
            token = make_token(now, now + TICKET_SECONDS)
            ticket = Ticket(token=token, sign=base64.b64encode(secrets.token_bytes(128)).decode(),
                            cuit=cuit, relations=[cuit], service=service, certificate=certificate,
                            subject=subject, generated=now, expires=now + TICKET_SECONDS)
            # Expired tickets are forgotten as new ones come, so memory stays bounded.
            self.tickets = {t: v for t, v in self.tickets.items() if v.expires > now}
            self.tickets[token] = ticket
            self.counts["wsaa.tickets_issued"] += 1
            self._save()
            return ticket

    def ticket(self, token: str, sign: str) -> tuple[Ticket | None, str]:
        """The ticket for (token, sign) and "" or None and why it does not validate."""
        with self.lock:
            ticket = self.tickets.get(token)
            if ticket is None:
                return None, "ValidacionDeToken: token no emitido por este WSAA"
            if not hmac.compare_digest(ticket.sign.encode(), sign.encode()):
                return None, "ValidacionDeFirma: la firma no corresponde al token"
            now = self.epoch()
            if not ticket.generated - 600 <= now < ticket.expires:
                return None, ("ValidacionDeToken: No validaron las fechas del token GenTime, "
                              f"ExpTime, NowUTC: {int(ticket.generated)} "
                              f"({_utc(ticket.generated)}), {int(ticket.expires)} "
                              f"({_utc(ticket.expires)}), {_utc(now)}")
            return ticket, ""

    def expire_tickets(self) -> int:
        with self.lock:
            now = self.epoch()
            live = [t for t in self.tickets.values() if t.expires > now]
            for t in live:
                t.expires = now - 1
            self._save()
            return len(live)

    # ------------------------------------------------------------------------------ series

    def get_series(self, cuit: str, pos: int, cbte_type: int) -> Series:
        """The series, or an empty one that is not stored (reads leave no trace in the state)."""
        with self.lock:
            return self.series.get(series_key(cuit, pos, cbte_type)) or Series()

    def _writable(self, cuit: str, pos: int, cbte_type: int) -> Series:
        return self.series.setdefault(series_key(cuit, pos, cbte_type), Series())

    def set_last(self, cuit: str, pos: int, cbte_type: int, last: int,
                 date: str | None = None) -> Series:
        """Align a series as if ARCA had authorised numbers up to ``last`` elsewhere."""
        with self.lock:
            series = self._writable(cuit, pos, cbte_type)
            series.last, series.last_date = last, date
            self._save()
            return series

    def new_cae(self) -> str:
        with self.lock:
            while True:
                cae = str(10**13 + secrets.randbelow(9 * 10**13))  # 14 digits, no leading 0
                if cae not in self._caes:
                    self._caes.add(cae)
                    return cae

    def commit(self, receipt: Receipt) -> None:
        """Store an authorised receipt and advance its series (called under ``lock``)."""
        with self.lock:
            series = self._writable(receipt.cuit, receipt.pos, receipt.type)
            if receipt.number != series.last + 1 or receipt.number in series.receipts:
                # The rules must have refused this; a second CAE for one number is the very
                # bug the simulator exists to catch, so it is loud rather than papered over.
                raise AssertionError(f"commit out of sequence: {receipt.number} after "
                                     f"{series.last} in {series_key(receipt.cuit, receipt.pos, receipt.type)}")
            series.receipts[receipt.number] = receipt
            series.last, series.last_date = receipt.number, receipt.date
            self.counts["wsfe.approved"] += 1
            self._save()

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    # ----------------------------------------------------------------------------- reports

    def snapshot(self) -> dict:
        """What tests assert on: per series the last number and every CAE, plus counters."""
        with self.lock:
            return {
                "now": self.now().isoformat(timespec="seconds"),
                "series": {
                    key: {"last": s.last, "last_date": s.last_date,
                          "receipts": [{"number": r.number, "cae": r.cae, "cae_due": r.cae_due,
                                        "date": r.date, "processed": r.processed,
                                        "imp_total": r.fields.get("ImpTotal"),
                                        "observations": r.observations}
                                       for r in sorted(s.receipts.values(),
                                                       key=lambda r: r.number)]}
                    for key, s in sorted(self.series.items())
                },
                "tickets": [{"cuit": t.cuit, "relations": t.relations, "service": t.service,
                             "certificate_sha256": t.certificate, "subject": t.subject,
                             "expires": _utc(t.expires), "valid": t.expires > self.epoch()}
                            for t in self.tickets.values()],
                "counts": dict(sorted(self.counts.items())),
            }

    def reset(self) -> None:
        with self.lock:
            self.tickets.clear()
            self.series.clear()
            self.counts.clear()
            self._caes.clear()
            self.offset = 0.0
            self._save()

    # ------------------------------------------------------------------------- persistence

    def _save(self) -> None:
        if self._path is None:
            return
        data = {"offset": self.offset,
                "tickets": [asdict(t) for t in self.tickets.values()],
                "series": {k: {"last": s.last, "last_date": s.last_date,
                               "receipts": [asdict(r) for r in s.receipts.values()]}
                           for k, s in self.series.items()}}
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._path)  # atomic: a crash leaves the old or the new file

    def _load(self) -> None:
        data = json.loads(self._path.read_text())
        self.offset = data.get("offset", 0.0)
        self.tickets = {t["token"]: Ticket(**t) for t in data.get("tickets", [])}
        for key, s in data.get("series", {}).items():
            receipts = {r["number"]: Receipt(**r) for r in s["receipts"]}
            self.series[key] = Series(s["last"], s["last_date"], receipts)
            self._caes.update(r.cae for r in receipts.values())
        log.info("loaded %d tickets and %d series from %s", len(self.tickets), len(self.series),
                 self._path)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")
