"""Catalogue entries for the GHM losses (see ``tests/catalogue.py``).

The gradient-density weights are constants for the gradient (computed from detached gradient
norms): gradcheck holds them at their values, so that a finite difference that moves an element
into another bin does not count.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import positive
from tests.catalogue import LossCase

C = 4
_case = functools.partial(LossCase, detached=("detloss.ghm._harmonising_weight",))


def _dense(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = torch.randn(n, C, generator=g, dtype=torch.float64) * 3
    target = (torch.rand(n, C, generator=g) < 0.3).to(torch.float64)
    valid = (torch.rand(n, C, generator=g) < 0.8).to(torch.float64)
    return logits.to(dtype), target.to(dtype), valid.to(dtype)


def _indices(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = torch.randn(n, C, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, C + 1, (n,), generator=g)  # C = background
    valid = (torch.rand(n, generator=g) < 0.8).to(torch.float64)
    return logits.to(dtype), labels, valid.to(dtype)


def _regression(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    pred = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.05
    target = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.05
    valid = (torch.rand(n, 1, generator=g) < 0.7).to(torch.float64).expand(n, 4)
    return pred.to(dtype), target.to(dtype), valid.to(dtype)


GHM_CASES = [
    _case("ghmc", detloss.ghmc_loss, _dense),
    _case("ghmc_indices_bins5", detloss.ghmc_loss, _indices, {"bins": 5}),
    _case("ghmr", detloss.ghmr_loss, _regression, scaled=(0, 1)),
    _case(
        "ghmr_mu_bins30", detloss.ghmr_loss, _regression, {"mu": 0.05, "bins": 30}, scaled=(0, 1)
    ),
]

GHM_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "ghmc_loss": {"bins": st.integers(1, 10**4)},
    "ghmr_loss": {"mu": positive, "bins": st.integers(1, 10**4)},
}
"""Per loss, the parameters the property suite draws at extreme values."""
