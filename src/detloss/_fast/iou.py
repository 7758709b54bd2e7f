"""IoU, GIoU, DIoU and CIoU of box pairs with their gradient computed in the forward pass.

:func:`iou_of_kind` equals :func:`detloss.boxes._iou_of_kind` in value and in gradient (autograd's
of that formula, with its conventions at kinks and CIoU's alpha a constant; tested in
``tests/test_fast_iou.py``). Eagerly autograd records about 35 operations on the box pairs and
replays twice as many in the backward; here the forward works on one contiguous copy of each
coordinate, mostly in place, shares the intermediates of value and gradient, and the backward is
one multiplication (``docs/benchmarks.md`` has the measured difference). Only the prediction is
differentiated this way: when the target requires a gradient too, the autograd formula runs. The
backward is not itself differentiable.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from detloss import boxes
from detloss.boxes import _FOUR_OVER_PI_SQUARED, BoxFormat, IoUKind, _corners
from detloss.boxes import _iou_of_kind as _autograd_iou_of_kind


def _columns(boxes: Tensor, box_format: BoxFormat) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x1, y1, x2, y2)`` as contiguous ``(...)`` tensors: element-wise ops on the stride-4
    columns of ``(..., 4)`` boxes are not vectorised and read every cache line each time."""
    a, b, c, d = (column.contiguous() for column in boxes.unbind(-1))
    if box_format == "xyxy":
        return a, b, c, d
    if box_format == "xywh":
        return a, b, a + c, b + d
    half_w, half_h = c * 0.5, d * 0.5
    return a - half_w, b - half_h, a + half_w, b + half_h


def _at_least(a: Tensor, b: Tensor | float) -> Tensor:
    """``[a >= b]`` as 0/1 in ``a``'s dtype: the slope of a clamp, or of a maximum at a tie."""
    return torch.ge(a, b, out=torch.empty_like(a))


class _Axis(NamedTuple):
    """One axis of the pairs: extents of the prediction, target, intersection and enclosing box,
    the offset between the centres, and where each clamp, maximum and minimum passes the gradient
    to the prediction's ``lo`` / ``hi`` (0/1 tensors)."""

    pred: Tensor
    target: Tensor
    inter: Tensor
    enclose: Tensor
    offset: Tensor
    s_pred: Tensor
    s_inter: Tensor
    s_inter_lo: Tensor
    s_inter_hi: Tensor
    s_enclose: Tensor
    s_enclose_lo: Tensor
    s_enclose_hi: Tensor


def _axis(p_lo: Tensor, p_hi: Tensor, t_lo: Tensor, t_hi: Tensor) -> _Axis:
    pred = p_hi - p_lo
    inter = p_hi.clamp(max=t_hi).sub_(p_lo.clamp(min=t_lo))
    enclose = p_hi.clamp(min=t_hi).sub_(p_lo.clamp(max=t_lo))
    s_pred, s_inter, s_enclose = (_at_least(e, 0.0) for e in (pred, inter, enclose))
    return _Axis(
        pred.clamp_(min=0),
        (t_hi - t_lo).clamp_(min=0),
        inter.clamp_(min=0),
        enclose.clamp_(min=0),
        (t_lo + t_hi).sub_(p_lo).sub_(p_hi).mul_(0.5),
        s_pred,
        s_inter,
        _at_least(p_lo, t_lo),
        _at_least(t_hi, p_hi),
        s_enclose,
        _at_least(t_lo, p_lo),
        _at_least(p_hi, t_hi),
    )


