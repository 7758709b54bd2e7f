"""IoU, GIoU, DIoU and CIoU of box pairs with their gradient computed in the forward pass.

:func:`iou_of_kind` equals :func:`detloss._geometry._iou_of_kind` in value and in gradient (autograd's
of that formula, with its conventions at kinks and CIoU's alpha a constant; tested in
``tests/test_fast_iou.py``). Eagerly autograd records about 35 operations on the box pairs and
replays twice as many in the backward; here the forward works on one contiguous coordinate-major
copy of the halved boxes, mostly in place, shares the intermediates of value and gradient, and
the backward is one multiplication; under torch.compile inductor fuses the forward into one
vectorised loop (``docs/benchmarks.md`` has the measured difference). As in
:func:`detloss._geometry._pair`, lengths are divided by the larger side of the pair's enclosing box
and ``eps`` by its square; the gradient is taken with respect to these lengths and multiplied
by ``1 / s`` last, so nothing overflows for any finite boxes. Only the prediction is
differentiated this way: when the target requires a gradient too, the autograd formula runs. The
backward is not itself differentiable.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from detloss import _geometry
from detloss._geometry import _iou_of_kind as _autograd_iou_of_kind
from detloss.boxes import BoxFormat, IoUKind, _corners


def _half_columns(tensor: Tensor, box_format: BoxFormat) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Half of ``(x1, y1, x2, y2)``: the rows of one contiguous ``(4, ...)`` copy of the boxes
    (halves, so that their differences are finite for any finite coordinates). Element-wise ops on
    the stride-4 columns of ``(..., 4)`` boxes are not vectorised, eagerly or in the kernel that
    inductor fuses on the CPU (it inlines a column into each of its uses, and that many strided
    loads turn its vectorisation off; a stack it materialises). Nothing writes to the rows in
    place: AOTAutograd specialises the number of boxes on an in-place write to a view inside an
    autograd.Function."""
    a, b, c, d = torch.stack(tensor.unbind(-1)).mul_(0.5).unbind(0)
    if box_format == "xyxy":
        return a, b, c, d
    if box_format == "xywh":
        return a, b, a + c, b + d
    return (
        torch.sub(a, c, alpha=0.5),
        torch.sub(b, d, alpha=0.5),
        torch.add(a, c, alpha=0.5),
        torch.add(b, d, alpha=0.5),
    )


def _at_least(a: Tensor, b: Tensor | float) -> Tensor:
    """``[a >= b]`` as 0/1 in ``a``'s dtype: the slope of a clamp, or of a maximum at a tie."""
    return torch.ge(a, b, out=torch.empty_like(a))


def _positive(a: Tensor) -> Tensor:
    """``[a > 0]`` as 0/1 in ``a``'s dtype (a float mask: several times faster than a bool one)."""
    return torch.gt(a, 0.0, out=torch.empty_like(a))


class _Axis(NamedTuple):
    """One axis of the pairs: extents of the prediction, target, intersection and enclosing box,
    the offset between the centres (halved coordinates: lengths halved, the offset whole), and
    where each clamp, maximum and minimum passes the gradient to the prediction's ``lo`` / ``hi``
    (0/1 tensors; ``inverted``: ``hi < lo``, where ``hi`` is replaced by ``lo``)."""

    pred: Tensor
    target: Tensor
    inter: Tensor
    enclose: Tensor
    offset: Tensor | None
    inverted: Tensor
    s_inter: Tensor
    s_inter_lo: Tensor
    s_inter_hi: Tensor
    s_enclose_lo: Tensor | None
    s_enclose_hi: Tensor | None


def _axis(p_lo: Tensor, p_hi: Tensor, t_lo: Tensor, t_hi: Tensor, kind: IoUKind) -> _Axis:
    """``p_hi`` and ``t_hi`` are raised to ``p_lo`` / ``t_lo`` (:func:`_geometry._halves`). The
    enclosing box's slopes only for the kinds that use it, the offset only for DIoU/CIoU."""
    inverted = torch.lt(p_hi, p_lo, out=torch.empty_like(p_hi))
    p_hi, t_hi = p_hi.clamp(min=p_lo), t_hi.clamp(min=t_lo)
    inter = p_hi.clamp(max=t_hi).sub_(p_lo.clamp(min=t_lo))
    s_inter = _at_least(inter, 0.0)
    enclosing = kind != "iou"
    return _Axis(
        p_hi - p_lo,
        t_hi - t_lo,
        inter.clamp_(min=0),
        p_hi.clamp(min=t_hi).sub_(p_lo.clamp(max=t_lo)),
        (t_lo - p_lo).add_(t_hi - p_hi) if kind in ("diou", "ciou") else None,
        inverted,
        s_inter,
        _at_least(p_lo, t_lo),
        _at_least(t_hi, p_hi),
        _at_least(t_lo, p_lo) if enclosing else None,
        _at_least(p_hi, t_hi) if enclosing else None,
    )


