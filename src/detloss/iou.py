"""The IoU-family box regression losses: IoU, GIoU, DIoU, CIoU, EIoU and SIoU.

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
penalty terms of the other losses can.

Gradient: when only ``pred`` requires one, the IoU, GIoU, DIoU, CIoU and EIoU losses compute it
with the value (:func:`detloss.boxes.iou_and_gradient`, :func:`iou_family_loss`); otherwise, and
under ``torch.compile``, autograd differentiates the same value formulas. SIoU uses autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias, cast

import torch
from torch import Tensor

from detloss._checks import check_number, check_tensor
from detloss.analytic import Factor, reduce_with_gradient
from detloss.backend import fusable
from detloss.blocks import row_blocks
from detloss.boxes import (
    EPS,
    Box,
    PenalisedKind,
    box_gradient,
    check_box_pair,
    iou_and_gradient,
    iou_of_kind,
    pair_geometry,
    pair_max,
    prepare_boxes,
    read_box,
)
from detloss.reduction import weight_reduce_loss

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


def box_weight(weight: Tensor | None, loss_shape: torch.Size, dtype: torch.dtype) -> Tensor | None:
    """A per-coordinate ``(..., 4)`` weight averaged to one per box (mmdetection), else as given."""
    if weight is not None and check_tensor(weight, "weight").shape == (*loss_shape, 4):
        return weight.to(dtype).mean(dim=-1)
    return weight


def _one_minus(value: Tensor) -> Tensor:
    return 1 - value


def _minus_factor(value: Tensor, factor: Factor) -> Factor:
    return -factor


def iou_family_loss(
    kind: PenalisedKind,
    pred: Tensor,
    target: Tensor,
    eps: float,
    box_format: str,
    check_boxes: bool,
    weight: Tensor | None,
    reduction: str,
    avg_factor: float | Tensor | None,
    alpha_gate: float | None = None,
    loss_of: Callable[[Tensor], Tensor] = _one_minus,
    slope_of: Callable[[Tensor, Factor], Factor] = _minus_factor,
) -> Tensor:
    """The reduced loss ``loss_of(value)`` of the IoU kind's value for each box pair, its
    gradient with respect to ``pred`` computed with the value
    (:func:`detloss.boxes.iou_and_gradient`, :func:`detloss.analytic.reduce_with_gradient`).

    ``slope_of(value, factor)`` is ``factor`` times the derivative of ``loss_of`` at ``value``
    (the default pair is ``1 - value``).
    """
    p, t, fmt = check_box_pair(pred, target, box_format, check_boxes)

    def evaluate(
        p: Tensor, t: Tensor, factor: Factor, grad_out: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        p_box, t_box = read_box(p, fmt, p.dtype), read_box(t, fmt, p.dtype)
        value, corner_grad = iou_and_gradient(
            kind, p_box, t_box, eps, alpha_gate, lambda v: slope_of(v, factor)
        )
        grad = box_gradient(cast(Box, corner_grad), fmt, grad_out)
        return loss_of(value), grad

    def value_and_grad(p: Tensor, t: Tensor, factor: Factor | None) -> tuple[Tensor, Tensor | None]:
        if factor is None:
            p_box, t_box = read_box(p, fmt, p.dtype), read_box(t, fmt, p.dtype)
            return loss_of(iou_of_kind(kind, p_box, t_box, eps, alpha_gate)), None
        n = p.shape[:-1].numel()
        p_rows, t_rows = p.reshape(n, 4), t.reshape(n, 4)
        blocks = row_blocks(p_rows, 1)  # one element per box in each temporary
        if blocks is None:
            return evaluate(p, t, factor)
        f_rows = factor.expand(p.shape[:-1]).reshape(n) if isinstance(factor, Tensor) else factor
        loss, grad = p.new_empty(n), p.new_empty((n, 4))
        for block in blocks:
            f = f_rows[block] if isinstance(f_rows, Tensor) else f_rows
            loss[block] = evaluate(p_rows[block], t_rows[block], f, grad[block])[0]
        return loss.view(p.shape[:-1]), grad.view(p.shape)

    # Not compiled: inductor fuses the value and autograd's backward of it into a few vectorised
    # loops, where the analytic form compiled measured 1.5-8x slower (one unvectorised loop).
    loss_shape = p.shape[:-1]
    weight = box_weight(weight, loss_shape, p.dtype)
    return reduce_with_gradient(
        value_and_grad, p, (t,), loss_shape, weight, reduction, avg_factor, compiled=False
    )


@fusable
def iou_loss(
    pred: Tensor,
    target: Tensor,
    mode: str = "log",
    eps: float = EPS,
    *,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """IoU loss (Yu et al., UnitBox, ACM MM 2016): with ``IoU`` clamped at ``eps`` from below::

        "log":    -log(IoU)     (default, as mmdetection's ``iou_loss`` and ``IoULoss``)
        "linear": 1 - IoU       (Huang et al., 2019; torchvision-style ``1 - box_iou``)
        "square": 1 - IoU^2

    Args:
        pred, target: boxes ``(..., 4)`` in ``box_format``.
        mode: "log", "linear" or "square".
        eps: ``> 0``; in IoU's denominator and the clamp (so "log" is at most ``-log(eps)``).
        check_boxes: validate boxes first (reads values: a host sync).
        weight: ``(...)`` or ``(..., 4)`` (averaged over the last dimension).
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    Boxes that do not overlap have IoU 0 and a zero gradient: use GIoU, DIoU or CIoU to move them.
    """
    mode = check_mode(mode)
    eps = check_number(eps, "eps", low=0.0, strict=True)

    def loss_of(iou: Tensor) -> Tensor:
        clamped = iou.clamp(min=eps)
        if mode == "linear":
            return 1 - clamped
        if mode == "square":
            return 1 - clamped * clamped
        return -torch.log(clamped)

    def slope_of(iou: Tensor, factor: Factor) -> Tensor:
        # the clamp at eps passes the gradient where IoU >= eps
        passes = (iou >= eps).to(iou.dtype).mul_(factor)
        if mode == "linear":
            return passes.neg_()
        if mode == "square":
            return passes.mul_(iou.clamp(min=eps)).mul_(-2)
        return passes.div_(iou.clamp(min=eps)).neg_()

    return iou_family_loss(
        "iou",
        pred,
        target,
        eps,
        box_format,
        check_boxes,
        weight,
        reduction,
        avg_factor,
        loss_of=loss_of,
        slope_of=slope_of,
    )


@fusable
def giou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
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
    eps = check_number(eps, "eps", low=0.0, strict=True)
    return iou_family_loss(
        "giou", pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )


@fusable
def diou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
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
    eps = check_number(eps, "eps", low=0.0, strict=True)
    return iou_family_loss(
        "diou", pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )


@fusable
def ciou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
    alpha_gate: float | None = None,
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
    eps = check_number(eps, "eps", low=0.0, strict=True)
    gate = check_alpha_gate(alpha_gate)
    return iou_family_loss(
        "ciou", pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor, gate
    )


@fusable
def eiou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    *,
    box_format: str = "xyxy",
    check_boxes: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Efficient IoU loss (Zhang et al., "Focal and Efficient IOU Loss", Neurocomputing 2022)::

        loss = 1 - IoU + rho^2 / (c^2 + eps) + (w - w_gt)^2 / (c_w^2 + eps) + (h - h_gt)^2 / (c_h^2 + eps)

    Not mmdetection's ``EIoULoss``, which is a different loss of the same abbreviation (Extended
    IoU, Peng and Yu 2021, with ``smooth_point``). Arguments as :func:`giou_loss`.
    """
    eps = check_number(eps, "eps", low=0.0, strict=True)
    return iou_family_loss(
        "eiou", pred, target, eps, box_format, check_boxes, weight, reduction, avg_factor
    )


@fusable
def siou_loss(
    pred: Tensor,
    target: Tensor,
    eps: float = EPS,
    theta: float = 4.0,
    *,
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
    is ``cos(2 alpha - pi/2) = sin(2 alpha)``, written above without arcsin. Equal to mmdetection's
    ``SIoULoss`` (default ``neg_gamma=False``) and YOLOv6's SIoU up to eps placement, without their
    clamp of the result to [0, 2].

    Args:
        theta: the shape cost's exponent, ``>= 1`` (the paper uses 4; range 2 to 6).
        others: as :func:`giou_loss`.
    """
    eps = check_number(eps, "eps", low=0.0, strict=True)
    theta = check_number(theta, "theta", low=1.0, strict=False)
    p, t = prepare_boxes(pred, target, box_format, check_boxes)
    geo = pair_geometry(p, t, eps, enclose=True)
    d_x, d_y = cast(Tensor, geo.x.offset), cast(Tensor, geo.y.offset)
    # sin(2 alpha) = 2 sin(alpha) cos(alpha) = 2 |dx| |dy| / sigma^2: the paper's arcsin has an
    # infinite gradient at sin(alpha) = +-1 (boxes aligned on an axis), this form has none.
    angle = 2 * (d_x.abs() * d_y.abs()) / (d_x * d_x + d_y * d_y + eps)
    cost: Tensor | float = 0.0
    for axis, d in ((geo.x, d_x), (geo.y, d_y)):
        c = cast(Tensor, axis.enclose)
        # distance cost 1 - exp(-(2 - Lambda) rho_t), shape cost (1 - exp(-omega_t))^theta
        distance = -torch.expm1((angle - 2) * (d * d / (c * c + eps)))
        omega = (axis.pred - axis.target).abs() / (pair_max(axis.pred, axis.target) + eps)
        cost = cost + distance + (-torch.expm1(-omega)) ** theta
    loss = 1 - geo.iou + cost * 0.5
    return weight_reduce_loss(
        loss, box_weight(weight, loss.shape, loss.dtype), reduction, avg_factor
    )