def _axis_gradient(
    a: _Axis, by_inter: Tensor, by_size: Tensor, by_enclose: Tensor | None, by_offset: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The gradient with respect to the prediction's ``(lo, hi)`` on one axis from the partial
    derivatives by its intersection extent, size, enclosing extent and centre offset."""
    d_inter = by_inter.mul_(a.s_inter)
    d_size = by_size.mul_(a.s_pred)
    if by_offset is None:
        d_hi, d_lo = d_size, d_size.neg()
    else:  # d offset / d lo = d offset / d hi = -1/2
        d_hi = d_size.sub(by_offset, alpha=0.5)
        d_lo = d_size.add_(by_offset, alpha=0.5).neg_()
    d_hi.addcmul_(d_inter, a.s_inter_hi)
    d_lo.addcmul_(d_inter, a.s_inter_lo, value=-1)
    if by_enclose is not None:
        d_enclose = by_enclose.mul_(a.s_enclose)
        d_hi.addcmul_(d_enclose, a.s_enclose_hi)
        d_lo.addcmul_(d_enclose, a.s_enclose_lo, value=-1)
    return d_lo, d_hi


def _value_and_gradient(
    kind: IoUKind,
    pred: Tensor,
    target: Tensor,
    box_format: BoxFormat,
    eps: float,
    alpha_gate: float | None,
) -> tuple[Tensor, Tensor]:
    """The kind's value of each pair ``(...)`` and its gradient with respect to ``pred`` in
    ``box_format``, coordinate-major ``(4, ...)`` (contiguous writes; formulas:
    :func:`detloss.box_iou`)."""
    px1, py1, px2, py2 = _columns(pred, box_format)
    tx1, ty1, tx2, ty2 = _columns(target, box_format)
    x, y = _axis(px1, px2, tx1, tx2), _axis(py1, py2, ty1, ty2)
    inter = x.inter * y.inter
    union = x.pred * y.pred + x.target * y.target - inter
    union_eps = union + eps
    iou = inter / union_eps
    # IoU = I / (U + eps) with U = A + A_gt - I: d/dI = (1 + IoU) / (U + eps), d/dA = -IoU / (U + eps)
    by_inter = (iou + 1).div_(union_eps)
    by_area = iou.div(union_eps).neg_()
    by_enclose: tuple[Tensor, Tensor] | tuple[None, None] = (None, None)
    by_offset: tuple[Tensor, Tensor] | tuple[None, None] = (None, None)
    value = iou
    if (
        kind == "giou"
    ):  # - (C - U) / (C + eps): d/dU = 1 / (C + eps), d/dC = -(U + eps) / (C + eps)^2
        enclose = x.enclose * y.enclose
        enclose_eps = enclose + eps
        value = iou - (enclose - union) / enclose_eps
        enclose_inv = enclose_eps.reciprocal()
        by_inter.sub_(enclose_inv)
        by_area.add_(enclose_inv)
        by_c = union_eps.mul_(enclose_inv).div_(enclose_eps).neg_()
        by_enclose = (by_c * y.enclose, by_c.mul_(x.enclose))
    elif (
        kind != "iou"
    ):  # - rho^2 / (c^2 + eps): d/d(dx) = -2 dx / (c^2 + eps), d/dc_w = 2 c_w rho^2 / (c^2 + eps)^2
        diag = x.enclose * x.enclose + y.enclose * y.enclose + eps
        distance = (x.offset * x.offset + y.offset * y.offset) / diag
        value = iou - distance
        twice = diag.reciprocal_().mul_(2)
        by_offset = (x.offset * twice.neg(), y.offset * twice.neg())
        twice.mul_(distance)
        by_enclose = (x.enclose * twice, twice.mul_(y.enclose))
    by_size = (by_area * y.pred, by_area.mul_(x.pred))
    if (
        kind == "ciou"
    ):  # - alpha v, v = 4/pi^2 atan(num / den)^2 (see detloss.boxes), alpha a constant
        w, h, w_gt, h_gt = x.pred, y.pred, x.target, y.target
        num, den = w_gt * h - w * h_gt, h_gt * h + w_gt * w + eps
        angle = torch.atan(num / den)
        v = _FOUR_OVER_PI_SQUARED * angle * angle
        alpha = boxes._ciou_alpha(v, iou, eps, alpha_gate)
        value = value - alpha * v
        # d angle / d(w, h) = (-(den h_gt + num w_gt), den w_gt - num h_gt) / (num^2 + den^2)
        k = (angle * (2 * _FOUR_OVER_PI_SQUARED)).mul_(alpha).div_(num * num + den * den)
        by_size[0].addcmul_(k, torch.addcmul(den * h_gt, num, w_gt))
        by_size[1].addcmul_(k, torch.addcmul(den * w_gt, num, h_gt, value=-1), value=-1)
    (d_x1, d_x2), (d_y1, d_y2) = (
        _axis_gradient(axis, inter_part, size_part, enclose_part, offset_part)
        for axis, inter_part, size_part, enclose_part, offset_part in zip(
            (x, y),
            (by_inter * y.inter, by_inter.mul_(x.inter)),
            by_size,
            by_enclose,
            by_offset,
            strict=True,
        )
    )
    return value, torch.stack(_format_gradient(d_x1, d_y1, d_x2, d_y2, box_format), dim=-1)


def _format_gradient(
    d_x1: Tensor, d_y1: Tensor, d_x2: Tensor, d_y2: Tensor, box_format: BoxFormat
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The gradient with respect to the four coordinates of ``box_format`` from the gradient with
    respect to the corners (the transpose of :func:`_columns`' conversion)."""
    if box_format == "xyxy":
        return d_x1, d_y1, d_x2, d_y2
    if box_format == "xywh":
        return d_x1 + d_x2, d_y1 + d_y2, d_x2, d_y2
    return d_x1 + d_x2, d_y1 + d_y2, (d_x2 - d_x1) * 0.5, (d_y2 - d_y1) * 0.5


class _IoUOfKind(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        pred: Tensor,
        target: Tensor,
        kind: IoUKind,
        box_format: BoxFormat,
        eps: float,
        alpha_gate: float | None,
    ) -> Tensor:
        value, grad = _value_and_gradient(kind, pred, target, box_format, eps, alpha_gate)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output.unsqueeze(-1), None, None, None, None, None


def iou_of_kind(
    kind: IoUKind,
    pred: Tensor,
    target: Tensor,
    box_format: BoxFormat,
    eps: float,
    alpha_gate: float | None = None,
) -> Tensor:
    """The kind's value of each pair of ``(..., 4)`` boxes (same shape and floating dtype),
    differentiated with respect to ``pred`` by the gradient computed with it."""
    if target.requires_grad or not (pred.requires_grad and torch.is_grad_enabled()):
        p, t = _corners(pred, box_format), _corners(target, box_format)
        return _autograd_iou_of_kind(kind, p, t, eps, alpha_gate)
    apply = cast(Any, _IoUOfKind.apply)
    return cast(Tensor, apply(pred, target, kind, box_format, eps, alpha_gate))
