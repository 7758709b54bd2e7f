"""Paired statistics of the ablation table."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detloss.ablate.stats import PairedDifference, Spread, t_quantile


def test_t_quantiles() -> None:
    assert t_quantile(1) == 12.706
    assert t_quantile(4) == 2.776
    assert t_quantile(30) == 2.042
    assert t_quantile(60) == pytest.approx(2.000, abs=1e-3)
    assert t_quantile(1000) == pytest.approx(1.962, abs=1e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0)


def test_paired_difference_of_five_seeds() -> None:
    baseline = [45.0, 44.0, 46.5, 45.2, 45.8]
    values = [45.9, 45.1, 47.0, 46.0, 46.9]
    diff = PairedDifference.of(values, baseline)
    assert diff is not None
    d = [v - b for v, b in zip(values, baseline, strict=True)]
    assert diff.mean == pytest.approx(statistics.fmean(d))
    assert diff.std == pytest.approx(statistics.stdev(d))
    half = 2.776 * statistics.stdev(d) / math.sqrt(5)
    assert (diff.low, diff.high) == pytest.approx((diff.mean - half, diff.mean + half))
    assert diff.t == pytest.approx(diff.mean / (diff.std / math.sqrt(5)))
    assert diff.excludes_zero


def test_pairing_removes_the_seed_effect() -> None:
    # Seeds move both losses together: the means' spreads overlap, the paired interval does not.
    baseline = [40.0, 44.0, 48.0]
    values = [40.5, 44.6, 48.4]
    assert Spread.of(values).std > 3
    diff = PairedDifference.of(values, baseline)
    assert diff is not None
    assert diff.excludes_zero
    unpaired = PairedDifference.of(values, [44.0, 48.0, 40.0])
    assert unpaired is not None
    assert not unpaired.excludes_zero


def test_one_seed_gives_no_interval() -> None:
    assert PairedDifference.of([1.0], [0.0]) is None
    assert Spread.of([3.0]) == Spread(3.0, 0.0, 1)
    with pytest.raises(ValueError, match="paired"):
        PairedDifference.of([1.0, 2.0], [0.0])


@given(st.lists(st.floats(-50, 50), min_size=2, max_size=10), st.floats(-5, 5))
def test_interval_contains_the_mean_and_shifts_with_it(values: list[float], shift: float) -> None:
    diff = PairedDifference.of([v + shift for v in values], values)
    assert diff is not None
    assert diff.low <= diff.mean <= diff.high
    assert diff.mean == pytest.approx(shift, abs=1e-9)
    assert diff.std == pytest.approx(0, abs=1e-6)
