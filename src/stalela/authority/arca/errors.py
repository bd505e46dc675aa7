"""ARCA's failures, sorted by what the caller must do about them (as ``adapters.dgi_emcf`` does for the DGI).

- ``Transient``: retry later (HTTP 5xx without a SOAP answer, timeouts, dropped connections,
  malformed answers, WSFEv1's 502 "Transacción activa", WSAA's ``wsaa.unavailable``...);
- ``AlreadyAuthenticated``: WSAA already issued a valid ticket for this certificate and service:
  reuse the cached one (another process fetched it);
- ``CertificateRejected``: WSAA refuses the certificate or the request (expired, untrusted CA or
  the other environment's certificate, not associated with the service, a clock far off): an
  administrator must act; retrying does not help;
- ``TokenRejected``: WSFEv1 Err 600/601: the ticket expired (fetch a new one) or the CUIT is not
  among those the certificate represents;
- ``NumberMismatch``: WSFEv1 Err 10016: the number or date is not the next one ARCA expects:
  align with ``FECompUltimoAutorizado`` / ``FECompConsultar``, never reuse the number blindly;
- ``Rejected``: ARCA refused the receipt as such (Resultado R, or request errors): retrying the
  same receipt cannot help.
"""
from __future__ import annotations

from typing import Any


class ArcaError(Exception):
    pass


class Transient(ArcaError):
    pass


class AlreadyAuthenticated(ArcaError):
    pass


class CertificateRejected(ArcaError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class TokenRejected(ArcaError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Rejected(ArcaError):
    """``errors`` and ``observations`` are [(code, message)]; ``result`` the parsed answer, if any."""

    def __init__(self, errors: list[tuple[int, str]], observations: list[tuple[int, str]] | None = None,
                 result: Any = None) -> None:
        first = (errors or observations or [(0, "rejected without a reason")])[0]
        super().__init__(f"{first[0]}: {first[1]}")
        self.errors, self.observations, self.result = errors, observations or [], result

    @property
    def codes(self) -> list[int]:
        return [code for code, _ in self.errors + self.observations]


class NumberMismatch(ArcaError):
    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(f"10016: {message}")
        self.message, self.result = message, result


class TicketUnavailable(ArcaError):
    """No usable ticket: WSAA says one is valid, but it is not in our cache (fetched by a process that
    died before storing it, or by another system with the same certificate). It stays unusable until it
    expires (at most 12 h) unless the certificate is replaced."""


class NotConfigured(ArcaError):
    """The tenant has no ARCA certificate yet (or only a CSR waiting for its certificate)."""
