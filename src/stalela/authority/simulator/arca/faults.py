"""Fault injection for the ARCA simulator: what goes wrong between an issuer and WSAA/WSFEv1.

Every random decision comes from one seeded ``random.Random``; each kind of request always makes
the same draws (one per WSFE call for ``http500``, one more per FECAESolicitar for
``drop_after_commit``, one per loginCms for ``already_authenticated``), so one seed gives one
sequence of outcomes for one sequence of requests. A test that needs one fault exactly once,
whatever the rates, *forces* it: ``force("drop_after_commit")`` makes the next FECAESolicitar
that commits drop its answer; the draw still happens, so the seeded sequence is unchanged.
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Rate = Field(default=0.0, ge=0.0, le=1.0)
FaultName = Literal["drop_after_commit", "http500", "already_authenticated"]
FAULT_NAMES: tuple[str, ...] = ("drop_after_commit", "http500", "already_authenticated")


class ArcaFaultSpec(BaseModel):
    # Unknown keys are refused: a misspelt rate silently meaning "no fault" would let a
    # resilience test pass for the wrong reason.
    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_after_commit: float = Rate  # FECAESolicitar commits (CAE stored), the answer is lost
    drop_mode: Literal["close", "hang"] = "close"  # close the TCP connection, or hold it
    hang_seconds: float = Field(default=30.0, ge=0.0)  # how long "hang" holds before closing
    http500: float = Rate  # a WSFE call answers HTTP 500 (soap:Server fault) and does nothing
    latency_ms: float = Field(default=0.0, ge=0.0)  # added to every WSFE call
    already_authenticated: float = Rate  # loginCms answers coe.alreadyAuthenticated
    seed: int | None = None  # None: fresh entropy


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def parse_fault_spec(text: str) -> ArcaFaultSpec:
    """``drop_after_commit=0.1,latency_ms=200,seed=7`` (or the same as JSON) -> ArcaFaultSpec.

    Raises ValueError with a readable message.
    """
    text = text.strip()
    if text.startswith("{"):
        values = json.loads(text)
    else:
        values = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"fault {part!r} is not key=value")
            values[key.strip()] = None if value.strip().lower() == "none" else value.strip()
    try:
        return ArcaFaultSpec.model_validate(values)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


class ArcaFaults:
    """The current spec, its RNG, and the faults forced for the next matching requests."""

    def __init__(self, spec: ArcaFaultSpec | None = None) -> None:
        self._lock = threading.Lock()
        self._forced: Counter[str] = Counter()
        self.set(spec or ArcaFaultSpec())

    def set(self, spec: ArcaFaultSpec) -> None:
        with self._lock:
            self._spec = spec
            # Reseeding on every change makes "set faults, then run" reproducible mid-run too.
            self._rng = random.Random(spec.seed)

    @property
    def spec(self) -> ArcaFaultSpec:
        return self._spec

    def force(self, name: str, times: int = 1) -> None:
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; one of {', '.join(FAULT_NAMES)}")
        if times < 0:
            raise ValueError("times must be >= 0")
        with self._lock:
            self._forced[name] = times

    def forced(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in self._forced.items() if v}

    def _decide(self, name: str, rate: float) -> bool:
        with self._lock:
            hit = self._rng.random() < rate  # always drawn: keeps the seeded sequence
            if self._forced[name] > 0:
                self._forced[name] -= 1
                return True
            return hit

    def http500(self) -> bool:
        return self._decide("http500", self._spec.http500)

    def already_authenticated(self) -> bool:
        return self._decide("already_authenticated", self._spec.already_authenticated)

    def drop_after_commit_draw(self) -> float:
        """Drawn before FECAESolicitar runs; whether it applies is known only after the commit."""
        with self._lock:
            return self._rng.random()

    def drop_after_commit(self, draw: float) -> bool:
        """Called only for a FECAESolicitar that committed: a forced drop waits for one."""
        with self._lock:
            if self._forced["drop_after_commit"] > 0:
                self._forced["drop_after_commit"] -= 1
                return True
            return draw < self._spec.drop_after_commit
