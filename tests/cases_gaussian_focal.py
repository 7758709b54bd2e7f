"""Catalogue entries for the Gaussian focal loss (see ``tests/catalogue.py``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import nonnegative
from tests.catalogue import LossCase


def _heatmap(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    """Clamped sigmoid probabilities (as the heads give) and a heatmap with exact 1 peaks."""
    logits = torch.randn(n, 3, 4, generator=g, dtype=torch.float64) * 2
    pred = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    target = torch.rand(n, 3, 4, generator=g, dtype=torch.float64)
    target = torch.where(torch.rand(n, 3, 4, generator=g) < 0.15, 1.0, target)
    return pred.to(dtype), target.to(dtype)


GAUSSIAN_FOCAL_CASES = [
    LossCase("gaussian_focal", detloss.gaussian_focal_loss, _heatmap, scaled=()),
    LossCase(
        "gaussian_focal_weighted",
        detloss.gaussian_focal_loss,
        _heatmap,
        {"alpha": 1.5, "gamma": 2.0, "pos_weight": 2.0, "neg_weight": 0.5},
        scaled=(),
    ),
]

GAUSSIAN_FOCAL_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "gaussian_focal_loss": {
        "alpha": nonnegative,
        "gamma": nonnegative,
        "pos_weight": nonnegative,
        "neg_weight": nonnegative,
    },
}
"""Per loss, the parameters the property suite draws at extreme values."""
