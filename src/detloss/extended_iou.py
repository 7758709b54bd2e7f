"""The Extended IoU loss (Peng & Yu, "A Systematic IoU-Related Method: Beyond Simplified Regression
for Better Localization", IEEE TIP 2021), in mmdetection's form (its ``EIoULoss``).

The intersection is extended to boxes that do not overlap. Measure coordinates from the top-left
corner of the smallest enclosing box; let ``(a_x, a_y)`` be the larger of the two top-left corners
and ``(b_x, b_y)`` the smaller of the two bottom-right corners (the intersection's corners when the
boxes overlap, ``a > b`` on an axis where they do not). Then::

    I_ext = b_x b_y + min(a_x, b_x) min(a_y, b_y) - a_x max(a_y, b_y) - max(a_x, b_x) a_y
    EIoU  = I_ext / (A + A_gt - I_ext + eps)
    loss  = 0.5 l^2 / s  if l < s  else  l - 0.5 s,      l = 1 - EIoU,  s = smooth_point

``I_ext`` is the intersection ``(b_x - a_x)(b_y - a_y)`` when the boxes overlap, and negative when
they do not: ``(b_x - a_x)(a_y + b_y)`` with a gap along x only, ``(a_x + b_x)(b_y - a_y)`` along
y only, ``2 (b_x b_y - a_x a_y)`` along both. So EIoU is in ``(-1, 1]`` and keeps a gradient for
disjoint boxes, and ``l`` is in ``[0, 2)``; the loss is Smooth L1 of ``l`` against 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss._geometry import _area_eps, _Corners, _in_units_of_s, _pair_max, _pair_min
from detloss.boxes import EPS, BoxFormat, _corners, check_eps
from detloss.checks import check_number
from detloss.iou import _box_loss

__all__ = ["extended_iou_loss"]


def _extended_intersection(p: _Corners, t: _Corners) -> Tensor:
    """``I_ext`` of the module doc; maxima and minima pass the gradient to their first argument
    at ties (:mod:`detloss._geometry`)."""
    ex, ey = _pair_min(p.x1, t.x1), _pair_min(p.y1, t.y1)
    ax, ay = _pair_max(p.x1, t.x1) - ex, _pair_max(p.y1, t.y1) - ey
    bx, by = _pair_min(p.x2, t.x2) - ex, _pair_min(p.y2, t.y2) - ey
    return (
        bx * by
        + _pair_min(ax, bx) * _pair_min(ay, by)
        - ax * _pair_max(ay, by)
        - _pair_max(ax, bx) * ay
    )


def _area(b: _Corners) -> Tensor:
    return (b.x2 - b.x1) * (b.y2 - b.y1)  # x2 >= x1: see _geometry._halves


def extended_iou_loss(
    pred: Tensor,
    target: Tensor,
    smooth_point: float = 0.1,
    eps: float = EPS,
    *,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Extended IoU loss (formulas: :mod:`detloss.extended_iou`); mmdetection's ``EIoULoss`` and
    ``eiou_loss`` (not the Efficient IoU loss, :func:`detloss.efficient_iou_loss`).

    Args:
        pred, target: boxes ``(..., 4)`` in ``box_format``, of the same shape.
        smooth_point: ``s >= 0``, where the loss turns from quadratic to linear in ``1 - EIoU``
            (default 0.1, as mmdetection); 0 gives ``1 - EIoU``.
        eps: in [1.2e-38, 1e30], in EIoU's denominator (mmdetection's module default 1e-6).
        relative_eps, check_boxes, weight, reduction, avg_factor: as :func:`detloss.giou_loss`.

    Computed, as every IoU loss, in units of the pair's enclosing box (:mod:`detloss._geometry`):
    valid boxes give mmdetection's value, any finite coordinates a finite loss. A box with
    ``x2 < x1``, which mmdetection does not define, is read as ``x2 = x1``, and EIoU is clamped to
    ``[-1, 1]`` (no gradient beyond).
    """
    s = check_number(smooth_point, "smooth_point", low=0.0, strict=False)
    eps = check_eps(eps)

    def loss_of(pred_boxes: Tensor, target_boxes: Tensor, fmt: BoxFormat) -> Tensor:
        p, t, r = _in_units_of_s(_corners(pred_boxes, fmt), _corners(target_boxes, fmt))
        inter = _extended_intersection(p, t)
        union = (_area(p) + _area(t) - inter).clamp(min=0)
        gap = 1 - (inter / (union + _area_eps(eps, r, relative_eps))).clamp(-1.0, 1.0)
        # gap is in [0, 2]: PyTorch's Smooth L1 against 0 is the one-sided form, gap itself at
        # s = 0, and finite for an s too small for the dtype
        return F.smooth_l1_loss(gap, torch.zeros_like(gap), reduction="none", beta=s)

    return _box_loss(
        loss_of, pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )
