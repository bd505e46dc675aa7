"""Fault injection: what can go wrong between a sync agent and the authority, on demand.

Every decision comes from one seeded ``random.Random`` so that a failing test run can be replayed
with the same ``seed``. Each kind of request draws the same number of values whatever the rates,
so one seed gives one sequence of outcomes for one sequence of requests.
"""
from __future__ import annotations

import json
import random
import threading
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Rate = Field(default=0.0, ge=0.0, le=1.0)

BeforeFault = Literal["error", "timeout", "drop"]
AfterConfirmFault = Literal["timeout", "drop"]


class FaultSpec(BaseModel):
    # Unknown fields are refused: a misspelt rate silently meaning "no fault" would make a
    # resilience test pass for the wrong reason.
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0.0)
    error_rate: float = Rate  # 503 UNAVAILABLE before doing anything
    timeout_rate: float = Rate  # sleep timeout_seconds, then 504 TIMEOUT, no effect
    drop_rate: float = Rate  # close the connection without a response, no effect
    timeout_after_confirm_rate: float = Rate  # confirm takes effect, then the answer is late
    drop_after_confirm_rate: float = Rate  # confirm takes effect, then the connection drops
    mismatch_rate: float = Rate  # POST /api/invoice answers totals that are off by 1.00
    drop_after_create_rate: float = Rate  # POST /api/invoice takes effect, then the connection drops
    timeout_seconds: float = Field(default=30.0, ge=0.0)
    expiry_seconds: float = Field(default=120.0, gt=0.0)
    seed: int | None = None  # None: fresh entropy

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultSpec:
        # The faults of one draw are exclusive slices of [0, 1); they must fit in it.
        if self.error_rate + self.timeout_rate + self.drop_rate > 1.0:
            raise ValueError("error_rate + timeout_rate + drop_rate must not exceed 1")
        if self.timeout_after_confirm_rate + self.drop_after_confirm_rate > 1.0:
            raise ValueError(
                "timeout_after_confirm_rate + drop_after_confirm_rate must not exceed 1")
        return self


def parse_fault_spec(text: str) -> FaultSpec:
    """``error_rate=0.1,latency_ms=20`` (or the same as a JSON object) -> FaultSpec.

    Raises ValueError with a readable message.
    """
    return parse_spec(text, FaultSpec)


SpecT = TypeVar("SpecT", bound=BaseModel)


def parse_spec(text: str, model: type[SpecT]) -> SpecT:
    """``key=value,...`` (or a JSON object) validated as ``model``; any simulator's fault spec."""
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
        return model.model_validate(values)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


class FaultInjector:
    """The current FaultSpec and the RNG that turns its rates into decisions."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._lock = threading.Lock()
        self.set(spec or FaultSpec())

    def set(self, spec: FaultSpec) -> None:
        with self._lock:
            self._spec = spec
            # Reseeding on every change makes "set faults, then run" reproducible mid-run too.
            self._rng = random.Random(spec.seed)

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def before_request(self) -> BeforeFault | None:
        spec, u = self._spec, self._draw()
        if u < spec.error_rate:
            return "error"
        if u < spec.error_rate + spec.timeout_rate:
            return "timeout"
        if u < spec.error_rate + spec.timeout_rate + spec.drop_rate:
            return "drop"
        return None

    def after_confirm(self) -> AfterConfirmFault | None:
        spec, u = self._spec, self._draw()
        if u < spec.timeout_after_confirm_rate:
            return "timeout"
        if u < spec.timeout_after_confirm_rate + spec.drop_after_confirm_rate:
            return "drop"
        return None

    def mismatch(self) -> bool:
        return self._draw() < self._spec.mismatch_rate

    def drop_after_create(self) -> bool:
        # Drawn only when asked for, so that the seeded sequences of the other faults stay as they were.
        return self._spec.drop_after_create_rate > 0 and self._draw() < self._spec.drop_after_create_rate
