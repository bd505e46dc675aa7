"""What can go wrong between a marketplace and a connector, on demand and reproducibly.

Two seeded ``random.Random``: one for webhook deliveries, one for API calls, so that the order in
which a test interleaves API calls and events does not change which deliveries are dropped. Each
decision draws a fixed number of values whatever the rates, so one seed gives one sequence of
outcomes for one sequence of events.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stalela.authority.simulator.faults import parse_spec

Rate = Field(default=0.0, ge=0.0, le=1.0)

ApiFault = Literal["api_5xx", "hang_up"]


class FaultSpec(BaseModel):
    # Unknown fields are refused: a misspelt rate silently meaning "no fault" would make a
    # resilience test pass for the wrong reason.
    model_config = ConfigDict(extra="forbid", frozen=True)

    drop: float = Rate  # a delivery (and all its retries) is never sent
    duplicate: float = Rate  # a delivery is sent twice
    reorder: bool = False  # deliveries wait for POST /_sim/flush, then go out shuffled
    stale: float = Rate  # a full-body delivery carries the order as it was one change earlier
    api_5xx: float = Rate  # an API call answers 503 and does nothing
    hang_up: float = Rate  # an API call's connection is closed without an answer, nothing done
    api_delay_ms: float = Field(default=0.0, ge=0.0)
    token_ttl_s: float | None = Field(default=None, ge=0.0)  # Mercado Libre access tokens
    seed: int | None = None  # None: fresh entropy

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultSpec:
        # The API faults are exclusive slices of one draw in [0, 1); they must fit in it.
        if self.api_5xx + self.hang_up > 1.0:
            raise ValueError("api_5xx + hang_up must not exceed 1")
        return self


def parse_fault_spec(text: str) -> FaultSpec:
    """``drop=0.3,seed=1`` (or the same as a JSON object) -> FaultSpec; ValueError if wrong."""
    return parse_spec(text, FaultSpec)


@dataclass(frozen=True)
class DeliveryDraw:
    drop: bool
    duplicate: bool
    stale: bool


class FaultInjector:
    """The current FaultSpec and one seeded RNG per stream of decisions."""

    STREAMS = ("deliveries", "api")

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._lock = threading.Lock()
        self._spec = spec or FaultSpec()
        self._rngs = self._seeded(self._spec)

    def _seeded(self, spec: FaultSpec) -> dict[str, random.Random]:
        return {name: random.Random(None if spec.seed is None else spec.seed + offset)
                for offset, name in enumerate(self.STREAMS)}

    def set(self, spec: FaultSpec) -> None:
        """Reseeding on every change makes "set faults, then run" reproducible mid-run too."""
        rngs = self._seeded(spec)
        with self._lock:
            self._spec, self._rngs = spec, rngs

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    def delivery(self) -> DeliveryDraw:
        spec = self._spec
        with self._lock:
            u = [self._rngs["deliveries"].random() for _ in range(3)]
        return DeliveryDraw(u[0] < spec.drop, u[1] < spec.duplicate, u[2] < spec.stale)

    def api(self) -> ApiFault | None:
        spec = self._spec
        with self._lock:
            u = self._rngs["api"].random()
        if u < spec.api_5xx:
            return "api_5xx"
        if u < spec.api_5xx + spec.hang_up:
            return "hang_up"
        return None

    def shuffle(self, items: list) -> None:
        with self._lock:
            self._rngs["deliveries"].shuffle(items)
