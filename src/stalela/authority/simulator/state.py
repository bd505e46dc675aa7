"""The simulated authority's memory: devices, invoice requests, confirmations.

All methods are synchronous and hold one lock for their whole duration, so every protocol step
is atomic whether the server runs on one event loop or tests poke the state from other threads.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .totals import Totals, totals_to_wire

log = logging.getLogger("stalela.authority.simulator")

MAX_PENDING = 10
CODE_ALPHABET = string.ascii_uppercase + string.digits
PENDING, CONFIRMED, CANCELLED = "pending", "confirmed", "cancelled"


class ProtocolError(Exception):
    """An e-MCF error answer: HTTP status, errorCode, errorDesc and any extra fields."""

    def __init__(self, status: int, code: str, desc: str, **extra: object) -> None:
        super().__init__(f"{status} {code}: {desc}")
        self.status, self.code, self.desc, self.extra = status, code, desc, extra

    def body(self) -> dict:
        return {"errorCode": self.code, "errorDesc": self.desc, **self.extra}


@dataclass
class Device:
    nim: str
    token: str
    nif: str | None = None
    revoked: bool = False


@dataclass
class InvoiceRequest:
    uid: str
    nim: str
    rn: str
    type: str
    nif: str
    wire_totals: dict  # {"totals", "total", "vtotal"} exactly as first answered (minus faults)
    created: float  # epoch seconds: persisted across restarts, unlike a monotonic clock
    expires: float  # fixed at creation, so changing expiry_seconds later never revives one
    status: str = PENDING
    ack: dict | None = None
    confirmed_at: float | None = None
    cancelled_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.status == PENDING and now > self.expires

    def summary(self) -> dict:
        return {"nim": self.nim, "rn": self.rn, "uid": self.uid, "type": self.type,
                "total": self.wire_totals["total"], "created": iso(self.created, "milliseconds")}


def iso(epoch: float, timespec: str = "seconds") -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec=timespec)


def _counter_key(nim: str, rn: str) -> str:
    return f"{nim}/{rn}"


class SimState:
    def __init__(self, devices: dict[str, Device], *, state_file: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self.devices = devices
        self._clock = clock
        self._state_file = Path(state_file) if state_file else None
        self._clear()
        if self._state_file and self._state_file.exists():
            self._load()

    def _clear(self) -> None:
        self.requests: dict[str, InvoiceRequest] = {}
        # (nim, rn) -> uid of the newest request for that rn: the only one that can still matter,
        # since a new one is only created once the previous is expired or cancelled.
        self._latest: dict[tuple[str, str], str] = {}
        # Incremented only when a confirm takes effect for the first time; 2 would mean the
        # same seller invoice was fiscalised twice, which tests must be able to see.
        self.confirm_counts: dict[str, int] = {}
        self.duplicates: list[dict] = []
        # Error answers by errorCode (429 TOO_MANY_PENDING, simulated 503s...): how hard a client
        # made the authority work for nothing, which benches and tests count.
        self.errors: dict[str, int] = {}
        self._type_counts: dict[tuple[str, str], int] = {}
        self._device_counts: dict[str, int] = {}

    # ----------------------------------------------------------------------------- devices

    def authenticate(self, token: str) -> Device | None:
        """The device owning ``token``; every device is compared, in constant time each."""
        found = None
        given = token.encode()
        for device in self.devices.values():
            if hmac.compare_digest(given, device.token.encode()):
                found = device
        return found

    def add_device(self, device: Device) -> None:
        with self._lock:
            self.devices[device.nim] = device

    def set_revoked(self, nim: str, revoked: bool) -> Device:
        with self._lock:
            device = self.devices.get(nim)
            if device is None:
                raise ProtocolError(404, "UNKNOWN_DEVICE", f"no device {nim}")
            device.revoked = revoked
            return device

    # ------------------------------------------------------------------------ the protocol

    def pending_of(self, nim: str) -> list[InvoiceRequest]:
        now = self._clock()
        with self._lock:
            return [r for r in self.requests.values()
                    if r.nim == nim and r.status == PENDING and not r.expired(now)]

    def create(self, device: Device, rn: str, inv_type: str, nif: str, totals: Totals,
               expiry_seconds: float) -> InvoiceRequest:
        with self._lock:
            now = self._clock()
            latest = self.requests.get(self._latest.get((device.nim, rn), ""))
            if latest is not None and latest.status == CONFIRMED:
                raise ProtocolError(409, "RN_ALREADY_CONFIRMED",
                                    f"invoice {rn} is already confirmed", **latest.ack)
            if latest is not None and latest.status == PENDING and not latest.expired(now):
                return latest  # a retried create: hand back the same request
            if len(self.pending_of(device.nim)) >= MAX_PENDING:
                raise ProtocolError(429, "TOO_MANY_PENDING",
                                    f"device {device.nim} already has {MAX_PENDING} pending "
                                    "requests; confirm or cancel some first")
            request = InvoiceRequest(
                uid=uuid.uuid4().hex, nim=device.nim, rn=rn, type=inv_type, nif=nif,
                wire_totals=totals_to_wire(totals), created=now, expires=now + expiry_seconds,
            )
            self.requests[request.uid] = request
            self._latest[(device.nim, rn)] = request.uid
            self._save()
            return request

    def _own_request(self, device: Device, uid: str) -> InvoiceRequest:
        request = self.requests.get(uid)
        # Another device's uid is as unknown to this device as a made-up one.
        if request is None or request.nim != device.nim:
            raise ProtocolError(404, "UNKNOWN_UID", f"no invoice request {uid}")
        return request

    def confirm(self, device: Device, uid: str) -> tuple[dict, bool]:
        """The acknowledgement, and whether this call is the one that took effect."""
        with self._lock:
            request = self._own_request(device, uid)
            if request.status == CONFIRMED:
                return request.ack, False  # idempotent: a client whose answer was lost retries
            if request.status == CANCELLED:
                raise ProtocolError(409, "CANCELLED", f"invoice request {uid} was cancelled")
            now = self._clock()
            if request.expired(now):
                raise ProtocolError(410, "EXPIRED", f"invoice request {uid} has expired")
            self._count_effect(request, now)
            nim, type_key = device.nim, (device.nim, request.type)
            self._type_counts[type_key] = self._type_counts.get(type_key, 0) + 1
            self._device_counts[nim] = self._device_counts.get(nim, 0) + 1
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(24))
            stamp = datetime.fromtimestamp(now, timezone.utc)
            nif = device.nif or request.nif
            request.ack = {
                "uid": request.uid,
                "rn": request.rn,
                "dateTime": stamp.isoformat(timespec="seconds"),
                "qrCode": f"RDCDEF01;{nim};{code};{nif};{stamp:%Y%m%d%H%M%S}",
                "codeDEFDGI": code,
                "counters": f"{self._type_counts[type_key]}/{self._device_counts[nim]}",
                "nim": nim,
            }
            request.status, request.confirmed_at = CONFIRMED, now
            self._save()
            return request.ack, True

    def _count_effect(self, request: InvoiceRequest, now: float) -> None:
        key = _counter_key(request.nim, request.rn)
        self.confirm_counts[key] = self.confirm_counts.get(key, 0) + 1
        if self.confirm_counts[key] > 1:
            # The protocol rules above should make this unreachable; record it loudly rather
            # than hide it, since "never fiscalise one invoice twice" is what tests check.
            entry = {"nim": request.nim, "rn": request.rn, "uid": request.uid,
                     "count": self.confirm_counts[key], "at": iso(now, "milliseconds")}
            self.duplicates.append(entry)
            log.error("rn confirmed more than once: %s", entry)

    def cancel(self, device: Device, uid: str) -> dict:
        with self._lock:
            request = self._own_request(device, uid)
            if request.status == CONFIRMED:
                raise ProtocolError(409, "ALREADY_CONFIRMED",
                                    f"invoice request {uid} is already confirmed")
            if request.status == PENDING:
                now = self._clock()
                if request.expired(now):
                    raise ProtocolError(410, "EXPIRED", f"invoice request {uid} has expired")
                request.status, request.cancelled_at = CANCELLED, now
                self._save()
            return {"uid": uid, "status": "cancelled"}

    def count_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    # ------------------------------------------------------------------------- test views

    def records(self) -> dict:
        now = self._clock()
        with self._lock:
            reqs = list(self.requests.values())
            confirmed = [
                {"nim": r.nim, "rn": r.rn, "uid": r.uid, "codeDEFDGI": r.ack["codeDEFDGI"],
                 "counters": r.ack["counters"], "type": r.type, "total": r.wire_totals["total"],
                 "confirmed_at": iso(r.confirmed_at, "milliseconds")}
                for r in sorted((r for r in reqs if r.status == CONFIRMED),
                                key=lambda r: r.confirmed_at)
            ]
            pending = [r for r in reqs if r.status == PENDING]
            return {
                "confirmed": confirmed,
                "confirm_counts": dict(self.confirm_counts),
                "duplicates": list(self.duplicates),
                "errors": dict(self.errors),
                "pending": [r.summary() for r in pending if not r.expired(now)],
                "expired": [r.summary() for r in pending if r.expired(now)],
                "cancelled": [{**r.summary(), "cancelled_at": iso(r.cancelled_at, "milliseconds")}
                              for r in reqs if r.status == CANCELLED],
            }

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self._save()

    # ------------------------------------------------------------------------ persistence

    def _save(self) -> None:
        if self._state_file is None:
            return
        data = {"version": 1, "requests": [asdict(r) for r in self.requests.values()],
                "confirm_counts": self.confirm_counts, "duplicates": self.duplicates}
        # Write then rename: a simulator killed mid-write must not leave half a file behind.
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self._state_file)

    def _load(self) -> None:
        data = json.loads(self._state_file.read_text())
        for raw in sorted(data.get("requests", []), key=lambda r: r["created"]):
            request = InvoiceRequest(**raw)
            self.requests[request.uid] = request
            self._latest[(request.nim, request.rn)] = request.uid
            if request.status == CONFIRMED:
                key = (request.nim, request.type)
                self._type_counts[key] = self._type_counts.get(key, 0) + 1
                self._device_counts[request.nim] = self._device_counts.get(request.nim, 0) + 1
        self.confirm_counts = dict(data.get("confirm_counts", {}))
        self.duplicates = list(data.get("duplicates", []))

