"""Catalogue entries for the classification losses (see ``tests/catalogue.py``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import fraction, nonnegative, positive
from tests.catalogue import LossCase

C = 5


def _logits(n: int, dtype: torch.dtype, g: torch.Generator, c: int = C) -> Tensor:
    return (torch.randn(n, c, generator=g, dtype=torch.float64) * 3).to(dtype)


def _class_indices(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    return _logits(n, dtype, g), torch.randint(0, C, (n,), generator=g)


def _spatial(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = (torch.randn(n, C, 3, generator=g, dtype=torch.float64) * 3).to(dtype)
    return logits, torch.randint(0, C, (n, 3), generator=g)


def _with_background(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    return _logits(n, dtype, g), torch.randint(0, C + 1, (n,), generator=g)


def _one_hot(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits, labels = _with_background(n, dtype, g)
    return logits, torch.nn.functional.one_hot(labels, C + 1)[:, :C].to(dtype)


def _soft(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    return _logits(n, dtype, g), torch.rand(n, C, generator=g, dtype=torch.float64).to(dtype)


def _iou_targets(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits, onehot = _one_hot(n, dtype, g)
    iou = torch.rand(n, 1, generator=g, dtype=torch.float64).to(dtype)
    return logits, onehot * iou


def _label_score(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits, labels = _with_background(n, dtype, g)
    return logits, labels, torch.rand(n, generator=g, dtype=torch.float64).to(dtype)


def _distances(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = _logits(n, dtype, g, 8)
    return logits, (torch.rand(n, generator=g, dtype=torch.float64) * 7).to(dtype)


def _side_distances(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    """Four distances per row (a box's sides), some beyond the clamp at 6.99."""
    logits = (torch.randn(n, 4, 8, generator=g, dtype=torch.float64) * 3).to(dtype)
    return logits, (torch.rand(n, 4, generator=g, dtype=torch.float64) * 7.5).to(dtype)


def _probabilities(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits, targets = _soft(n, dtype, g)
    return logits.double().sigmoid().clamp(0.01, 0.99).to(dtype), targets


CLASSIFICATION_CASES = [
    # probabilities in [0, 1]: not scaled by the property suite's magnitudes
    LossCase("focal_with_prob", detloss.focal_loss_with_prob, _probabilities, scaled=()),
    LossCase(
        "quality_focal_with_prob", detloss.quality_focal_loss_with_prob, _probabilities, scaled=()
    ),
    LossCase("cross_entropy", detloss.cross_entropy, _class_indices),
    LossCase(
        "cross_entropy_weighted_smoothed",
        detloss.cross_entropy,
        _class_indices,
        {"class_weight": [1.0, 2.0, 0.5, 1.0, 3.0], "label_smoothing": 0.1, "ignore_index": 2},
    ),
    LossCase(
        "cross_entropy_weighted_ignore",
        detloss.cross_entropy,
        _class_indices,
        {"class_weight": [1.0, 2.0, 0.5, 1.0, 3.0], "ignore_index": 2, "avg_non_ignore": True},
    ),
    LossCase("cross_entropy_spatial", detloss.cross_entropy, _spatial),
    LossCase("bce_one_hot", detloss.binary_cross_entropy, _one_hot),
    LossCase("bce_class_indices", detloss.binary_cross_entropy, _with_background),
    LossCase("sigmoid_focal", detloss.sigmoid_focal_loss, _one_hot),
    LossCase("sigmoid_focal_indices", detloss.sigmoid_focal_loss, _with_background),
    LossCase("sigmoid_focal_soft_gamma_half", detloss.sigmoid_focal_loss, _soft, {"gamma": 0.5}),
    LossCase(
        "sigmoid_focal_soft_gamma_3",
        detloss.sigmoid_focal_loss,
        _soft,
        {"alpha": 0.75, "gamma": 3.0},
    ),
    # above exponent 8 the powers take another route (exp of an accurate log)
    LossCase("sigmoid_focal_soft_gamma_10_5", detloss.sigmoid_focal_loss, _soft, {"gamma": 10.5}),
    LossCase("sigmoid_focal_gamma_0", detloss.sigmoid_focal_loss, _one_hot, {"gamma": 0.0}),
    LossCase("sigmoid_focal_star", detloss.sigmoid_focal_loss_star, _one_hot, {"gamma": 2.0}),
    LossCase("softmax_focal", detloss.softmax_focal_loss, _class_indices),
    LossCase("varifocal", detloss.varifocal_loss, _iou_targets),
    LossCase("varifocal_plain", detloss.varifocal_loss, _iou_targets, {"iou_weighted": False}),
    LossCase("varifocal_gamma_10_5", detloss.varifocal_loss, _iou_targets, {"gamma": 10.5}),
    LossCase("quality_focal_dense", detloss.quality_focal_loss, _soft),
    LossCase("quality_focal_beta_10_5", detloss.quality_focal_loss, _soft, {"beta": 10.5}),
    LossCase("quality_focal_label_score", detloss.quality_focal_loss, _label_score),
    LossCase("distribution_focal", detloss.distribution_focal_loss, _distances),
    LossCase(
        "distribution_focal_sides",
        detloss.distribution_focal_loss,
        _side_distances,
        {"max_target": 6.99},
    ),
]

CLASSIFICATION_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "focal_loss_with_prob": {"alpha": st.one_of(st.none(), fraction), "gamma": nonnegative},
    "quality_focal_loss_with_prob": {"beta": nonnegative},
    "cross_entropy": {"label_smoothing": fraction},
    "binary_cross_entropy": {},
    "sigmoid_focal_loss": {"alpha": st.one_of(st.none(), fraction), "gamma": nonnegative},
    "sigmoid_focal_loss_star": {
        "alpha": st.one_of(st.none(), fraction),
        "gamma": positive,
    },
    "softmax_focal_loss": {"alpha": fraction, "gamma": nonnegative},
    "varifocal_loss": {"alpha": nonnegative, "gamma": nonnegative},
    "quality_focal_loss": {"beta": nonnegative},
    "distribution_focal_loss": {"max_target": nonnegative},
}
"""Per loss, the parameters the property suite draws at extreme values."""
