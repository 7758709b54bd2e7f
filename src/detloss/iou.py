"""The IoU-family box regression losses: IoU, GIoU, DIoU, CIoU, Efficient IoU and SIoU.

Every loss takes ``pred`` and ``target`` boxes of the same shape ``(..., 4)`` in ``box_format``
("xyxy" default, "xywh", "cxcywh"; see :mod:`detloss.boxes`) and returns the element-wise loss of
shape ``(...)`` reduced by :func:`detloss.reduction.weight_reduce_loss`. ``weight`` is either
per box, ``(...)``, or per coordinate, ``(..., 4)``, which is averaged over the last dimension
first (mmdetection's behaviour). Computation is in float32 (float64 for float64 input) from the
first operation, so float16 boxes with coordinates in the thousands give the float32 result.

Notation (per box pair): ``I``, ``U`` intersection and union areas, ``IoU = I / (U + eps)``,
``C`` / ``(c_w, c_h)`` the smallest enclosing box's area / size, ``c^2 = c_w^2 + c_h^2``,
``(dx, dy)`` the offset between the centres, ``rho^2 = dx^2 + dy^2``, ``(w, h)`` / ``(w_gt, h_gt)``
the sizes of ``pred`` / ``target``. Every denominator carries ``eps`` (formulas and degenerate
cases: ``docs/boxes.md``). A loss of boxes that do not overlap has a zero gradient through the
IoU term (the intersection is constant 0 there): :func:`iou_loss` cannot move such boxes; the
penalty terms of the other losses can. Gradients are autograd's, with the conventions at kinks
of :mod:`detloss._geometry`.

``eps`` is an area in the boxes' units, as in mmdetection (1e-6 by default): with coordinates
normalised to [0, 1] (DETR, YOLO) it is not small, e.g. a 1e-3 x 1e-3 box has IoU 0.5 with
itself. ``relative_eps=True`` makes the losses scale-free: ``eps`` is then relative to ``s^2``,
``s`` the larger side of the pair's enclosing box, and the loss of boxes ``k * b`` is the loss
of ``b`` for every ``k > 0``. Either way the geometry is computed in units of ``s``, so any
finite coordinates give a finite loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias

import torch
from torch import Tensor

from detloss._fast.iou import iou_of_kind
from detloss._geometry import _centre_distance, _centre_offset, _length_eps, _pair, _pair_max
from detloss.boxes import EPS, BoxFormat, _corners, _prepare_boxes, check_eps
from detloss.checks import LARGEST, check_number, check_tensor
from detloss.reduction import weight_reduce_loss

__all__ = ["ciou_loss", "diou_loss", "efficient_iou_loss", "giou_loss", "iou_loss", "siou_loss"]

IoUMode: TypeAlias = Literal["log", "linear", "square"]
IOU_MODES: tuple[str, ...] = ("log", "linear", "square")


def check_mode(mode: object) -> IoUMode:
    """Return ``mode`` if it is "log", "linear" or "square"; raise ``ValueError`` otherwise."""
    if mode == "log" or mode == "linear" or mode == "square":
        return mode
    raise ValueError(f"mode must be one of {IOU_MODES}, got {mode!r}")


def check_alpha_gate(alpha_gate: float | None) -> float | None:
    """``None`` or a number in [0, 1) (the IoU above which CIoU's alpha * v applies)."""
    if alpha_gate is None:
        return None
    gate = check_number(alpha_gate, "alpha_gate", low=0.0, strict=False)
    if gate >= 1.0:
        raise ValueError(f"alpha_gate must be None or in [0, 1), got {alpha_gate!r}")
    return gate


def _box_loss(
    loss_of: Callable[[Tensor, Tensor, BoxFormat], Tensor],
    pred: Tensor,
    target: Tensor,
    eps: float,
    box_format: str,
    check_boxes: bool,
    weight: Tensor | None,
    reduction: str,
    avg_factor: float | Tensor | None,
) -> Tensor:
    """``loss_of(pred, target, box_format)`` of the checked boxes in the compute dtype, reduced
    with a per-box weight (a per-coordinate ``(..., 4)`` weight is averaged to one per box, as
    mmdetection)."""
    loss = loss_of(*_prepare_boxes(pred, target, box_format, check_boxes))
    if weight is not None and check_tensor(weight, "weight").shape == (*loss.shape, 4):
        # quarters first: the mean of four weights near the dtype's top, without the sum's overflow
        weight = weight.to(loss.dtype).mul(0.25).sum(dim=-1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def iou_loss(
    pred: Tensor,
    target: Tensor,
    mode: str = "log",
    eps: float = EPS,
    *,
    min_iou: float | None = None,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """IoU loss (Yu et al., UnitBox, ACM MM 2016): with ``IoU = I / (U + eps)`` clamped at
    ``min_iou`` from below::

        "log":    -log(IoU)     (default, as mmdetection's ``iou_loss`` and ``IoULoss``)
        "linear": 1 - IoU       (Huang et al., 2019; torchvision-style ``1 - box_iou``)
        "square": 1 - IoU^2

    Args:
        pred, target: boxes ``(..., 4)`` in ``box_format``.
        mode: "log", "linear" or "square".
        eps: in [1.2e-38, 1e30]; in IoU's denominator.
        relative_eps: ``eps`` relative to the pair's size (see the module doc).
        min_iou: in the same range, the clamp (so "log" is at most ``-log(min_iou)``); default ``eps``.
            mmdetection's ``IoULoss(eps=e)`` is ``eps=1e-6, min_iou=e``: its ``eps`` is only the
            clamp, its IoU's denominator is ``max(U, 1e-6)``.
        check_boxes: validate boxes first (reads values: a host sync).
        weight: ``(...)`` or ``(..., 4)`` (averaged over the last dimension).
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    Boxes that do not overlap have IoU 0 and a zero gradient: use GIoU, DIoU or CIoU to move them.
    """
    mode = check_mode(mode)
    eps = check_eps(eps)
    low = eps if min_iou is None else check_eps(min_iou, "min_iou")

    def loss_of(p: Tensor, t: Tensor, fmt: BoxFormat) -> Tensor:
        iou = iou_of_kind("iou", p, t, fmt, eps, None, relative_eps).clamp(min=low)
        if mode == "linear":
            return 1 - iou
        if mode == "square":
            return 1 - iou * iou
        return -torch.log(iou)

    return _box_loss(
        loss_of, pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )


def giou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Generalized IoU loss (Rezatofighi et al., CVPR 2019), in [0, 2]::

        loss = 1 - IoU + (C - U) / (C + eps)

    Equal to fvcore's ``giou_loss`` and torchvision's ``generalized_box_iou_loss`` (both eps=1e-7)
    and mmdetection's ``GIoULoss``. Arguments as :func:`iou_loss` (no ``mode``).
    """
    eps = check_eps(eps)
    return _box_loss(
        lambda p, t, fmt: 1 - iou_of_kind("giou", p, t, fmt, eps, None, relative_eps),
        pred,
        target,
        eps,
        box_format,
        check_boxes,
        weight,
        reduction,
        avg_factor,
    )


def diou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Distance IoU loss (Zheng et al., AAAI 2020), in [0, 2)::

        loss = 1 - IoU + rho^2 / (c^2 + eps)

    Arguments as :func:`giou_loss`.
    """
    eps = check_eps(eps)
    return _box_loss(
        lambda p, t, fmt: 1 - iou_of_kind("diou", p, t, fmt, eps, None, relative_eps),
        pred,
        target,
        eps,
        box_format,
        check_boxes,
        weight,
        reduction,
        avg_factor,
    )


def ciou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
    alpha_gate: float | None = None,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Complete IoU loss (Zheng et al., AAAI 2020)::

        v     = 4 / pi^2 * (atan(w_gt / h_gt) - atan(w / h))^2
              = 4 / pi^2 * atan((w_gt h - w h_gt) / (h_gt h + w_gt w + eps))^2
        alpha = v / ((1 - IoU) + v + eps)            (no gradient flows through alpha)
        loss  = 1 - IoU + rho^2 / (c^2 + eps) + alpha * v

    ``alpha_gate=None`` (default) is the paper, detectron2 and torchvision: alpha * v at every IoU.
    ``alpha_gate=0.5`` reproduces mmdetection's ``CIoULoss``, which applies alpha * v only where
    ``IoU > 0.5``. Other arguments as :func:`giou_loss`.
    """
    eps = check_eps(eps)
    gate = check_alpha_gate(alpha_gate)
    return _box_loss(
        lambda p, t, fmt: 1 - iou_of_kind("ciou", p, t, fmt, eps, gate, relative_eps),
        pred,
        target,
        eps,
        box_format,
        check_boxes,
        weight,
        reduction,
        avg_factor,
    )


def efficient_iou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Efficient IoU loss (Zhang et al., "Focal and Efficient IOU Loss", Neurocomputing 2022)::

        loss = 1 - IoU + rho^2 / (c^2 + eps) + (w - w_gt)^2 / (c_w^2 + eps) + (h - h_gt)^2 / (c_h^2 + eps)

    Not mmdetection's ``EIoULoss``, which is a different loss of the same abbreviation (Extended
    IoU, Peng and Yu 2021: :func:`detloss.extended_iou_loss`); formerly detloss's ``eiou_loss``.
    Arguments as :func:`giou_loss`.
    """
    eps = check_eps(eps)

    def loss_of(p: Tensor, t: Tensor, fmt: BoxFormat) -> Tensor:
        g = _pair(_corners(p, fmt), _corners(t, fmt), eps, relative_eps)
        excess_w, excess_h = g.w - g.w_gt, g.h - g.h_gt
        shape = excess_w * excess_w / (g.c_w * g.c_w + g.eps) + excess_h * excess_h / (
            g.c_h * g.c_h + g.eps
        )
        return 1 - g.iou + _centre_distance(_centre_offset(g), g) + shape

    return _box_loss(
        loss_of, pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )


def siou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    theta: float = 4.0,
    *,
    neg_gamma: bool = True,
    clamp: bool = False,
    relative_eps: bool = False,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """SCYLLA IoU loss (Gevorgyan, "SIoU Loss: More Powerful Learning for Bounding Box Regression", 2022)::

        Lambda = 2 |dx| |dy| / (dx^2 + dy^2 + eps)              angle cost, in [0, 1]
        Delta  = sum_{t=x,y} 1 - exp(-(2 - Lambda) rho_t),      rho_x = dx^2 / (c_w^2 + eps)
        Omega  = sum_{t=w,h} (1 - exp(-omega_t))^theta,         omega_w = |w - w_gt| / (max(w, w_gt) + eps)
        loss   = 1 - IoU + (Delta + Omega) / 2                  in [0, 3)

    The paper's angle cost ``1 - 2 sin^2(arcsin(|dy| / sigma) - pi/4)`` (sigma the centre distance)
    is ``cos(2 alpha - pi/2) = sin(2 alpha)``, written above without arcsin: the arcsin has an
    infinite gradient at ``sin(alpha) = +-1`` (boxes aligned on an axis), this form has none.

    Args:
        theta: the shape cost's exponent, in [1, 1e30] (the paper uses 4; range 2 to 6).
        neg_gamma: True (default) is the paper's distance cost above, whose exponent
            ``gamma = Lambda - 2`` is negative. False is mmdetection's default
            (``SIoULoss(neg_gamma=False)``): ``gamma = 2 - Lambda``, so ``Delta`` is
            ``sum 1 - exp((2 - Lambda) rho_t)``, in ``(2 - 2 e^2, 0]``, which *lowers* the loss of
            distant boxes.
        clamp: clamp ``SIoU = 1 - loss`` to ``[-1, 1]``, i.e. the loss to ``[0, 2]``, with no
            gradient beyond, as mmdetection. With ``neg_gamma=False`` the SIoU of boxes
            far enough apart exceeds 1, so their loss is 0.
        others: as :func:`giou_loss`.

    ``siou_loss(p, t, neg_gamma=False, clamp=True)`` is mmdetection's ``SIoULoss()`` and
    ``siou_loss(p, t, clamp=True)`` its ``SIoULoss(neg_gamma=True)``, up to eps placement.
    """
    eps = check_eps(eps)
    theta = check_number(theta, "theta", low=1.0, strict=False, high=LARGEST)

    def loss_of(p: Tensor, t: Tensor, fmt: BoxFormat) -> Tensor:
        g = _pair(_corners(p, fmt), _corners(t, fmt), eps, relative_eps)
        d_x, d_y = _centre_offset(g)
        angle = 2 * (d_x.abs() * d_y.abs()) / (d_x * d_x + d_y * d_y + g.eps)
        gamma = angle - 2 if neg_gamma else 2 - angle
        size_eps = _length_eps(g, eps, relative_eps)

        def axis_cost(d: Tensor, c: Tensor, size: Tensor, size_gt: Tensor) -> Tensor:
            # distance cost 1 - exp(gamma rho_t) + shape cost (1 - exp(-omega_t))^theta
            distance = -torch.expm1(gamma * (d * d / (c * c + g.eps)))
            omega = (size - size_gt).abs() / (_pair_max(size, size_gt) + size_eps)
            return distance + (-torch.expm1(-omega)) ** theta

        cost = axis_cost(d_x, g.c_w, g.w, g.w_gt) + axis_cost(d_y, g.c_h, g.h, g.h_gt)
        siou = g.iou - cost * 0.5
        return 1 - (siou.clamp(-1.0, 1.0) if clamp else siou)

    return _box_loss(
        loss_of, pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )
