"""Catalogue entries for the Bounded IoU loss (see ``tests/catalogue.py``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import nonnegative, positive
from tests.catalogue import LossCase


def _box_pair(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    """Overlapping and non-overlapping ``xyxy`` pairs with positive sizes."""
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 20
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 8 + 0.5
    target = torch.cat([xy, xy + wh], dim=1)
    centre = xy + wh / 2 + torch.randn(n, 2, generator=g, dtype=torch.float64) * wh * 0.4
    size = wh * torch.exp(torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.4)
    pred = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    return pred.to(dtype), target.to(dtype)


BOUNDED_IOU_CASES = [
    LossCase("bounded_iou", detloss.bounded_iou_loss, _box_pair, scaled=(0, 1)),
    LossCase(
        "bounded_iou_beta0", detloss.bounded_iou_loss, _box_pair, {"beta": 0.0}, scaled=(0, 1)
    ),
]

BOUNDED_IOU_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "bounded_iou_loss": {"beta": nonnegative, "eps": positive},
}
"""Per loss, the parameters the property suite draws at extreme values."""
