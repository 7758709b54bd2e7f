"""The Gaussian focal loss of heatmap heads (Law & Deng, "CornerNet: Detecting Objects as Paired
Keypoints", ECCV 2018; Zhou et al., "Objects as Points" (CenterNet), 2019), mmdetection's
``gaussian_focal_loss``.

``pred`` holds probabilities (the head's clamped sigmoid), ``target`` a heatmap in [0, 1] with
Gaussian bumps that peak at 1 on the objects' keypoints. With ``e = 1e-12``:

    pos = -log(pred + e) (1 - pred)^alpha                 where target == 1
    neg = -log(1 - pred + e) pred^alpha (1 - target)^gamma
    loss = pos_weight * pos + neg_weight * neg

(``(1 - target)^gamma`` is 0 at the peaks, so they contribute only ``pos``). CenterNet-update passes
the positives as indices instead (mmdetection's ``gaussian_focal_loss_with_pos_inds``): then
``positives`` marks them and ``target == 1`` is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor

from detloss.checks import check_exponent, check_factor, check_tensor, prepare_pair
from detloss.reduction import weight_reduce_loss

__all__ = ["gaussian_focal_loss"]


def check_parameters(
    alpha: float, gamma: float, pos_weight: float, neg_weight: float
) -> tuple[float, float, float, float]:
    """The exponents 0 or in [1e-30, 1e30], the factors in [0, 1e30]."""
    return (
        check_exponent(alpha, "alpha"),
        check_exponent(gamma, "gamma"),
        check_factor(pos_weight, "pos_weight"),
        check_factor(neg_weight, "neg_weight"),
    )


def gaussian_focal_loss(
    pred: Tensor,
    target: Tensor,
    alpha: float = 2.0,
    gamma: float = 4.0,
    pos_weight: float = 1.0,
    neg_weight: float = 1.0,
    *,
    positives: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Focal loss for Gaussian heatmap targets (mmdetection's defaults alpha=2, gamma=4).

    Args:
        pred: probabilities in [0, 1], any shape (e.g. ``(B, C, H, W)`` or ``(N, C)``).
        target: Gaussian heatmap of the same shape.
        alpha: power of the prediction (0 or in [1e-30, 1e30]).
        gamma: power of ``1 - target`` for the negatives (0 or in [1e-30, 1e30]).
        pos_weight, neg_weight: factors of the positive and negative terms (in [0, 1e30]).
        positives: optional mask (or count) of ``pred``'s shape marking the positives, in place of
            ``target == 1``; :class:`detloss.GaussianFocalLoss` builds it from ``pos_inds`` and
            ``pos_labels``.
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss` (CornerNet
            and CenterNet pass the number of objects as ``avg_factor``).

    Returns:
        ``pred``'s shape for "none", a scalar otherwise.
    """
    a, g, wp, wn = check_parameters(alpha, gamma, pos_weight, neg_weight)
    p, t = prepare_pair(pred, target)
    if positives is None:
        pos = t == 1
    elif check_tensor(positives, "positives").shape != p.shape:
        raise ValueError(
            f"positives must have pred's shape {tuple(p.shape)}, got {tuple(positives.shape)}"
        )
    else:
        pos = positives.to(p.dtype)
    pos_loss = -(p + 1e-12).log() * (1 - p).pow(a) * pos
    neg_loss = -(1 - p + 1e-12).log() * p.pow(a) * (1 - t).pow(g)
    return weight_reduce_loss(wp * pos_loss + wn * neg_loss, weight, reduction, avg_factor)


def positives_from_indices(pred: Tensor, pos_inds: Tensor, pos_labels: Tensor) -> Tensor:
    """The ``(N, C)`` count of positives at ``(pos_inds[k], pos_labels[k])`` (CenterNet-update's
    flattened locations and their classes), for :func:`gaussian_focal_loss`'s ``positives``."""
    inds = check_tensor(pos_inds, "pos_inds")
    labels = check_tensor(pos_labels, "pos_labels")
    if pred.dim() != 2 or inds.shape != labels.shape or inds.dim() != 1:
        raise ValueError(
            "pos_inds and pos_labels must be (M,) indices into pred of shape (N, C), got "
            f"{tuple(inds.shape)}, {tuple(labels.shape)} and pred {tuple(pred.shape)}"
        )
    counts = torch.zeros(pred.shape, dtype=torch.float32, device=pred.device)
    ones = torch.ones(inds.shape, dtype=torch.float32, device=pred.device)
    return counts.index_put((inds, labels), ones, accumulate=True)
