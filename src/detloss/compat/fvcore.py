"""``fvcore.nn``'s losses and detectron2's ``diou_loss`` / ``ciou_loss``
(``detectron2.layers``), computed by detloss.

Same names, signatures and defaults (``reduction="none"``, ``eps=1e-7``, the focal losses'
``alpha=-1``: no weighting). Each function maps its arguments onto a detloss function;
``smooth_l1_loss`` computes L1 for ``beta < 1e-5``, as fvcore (``l1_below=1e-5``). The ``_jit``
names are the same functions (not TorchScript; detloss compiles with ``torch.compile``).

Not identical: the box losses do not assert ``x2 >= x1`` (a host-device synchronisation; pass
boxes through :func:`detloss.validate_boxes` for the check); float16 is computed in and returned as
float32 (fvcore and detectron2: float16); the focal losses compute float64 inputs in float64
(fvcore: float32), give 0 for an empty input's "mean" (fvcore: NaN) and reject integer targets of
the inputs' shape (fvcore converts them with ``.float()``); an ``alpha`` above 1, a negative or
infinite ``beta`` and an unknown ``reduction`` are rejected (fvcore computes with them, or returns
the loss unreduced).
"""

from __future__ import annotations

from torch import Tensor

from detloss import sigmoid_focal_loss as _sigmoid_focal_loss
from detloss import sigmoid_focal_loss_star as _sigmoid_focal_loss_star
from detloss.iou import ciou_loss as _ciou_loss
from detloss.iou import diou_loss as _diou_loss
from detloss.iou import giou_loss as _giou_loss
from detloss.regression import smooth_l1_loss as _smooth_l1_loss

__all__ = [
    "ciou_loss",
    "diou_loss",
    "giou_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_jit",
    "sigmoid_focal_loss_star",
    "sigmoid_focal_loss_star_jit",
    "smooth_l1_loss",
]

FVCORE_L1_BELOW = 1e-5
"""fvcore's ``smooth_l1_loss`` computes L1 for ``beta`` below this."""


def giou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """:func:`detloss.giou_loss` of ``xyxy`` boxes ``(N, 4)`` or ``(4,)``."""
    return _giou_loss(boxes1, boxes2, eps, reduction=reduction)


def diou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """detectron2's ``diou_loss``: :func:`detloss.diou_loss` of ``xyxy`` boxes."""
    return _diou_loss(boxes1, boxes2, eps, reduction=reduction)


def ciou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """detectron2's ``ciou_loss``: :func:`detloss.ciou_loss` (alpha at every IoU)."""
    return _ciou_loss(boxes1, boxes2, eps, reduction=reduction)


def sigmoid_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = -1,
    gamma: float = 2,
    reduction: str = "none",
) -> Tensor:
    """:func:`detloss.sigmoid_focal_loss` (a negative ``alpha`` is no weighting)."""
    return _sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction=reduction)


def sigmoid_focal_loss_star(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = -1,
    gamma: float = 1,
    reduction: str = "none",
) -> Tensor:
    """:func:`detloss.sigmoid_focal_loss_star` (FL*)."""
    return _sigmoid_focal_loss_star(inputs, targets, alpha, gamma, reduction=reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, beta: float, reduction: str = "none") -> Tensor:
    """:func:`detloss.smooth_l1_loss` with fvcore's L1 below ``beta < 1e-5``."""
    return _smooth_l1_loss(input, target, beta, l1_below=FVCORE_L1_BELOW, reduction=reduction)


sigmoid_focal_loss_jit = sigmoid_focal_loss
sigmoid_focal_loss_star_jit = sigmoid_focal_loss_star