def _to_units_of_s(
    x: _Axis, y: _Axis, eps: float, relative_eps: bool
) -> tuple[Tensor, Tensor | float]:
    """Divide every length by ``s``, the larger side of the enclosing box, in place (see
    :func:`_geometry._pair`); return ``1 / s`` and ``eps`` in these units."""
    r = torch.maximum(x.enclose, y.enclose).clamp_(min=torch.finfo(x.enclose.dtype).tiny)
    r.reciprocal_()
    for axis in (x, y):
        for length in (axis.pred, axis.target, axis.inter, axis.enclose):
            length.mul_(r)
    low, high = _geometry._eps_area_range()
    if relative_eps:
        eps_area: Tensor | float = min(max(eps, low), high)
    else:
        eps_area = torch.addcmul(r.new_zeros(()), r, r, value=eps * 0.25).clamp_(low, high)
    scale = r.mul_(0.5)
    for axis in (x, y):
        if axis.offset is not None:
            axis.offset.mul_(scale)
    return scale, eps_area


def _axis_gradient(
    a: _Axis, by_inter: Tensor, by_size: Tensor, by_enclose: Tensor | None, by_offset: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The gradient with respect to the prediction's ``(lo, hi)`` on one axis from the partial
    derivatives by its intersection extent, size, enclosing extent and centre offset."""
    d_inter = by_inter.mul_(a.s_inter)
    if by_offset is None:
        d_hi, d_lo = by_size, by_size.neg()
    else:  # d offset / d lo = d offset / d hi = -1/2
        d_hi = by_size.sub(by_offset, alpha=0.5)
        d_lo = by_size.add_(by_offset, alpha=0.5).neg_()
    d_hi.addcmul_(d_inter, a.s_inter_hi)
    d_lo.addcmul_(d_inter, a.s_inter_lo, value=-1)
    if by_enclose is not None:
        assert a.s_enclose_hi is not None
        assert a.s_enclose_lo is not None
        d_hi.addcmul_(by_enclose, a.s_enclose_hi)
        d_lo.addcmul_(by_enclose, a.s_enclose_lo, value=-1)
    # hi was raised to lo where hi < lo: its gradient belongs to lo there
    d_lo.addcmul_(d_hi, a.inverted)
    return d_lo, d_hi.addcmul_(d_hi, a.inverted, value=-1)


def _value_and_gradient(
    kind: IoUKind,
    pred: Tensor,
    target: Tensor,
    box_format: BoxFormat,
    eps: float,
    alpha_gate: float | None,
    relative_eps: bool,
) -> tuple[Tensor, Tensor]:
    """The kind's value of each pair ``(...)`` and its gradient with respect to ``pred`` in
    ``box_format``, ``(..., 4)`` (formulas:
    :func:`detloss.box_iou`, computed as :func:`_geometry._pair` does)."""
    px1, py1, px2, py2 = _half_columns(pred, box_format)
    tx1, ty1, tx2, ty2 = _half_columns(target, box_format)
    x, y = _axis(px1, px2, tx1, tx2, kind), _axis(py1, py2, ty1, ty2, kind)
    scale, eps_area = _to_units_of_s(x, y, eps, relative_eps)
    inter = x.inter * y.inter
    union = torch.addcmul(x.target * y.target, x.pred, y.pred).sub_(inter)
    union_eps = union + eps_area
    iou = inter / union_eps
    # IoU = I / (U + eps) with U = A + A_gt - I: d/dI = (1 + IoU) / (U + eps), d/dA = -IoU / (U + eps)
    # (0 where U = 0); partial derivatives by lengths in units of s: d(length / s) / d(coordinate)
    # = 1 / s multiplies the coordinates' gradient last (1 / (s (U + eps)) alone can overflow)
    inv = _positive(union).div_(union_eps)
    zero = inv.new_zeros(())
    by_inter = torch.addcmul(inv, iou, inv)
    by_area = torch.addcmul(zero, iou, inv, value=-1)
    by_enclose: tuple[Tensor, Tensor] | tuple[None, None] = (None, None)
    by_offset: tuple[Tensor, Tensor] | tuple[None, None] = (None, None)
    value = iou
    if kind == "giou":
        # - (C - U) / (C + eps): d/dU = 1 / (C + eps), d/dC = -(U + eps) / (C + eps)^2; 0 where C = 0
        enclose = x.enclose * y.enclose
        enclose_eps = enclose + eps_area
        value = iou - (enclose - union).div_(enclose_eps)  # 0 where C = 0 (then U = 0)
        enclose_inv = _positive(enclose).div_(enclose_eps)
        by_inter.sub_(enclose_inv)
        by_area.add_(enclose_inv)
        by_c = torch.addcmul(zero, union_eps, enclose_inv, value=-1).div_(enclose_eps)
        by_enclose = (by_c * y.enclose, by_c.mul_(x.enclose))
    elif kind != "iou":
        # - rho^2 / (c^2 + eps): d/d(dx) = -2 dx / (c^2 + eps), d/dc_w = 2 c_w rho^2 / (c^2 + eps)^2
        assert x.offset is not None
        assert y.offset is not None
        diag = torch.addcmul(x.enclose * x.enclose, y.enclose, y.enclose).add_(eps_area)
        distance = torch.addcmul(x.offset * x.offset, y.offset, y.offset).div_(diag)
        value = iou - distance
        twice = torch.reciprocal(diag).mul_(2)
        by_offset = (
            torch.addcmul(zero, x.offset, twice, value=-1),
            torch.addcmul(zero, y.offset, twice, value=-1),
        )
        twice.mul_(distance)
        by_enclose = (x.enclose * twice, twice.mul_(y.enclose))
    by_size = (by_area * y.pred, by_area.mul_(x.pred))
    if kind == "ciou":
        # - alpha v, v = 4/pi^2 atan(num / den)^2 (see detloss._geometry), alpha a constant
        w, h, w_gt, h_gt = x.pred, y.pred, x.target, y.target
        num = w_gt * h - w * h_gt
        den = torch.addcmul(h_gt * h, w_gt, w).add_(eps_area)
        angle = torch.atan(num / den)
        v = _geometry._four_over_pi_squared() * angle * angle
        alpha = _geometry._ciou_alpha(v, iou, eps, alpha_gate)
        value = value - alpha * v
        # d angle / d(w, h) = (-(den h_gt + num w_gt), den w_gt - num h_gt) / (num^2 + den^2)
        k = (angle * (2 * _geometry._four_over_pi_squared())).mul_(alpha)
        k.div_(torch.addcmul(num * num, den, den))
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
    # coordinate-major, then (..., 4) in one pass with 1 / s (twice as fast as stacking on dim -1)
    by_coordinate = torch.stack(_format_gradient(d_x1, d_y1, d_x2, d_y2, box_format))
    grad = value.new_empty((*value.shape, 4))
    return value, torch.mul(by_coordinate.movedim(0, -1), scale.unsqueeze(-1), out=grad)


def _format_gradient(
    d_x1: Tensor, d_y1: Tensor, d_x2: Tensor, d_y2: Tensor, box_format: BoxFormat
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The gradient with respect to the four coordinates of ``box_format`` from the gradient with
    respect to the corners (the transpose of :func:`_half_columns`' conversion, halving aside)."""
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
        relative_eps: bool,
    ) -> Tensor:
        value, grad = _value_and_gradient(
            kind, pred, target, box_format, eps, alpha_gate, relative_eps
        )
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output.unsqueeze(-1), None, None, None, None, None, None


def iou_of_kind(
    kind: IoUKind,
    pred: Tensor,
    target: Tensor,
    box_format: BoxFormat,
    eps: float,
    alpha_gate: float | None = None,
    relative_eps: bool = False,
) -> Tensor:
    """The kind's value of each pair of ``(..., 4)`` boxes (same shape and floating dtype),
    differentiated with respect to ``pred`` by the gradient computed with it."""
    if target.requires_grad or not (pred.requires_grad and torch.is_grad_enabled()):
        p, t = _corners(pred, box_format), _corners(target, box_format)
        return _autograd_iou_of_kind(kind, p, t, eps, alpha_gate, relative_eps)
    apply = cast(Any, _IoUOfKind.apply)
    return cast(Tensor, apply(pred, target, kind, box_format, eps, alpha_gate, relative_eps))
