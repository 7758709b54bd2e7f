"""Catalogue entries for Equalization Loss v2 (see ``tests/catalogue.py``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import nonnegative, real
from tests.catalogue import LossCase

K = 5


def _inputs(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = torch.randn(n, K + 1, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, K + 1, (n,), generator=g)  # K = background
    pos_neg = torch.rand(K, generator=g, dtype=torch.float64) * 1.6  # around mu = 0.8
    return logits.to(dtype), labels, pos_neg.to(dtype)


EQLV2_CASES = [
    LossCase("eqlv2", detloss.eqlv2_loss, _inputs, scaled=(0, 2)),
    LossCase(
        "eqlv2_soft",
        detloss.eqlv2_loss,
        _inputs,
        {"gamma": 3.0, "mu": 0.5, "alpha": 1.0},
        scaled=(0, 2),
    ),
]

EQLV2_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "eqlv2_loss": {"gamma": nonnegative, "mu": real, "alpha": nonnegative},
}
"""Per loss, the parameters the property suite draws at extreme values."""
