"""The Bounded IoU loss (Tychsen-Smith & Petersson, "Improving Object Localization with Fitness NMS
and Bounded IoU Loss", CVPR 2018), in mmdetection's form (``bounded_iou_loss``).

For ``pred`` and ``target`` boxes ``(x1, y1, x2, y2)`` with centres ``(x, y)``, sizes ``(w, h)``
(target: ``x_t, y_t, w_t, h_t``) and ``dx = x_t - x``, ``dy = y_t - y``, each coordinate gets an
upper bound of ``1 - IoU`` when only that coordinate differs from the target:

    l_x = 1 - max((w_t - 2 |dx|) / (w_t + 2 |dx| + eps), 0)
    l_y = 1 - max((h_t - 2 |dy|) / (h_t + 2 |dy| + eps), 0)
    l_w = 1 - min(w_t / (w + eps), w / (w_t + eps))
    l_h = 1 - min(h_t / (h + eps), h / (h_t + eps))

and the loss is Smooth L1 of each bound against 0: ``0.5 l^2 / beta`` where ``l < beta``, else
``l - 0.5 beta`` (mmdetection's one-sided test). ``beta = 0`` gives ``l`` itself (mmdetection's
expression divides by 0 there). The target's centres and sizes are constants: the target receives
no gradient, as in mmdetection (which computes them under ``torch.no_grad()``).

Sizes are ``max(x2 - x1, 0)`` (mmdetection takes ``x2 - x1`` as it is): a box with ``x2 < x1`` has
width 0, so every bound is in [0, 1] and its gradient at most about ``4 / eps``, where negative
target sizes made mmdetection's bounds and gradients unbounded (``w_t / (w + eps)`` with ``w_t < 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss.boxes import check_eps
from detloss.checks import check_number, prepare_pair
from detloss.reduction import weight_reduce_loss

__all__ = ["bounded_iou_loss"]


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x1, y1, x2, y2 = (c * 0.5 for c in boxes.unbind(-1))  # halves: no sum or difference overflows
    return x1 + x2, y1 + y2, ((x2 - x1) * 2).clamp(min=0), ((y2 - y1) * 2).clamp(min=0)


def _centre_bound(size_t: Tensor, offset: Tensor, eps: float) -> Tensor:
    span = 2 * offset.abs()
    return 1 - ((size_t - span) / (size_t + span + eps)).clamp_min(0)


def _size_bound(size: Tensor, size_t: Tensor, eps: float) -> Tensor:
    # min(size_t / (size + eps), size / (size_t + eps)) is the smaller size over the larger plus
    # eps, written without the slope 1 / (size + eps)^2 of the branch not taken
    return 1 - torch.minimum(size, size_t) / (torch.maximum(size, size_t) + eps)


def bounded_iou_loss(
    pred: Tensor,
    target: Tensor,
    beta: float = 0.2,
    eps: float = 1e-3,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Bounded IoU loss of ``xyxy`` boxes, one term per coordinate (mmdetection's defaults).

    Args:
        pred: predicted boxes ``(..., 4)`` as ``(x1, y1, x2, y2)``.
        target: target boxes of the same shape; no gradient flows to them.
        beta: Smooth L1's transition point (``>= 0``, default 0.2).
        eps: added to each denominator (in [1e-30, 1e30], default 1e-3).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`; the
            element-wise loss has shape ``(..., 4)`` (``(l_x, l_y, l_w, l_h)`` after Smooth L1), so
            a per-box weight is given as ``(..., 1)``.

    Returns:
        ``(..., 4)`` for "none", a scalar otherwise; float32 for float16/bfloat16 boxes.
    """
    b = check_number(beta, "beta", low=0.0, strict=False)
    e = check_eps(eps)
    p, t = prepare_pair(pred, target)
    if p.shape[-1:] != (4,):
        raise ValueError(f"boxes must have shape (..., 4), got {tuple(p.shape)}")
    x, y, w, h = _centre_size(p)
    x_t, y_t, w_t, h_t = _centre_size(t.detach())
    bounds = torch.stack(
        [
            _centre_bound(w_t, x_t - x, e),
            _centre_bound(h_t, y_t - y, e),
            _size_bound(w, w_t, e),
            _size_bound(h, h_t, e),
        ],
        dim=-1,
    )
    # bounds are in [0, 1]: PyTorch's Smooth L1 against 0 is mmdetection's one-sided form, L1 at
    # beta = 0, and finite for a beta too small for the dtype
    loss = F.smooth_l1_loss(bounds, torch.zeros_like(bounds), reduction="none", beta=b)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)
