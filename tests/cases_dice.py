"""Catalogue entries for the Dice loss (see ``tests/catalogue.py``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import nonnegative
from tests.catalogue import LossCase


def _logit_masks(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = torch.randn(n, 3, 5, generator=g, dtype=torch.float64) * 2
    masks = (torch.rand(n, 3, 5, generator=g) < 0.4).to(torch.float64)
    return logits.to(dtype), masks.to(dtype)


def _probability_masks(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits, masks = _logit_masks(n, torch.float64, g)
    return logits.sigmoid().to(dtype), masks.to(dtype)


DICE_CASES = [
    LossCase("dice_activate", detloss.dice_loss, _logit_masks, {"activate": True}),
    LossCase("dice_naive", detloss.dice_loss, _probability_masks, {"naive_dice": True}, scaled=()),
]

DICE_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "dice_loss": {"eps": nonnegative},
}
"""Per loss, the parameters the property suite draws at extreme values."""
