"""Mean and spread over seeds, and the paired difference of two losses trained on the same seeds.

A seed fixes the initial weights, data order and augmentation, so the difference of two losses'
AP on one seed removes what the seed does to both. Over ``n`` seeds the mean difference ``d``
with standard deviation ``s`` has the Student-t interval ``d +- t(0.975, n - 1) s / sqrt(n)``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

T_975: tuple[float, ...] = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""The 97.5% quantile of Student's t with 1, 2, ..., 30 degrees of freedom."""


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df >= 1`` degrees of freedom (two-sided 95%);
    above 30, the normal quantile with its first Cornish-Fisher correction (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df)


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (0 for one value) of ``n`` values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values))


@dataclass(frozen=True)
class PairedDifference:
    """``values - baseline`` seed by seed: mean, std, the 95% interval of the mean and ``t``."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    t: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @classmethod
    def of(cls, values: Sequence[float], baseline: Sequence[float]) -> PairedDifference | None:
        """None for fewer than two seeds (no spread to compare with)."""
        if len(values) != len(baseline):
            raise ValueError(f"{len(values)} values paired with {len(baseline)} baseline values")
        if len(values) < 2:
            return None
        spread = Spread.of([v - b for v, b in zip(values, baseline, strict=True)])
        error = spread.std / math.sqrt(spread.n)
        half = t_quantile(spread.n - 1) * error
        t = spread.mean / error if error > 0 else math.copysign(math.inf, spread.mean)
        if spread.mean == 0 and error == 0:
            t = 0.0
        return cls(spread.mean, spread.std, spread.n, spread.mean - half, spread.mean + half, t)
