"""``torchvision.ops``' losses and pairwise box IoUs (torchvision 0.29), computed by detloss.

Same names, signatures and defaults (``eps=1e-7``, ``reduction="none"``, the focal loss's
``alpha=0.25, gamma=2``). Each function maps its arguments onto a detloss function:

* ``box_iou`` and ``generalized_box_iou`` divide without eps (``eps=NO_EPS``: identical values,
  and 0 instead of torchvision's NaN for zero-area pairs);
* ``distance_box_iou`` and ``complete_box_iou`` keep eps out of the IoU (``iou_eps=NO_EPS``);
* the losses carry eps in every denominator, as detloss.

Not identical: half-precision focal-loss inputs are computed in, and return, float32; an empty
input's "mean" focal loss is 0 (torchvision: NaN); any negative ``alpha`` means no weighting
(torchvision accepts only -1); ``complete_box_iou_loss`` with an ``eps`` other than 1e-7 uses it in
every denominator (torchvision only in alpha); CIoU's aspect term carries eps
(``docs/boxes.md``), a difference of order ``eps / (h h_gt)``; rotated ``fmt`` are not provided.
"""

from __future__ import annotations

import torch
from torch import Tensor

from detloss import sigmoid_focal_loss as _sigmoid_focal_loss
from detloss.boxes import box_iou as _box_iou
from detloss.iou import ciou_loss, diou_loss, giou_loss

__all__ = [
    "box_iou",
    "complete_box_iou",
    "complete_box_iou_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "sigmoid_focal_loss",
]


def sigmoid_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2,
    reduction: str = "none",
) -> Tensor:
    """:func:`detloss.sigmoid_focal_loss`; "mean" is over all elements, as torchvision."""
    return _sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction=reduction)


def generalized_box_iou_loss(
    boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """:func:`detloss.giou_loss` of ``xyxy`` boxes ``(N, 4)`` or ``(4,)``."""
    return giou_loss(boxes1, boxes2, eps, reduction=reduction)


def distance_box_iou_loss(
    boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """:func:`detloss.diou_loss` of ``xyxy`` boxes."""
    return diou_loss(boxes1, boxes2, eps, reduction=reduction)


def complete_box_iou_loss(
    boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """:func:`detloss.ciou_loss` of ``xyxy`` boxes (the paper's CIoU: alpha at every IoU)."""
    return ciou_loss(boxes1, boxes2, eps, reduction=reduction)


def _no_eps() -> float:
    """:data:`detloss.boxes.NO_EPS`, read from torch.finfo: a constant under torch.compile, where
    a float read from a module global is a graph input (a tensor made on every call)."""
    return torch.finfo(torch.float32).tiny


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """``(..., N, M)`` IoU matrix of ``(..., N, 4)`` and ``(..., M, 4)`` boxes in ``fmt``
    ("xyxy", "xywh" or "cxcywh"): :func:`detloss.box_iou` without eps."""
    return _box_iou(boxes1, boxes2, "iou", box_format=fmt, eps=_no_eps())


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """``(..., N, M)`` GIoU matrix of ``xyxy`` boxes, without eps."""
    return _box_iou(boxes1, boxes2, "giou", eps=_no_eps())


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """``(..., N, M)`` DIoU matrix of ``xyxy`` boxes: ``eps`` in the diagonal, none in the IoU."""
    return _box_iou(boxes1, boxes2, "diou", eps=eps, iou_eps=_no_eps())


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """``(..., N, M)`` CIoU matrix of ``xyxy`` boxes: ``eps`` in the diagonal and alpha, none in
    the IoU."""
    return _box_iou(boxes1, boxes2, "ciou", eps=eps, iou_eps=_no_eps())
