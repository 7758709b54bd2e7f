"""The Dice loss of mask heads, mmdetection's ``dice_loss``: the V-Net form (Milletari, Navab &
Ahmadi, "V-Net", 3DV 2016) or the naive form with first powers in the denominator.

Per sample (each row of ``pred`` flattened over its other dimensions), with ``a = sum(p t)``:

    V-Net (default):  d = 2 a / ((sum(p^2) + eps) + (sum(t^2) + eps))
    naive_dice=True:  d = (2 a + eps) / (sum(p) + sum(t) + eps)
    loss = 1 - d

``p`` are probabilities: the sigmoid of ``pred`` with ``activate=True`` (mmdetection's module
default, applied here in float32), ``pred`` itself otherwise (mmdetection's function).
"""

from __future__ import annotations

import torch
from torch import Tensor

from detloss.checks import check_divisor, prepare_pair
from detloss.reduction import weight_reduce_loss

__all__ = ["dice_loss"]


def dice_loss(
    pred: Tensor,
    target: Tensor,
    *,
    activate: bool = False,
    naive_dice: bool = False,
    eps: float = 1e-3,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Dice loss per sample (mmdetection's ``eps = 1e-3``).

    Args:
        pred: ``(N, *)`` probabilities, or logits with ``activate=True``.
        target: ``(N, *)`` masks (binary or soft) of ``pred``'s shape.
        activate: apply the sigmoid to ``pred`` first.
        naive_dice: the first-power denominator instead of V-Net's squares.
        eps: smoothing term (in [1e-30, 1e30]: 0 would make empty masks 0 / 0; see the module
            doc for where it sits).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`; the
            element-wise loss is one per sample, ``(N,)``.

    Returns:
        ``(N,)`` for "none", a scalar otherwise.
    """
    e = check_divisor(eps, "eps")
    x, t = prepare_pair(pred, target)
    if x.dim() < 2:
        raise ValueError(f"pred must be (N, *) with at least 2 dimensions, got {tuple(x.shape)}")
    p = torch.sigmoid(x).flatten(1) if activate else x.flatten(1)
    t = t.flatten(1)
    a = (p * t).sum(dim=1)
    if naive_dice:
        d = (2 * a + e) / (p.sum(dim=1) + t.sum(dim=1) + e)
    else:
        d = 2 * a / ((p * p).sum(dim=1) + e + ((t * t).sum(dim=1) + e))
    return weight_reduce_loss(1 - d, weight, reduction, avg_factor)
