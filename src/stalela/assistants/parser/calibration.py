"""The confidence: the raw evidence score mapped to the share of drafts that were fully correct
on the evaluation set (histogram binning, Laplace-smoothed). The table is data, fitted offline
by `python -m stalela.assistants.parser.evaluate --fit` and stored in calibration.json; the
parser never reports a number of its own."""
from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from importlib import resources

# Bin edges over the raw score (lower bound inclusive). Finer where drafts turn from refused to
# accepted; few enough that each bin holds tens of drafts of the evaluation set.
EDGES = (Decimal("0"), Decimal("0.5"), Decimal("0.7"), Decimal("0.8"), Decimal("0.85"), Decimal("0.88"),
         Decimal("0.91"), Decimal("1.0001"))


def bin_of(raw: Decimal) -> int:
    for i in range(len(EDGES) - 1):
        if EDGES[i] <= raw < EDGES[i + 1]:
            return i
    return len(EDGES) - 2


def fit(points: list[tuple[Decimal, bool]]) -> list[str]:
    """One probability per bin: (correct + 1) / (count + 2), so an empty or small bin stays
    cautious (an empty bin gives 0.5: refused)."""
    counts = [[0, 0] for _ in range(len(EDGES) - 1)]
    for raw, correct in points:
        counts[bin_of(raw)][0] += int(correct)
        counts[bin_of(raw)][1] += 1
    # Pool adjacent bins that break monotonicity (the pool-adjacent-violators step of isotonic
    # regression): more evidence must never mean less confidence, or a draft could be refused
    # for being better supported than an accepted one.
    blocks: list[list[int]] = []  # [correct, count, number of bins]
    for c, n in counts:
        blocks.append([c, n, 1])
        while len(blocks) > 1 and _rate(blocks[-2]) > _rate(blocks[-1]):
            c2, n2, k2 = blocks.pop()
            blocks[-1] = [blocks[-1][0] + c2, blocks[-1][1] + n2, blocks[-1][2] + k2]
    out = []
    for c, n, k in blocks:
        out += [str((Decimal(c + 1) / Decimal(n + 2)).quantize(Decimal("0.0001")))] * k
    return out


def _rate(block: list[int]) -> Decimal:
    return Decimal(block[0] + 1) / Decimal(block[1] + 2)


@lru_cache(maxsize=1)
def table() -> tuple[Decimal, ...]:
    data = json.loads(resources.files(__package__).joinpath("calibration.json").read_text(encoding="utf-8"))
    return tuple(Decimal(v) for v in data["bins"])


def calibrate(raw: Decimal, bins: tuple[Decimal, ...] | None = None) -> Decimal:
    return (bins or table())[bin_of(raw)]
