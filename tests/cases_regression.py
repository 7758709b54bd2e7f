"""Catalogue entries for the regression losses (see ``tests/catalogue.py``)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import nonnegative, positive
from tests.catalogue import LossCase


def _pair(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    pred = (torch.randn(n, 4, generator=g, dtype=torch.float64) * 2).to(dtype)
    target = torch.randn(n, 4, generator=g, dtype=torch.float64).to(dtype)
    return pred, target


def _caffe(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    pred, target = _pair(n, dtype, g)
    inside = (torch.rand(n, 1, generator=g) < 0.5).to(dtype).expand(n, 4)
    outside = torch.full((n, 4), 1.0 / max(n, 1), dtype=dtype)
    return pred, target, inside, outside


_case = functools.partial(LossCase, scaled=(0, 1))

REGRESSION_CASES = [
    _case("smooth_l1", detloss.smooth_l1_loss, _pair),
    _case("smooth_l1_beta0", detloss.smooth_l1_loss, _pair, {"beta": 0.0}),
    _case("smooth_l1_sigma3", detloss.smooth_l1_loss, _pair, {"sigma": 3.0}),
    _case("huber", detloss.huber_loss, _pair, {"delta": 0.5}),
    _case("l1", detloss.l1_loss, _pair),
    _case("mse", detloss.mse_loss, _pair),
    _case("balanced_l1", detloss.balanced_l1_loss, _pair),
    _case(
        "caffe_smooth_l1", detloss.caffe_smooth_l1_loss, _caffe, {"sigma": 3.0}, scaled=(0, 1, 3)
    ),
]

REGRESSION_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "smooth_l1_loss": {"beta": nonnegative, "sigma": positive, "l1_below": nonnegative},
    "huber_loss": {"delta": positive},
    "l1_loss": {},
    "mse_loss": {},
    "balanced_l1_loss": {"alpha": positive, "gamma": positive, "beta": positive},
    "caffe_smooth_l1_loss": {"sigma": positive},
}
"""Per loss, the parameters the property suite draws at extreme values."""
