"""Box formats, conversion, the pairwise geometry every IoU kind shares, ``box_iou`` and opt-in validation.

Boxes are ``(..., 4)`` tensors in one of three formats:

* ``"xyxy"`` -- ``(x1, y1, x2, y2)``, corners (torchvision, mmdetection, detectron2); the default;
* ``"xywh"`` -- ``(x1, y1, w, h)``, top-left corner and size (COCO annotations);
* ``"cxcywh"`` -- ``(cx, cy, w, h)``, centre and size (DETR, YOLO).

Internally a box is read as four contiguous ``(...)`` coordinate tensors (a :class:`Box` of two
:class:`XY` corners), one copy of each stride-4 column of the ``(..., 4)`` input: every element-wise
op is then a contiguous, vectorised pass in eager mode, and torch.compile fuses a whole IoU loss
into a few loops over the boxes (``docs/benchmarks.md``, "Memory layout"). Everything is computed in float32
(float64 when given float64): float16 areas overflow above 65504, i.e. for boxes larger than about
256 x 256. Integer boxes are accepted and give floating results.

Degenerate boxes (documented behaviour, never NaN): a box's width and height are
``max(x2 - x1, 0)`` and ``max(y2 - y1, 0)``, so a zero-size box, a point, and a box with ``x2 < x1``
all have zero area and zero overlap with anything (IoU 0). Their centres are the coordinate
midpoints, and the enclosing box's width and height are clamped at 0 the same way. Validation
of tensor values (``x2 >= x1``, finite coordinates) reads the values, which forces a host-device
synchronisation, so it is opt-in: :func:`validate_boxes`, or ``check_boxes=True`` on the losses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, TypeAlias, cast

import torch
from torch import Tensor

from detloss._checks import check_number, check_tensor, compute_dtype
from detloss.backend import is_compiling

BoxFormat: TypeAlias = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")
IoUKind: TypeAlias = Literal["iou", "giou", "diou", "ciou"]
IOU_KINDS: tuple[str, ...] = ("iou", "giou", "diou", "ciou")
PenalisedKind: TypeAlias = Literal["iou", "giou", "diou", "ciou", "eiou"]
"""The kinds :func:`iou_and_gradient` computes: :data:`IoUKind` and EIoU (a loss only)."""
EPS: float = 1e-6
"""Default ``eps`` of every IoU function (mmdetection's IoU-loss modules use 1e-6 too)."""

_FOUR_OVER_PI_SQUARED = 4.0 / torch.pi**2


def check_box_format(box_format: object, name: str = "box_format") -> BoxFormat:
    """Return ``box_format`` if it is "xyxy", "xywh" or "cxcywh"; raise ``ValueError`` otherwise."""
    if box_format == "xyxy" or box_format == "xywh" or box_format == "cxcywh":
        return box_format
    raise ValueError(f"{name} must be one of {BOX_FORMATS}, got {box_format!r}")


def check_boxes_tensor(boxes: object, name: str = "boxes") -> Tensor:
    """Raise unless ``boxes`` is a real (floating or integer, not bool) tensor of shape ``(..., 4)``."""
    b = check_tensor(boxes, name)
    if b.dtype == torch.bool or b.dtype.is_complex:
        raise TypeError(f"{name} must be a floating-point or integer tensor, got dtype {b.dtype}")
    if b.dim() == 0 or b.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {tuple(b.shape)}")
    return b


class XY(NamedTuple):
    """A pair of ``(...)`` tensors: the x and y parts of a point, size or offset."""

    x: Tensor
    y: Tensor


class Box(NamedTuple):
    """A box as its corners ``lo = (x1, y1)`` and ``hi = (x2, y2)``, four ``(...)`` tensors."""

    lo: XY
    hi: XY


class Corners(NamedTuple):
    """A box as its two corners, each ``(..., 2)``: ``lo = (x1, y1)``, ``hi = (x2, y2)``."""

    lo: Tensor
    hi: Tensor


def _corners(first: Tensor, second: Tensor, box_format: BoxFormat) -> tuple[Tensor, Tensor]:
    """One axis's corners ``(lo, hi)`` from its two coordinates in ``box_format``: ``(x1, x2)``,
    ``(x, w)`` or ``(cx, w)`` (any tensors of the same layout)."""
    if box_format == "xyxy":
        return first, second
    if box_format == "xywh":
        return first, first + second
    half = second * 0.5
    return first - half, first + half


def format_gradient(d_lo: Tensor, d_hi: Tensor, box_format: BoxFormat) -> tuple[Tensor, Tensor]:
    """The gradient with respect to one axis's two coordinates in ``box_format`` from the gradient
    ``(d_lo, d_hi)`` with respect to the corners :func:`_corners` makes of them (its transpose)."""
    if box_format == "xyxy":
        return d_lo, d_hi
    if box_format == "xywh":
        return d_lo + d_hi, d_hi
    return d_lo + d_hi, (d_hi - d_lo) * 0.5


def read_box(boxes: Tensor, box_format: BoxFormat, dtype: torch.dtype) -> Box:
    """Read ``(..., 4)`` boxes in ``box_format`` as a :class:`Box` in ``dtype``."""
    if is_compiling():
        # contiguous columns: inductor vectorises its loops over them (not over strided ones)
        x, y, a, b = (c.contiguous() for c in boxes.to(dtype).unbind(-1))
    else:
        # One contiguous copy per coordinate: ops on the stride-4 columns of (..., 4) are not
        # vectorised and read every cache line of the boxes each time.
        rows = torch.empty((4, *boxes.shape[:-1]), dtype=dtype, device=boxes.device)
        for i in range(4):
            rows[i].copy_(boxes[..., i])
        x, y, a, b = rows.unbind(0)
    (x1, x2), (y1, y2) = _corners(x, a, box_format), _corners(y, b, box_format)
    return Box(XY(x1, y1), XY(x2, y2))


def box_gradient(corner_gradient: Box, box_format: BoxFormat, out: Tensor | None = None) -> Tensor:
    """The ``(..., 4)`` gradient with respect to boxes in ``box_format`` that :func:`read_box`
    read, from the gradient with respect to their corners; written into ``out`` if given."""
    (d_x1, d_y1), (d_x2, d_y2) = corner_gradient
    (x, a), (y, b) = (
        format_gradient(d_x1, d_x2, box_format),
        format_gradient(d_y1, d_y2, box_format),
    )
    if is_compiling():
        # Coordinate-major, so that inductor's loop over the boxes stores contiguous vectors;
        # the backward's scaling transposes it.
        return torch.stack((x, y, a, b)).movedim(0, -1)
    if out is None:
        out = x.new_empty((*x.shape, 4))
    for i, column in enumerate((x, y, a, b)):
        out[..., i].copy_(column)
    return out


def to_corners(boxes: Tensor, box_format: BoxFormat, dtype: torch.dtype) -> Corners:
    """Read ``(..., 4)`` boxes in ``box_format`` as ``(..., 2)`` corners in ``dtype``."""
    b = boxes.to(dtype)
    return Corners(*_corners(b[..., :2], b[..., 2:], box_format))


def from_corners(corners: Corners, box_format: BoxFormat) -> Tensor:
    """Write corners as ``(..., 4)`` boxes in ``box_format``."""
    lo, hi = corners
    if box_format == "xyxy":
        return torch.cat((lo, hi), dim=-1)
    if box_format == "xywh":
        return torch.cat((lo, hi - lo), dim=-1)
    return torch.cat(((lo + hi) * 0.5, hi - lo), dim=-1)


def convert_boxes(boxes: Tensor, in_fmt: str, out_fmt: str = "xyxy") -> Tensor:
    """Convert ``(..., 4)`` boxes from ``in_fmt`` to ``out_fmt`` ("xyxy", "xywh" or "cxcywh").

    Computed in float32 (float64 for float64 input) and returned in the input's floating dtype;
    integer boxes give float32 boxes. Works on degenerate boxes (negative sizes convert as given).
    """
    b = check_boxes_tensor(boxes)
    src = check_box_format(in_fmt, "in_fmt")
    dst = check_box_format(out_fmt, "out_fmt")
    out_dtype = b.dtype if b.dtype.is_floating_point else torch.float32
    if src == dst:
        return b.to(out_dtype)
    return from_corners(to_corners(b, src, compute_dtype(b)), dst).to(out_dtype)


def validate_boxes(boxes: Tensor, box_format: str = "xyxy", name: str = "boxes") -> Tensor:
    """Raise ``ValueError`` unless every box is finite with non-negative width and height.

    This reads tensor values (a host-device synchronisation on an accelerator), which is why the
    losses only call it when given ``check_boxes=True``. Returns ``boxes`` unchanged.
    """
    b = check_boxes_tensor(boxes, name)
    fmt = check_box_format(box_format)
    lo, hi = to_corners(b, fmt, compute_dtype(b))
    finite = torch.isfinite(b).all(dim=-1)
    ok = finite & (hi >= lo).all(dim=-1)
    if not bool(ok.all()):
        bad = (~ok).nonzero()
        first = tuple(int(i) for i in bad[0])
        reason = "non-finite coordinates" if not bool(finite[first]) else "x2 < x1 or y2 < y1"
        raise ValueError(
            f"{name}: {bad.shape[0]} invalid {fmt} box(es) ({reason}); the first, at index "
            f"{first}, is {b[first].tolist()}; boxes need finite coordinates and width, height >= 0"
        )
    return boxes


def check_box_pair(
    pred: object,
    target: object,
    box_format: str,
    check_boxes: bool,
    names: tuple[str, str] = ("pred", "target"),
) -> tuple[Tensor, Tensor, BoxFormat]:
    """Check a pair of box tensors of the same shape (and validate them if ``check_boxes``);
    return both in the compute dtype, and the checked format."""
    p = check_boxes_tensor(pred, names[0])
    t = check_boxes_tensor(target, names[1])
    if p.shape != t.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(p.shape)} "
            f"and {tuple(t.shape)}"
        )
    fmt = check_box_format(box_format)
    if check_boxes:
        validate_boxes(p, fmt, names[0])
        validate_boxes(t, fmt, names[1])
    dtype = compute_dtype(p, t)
    return p.to(dtype), t.to(dtype), fmt


def prepare_boxes(
    pred: object,
    target: object,
    box_format: str,
    check_boxes: bool,
    names: tuple[str, str] = ("pred", "target"),
) -> tuple[Box, Box]:
    """:func:`check_box_pair`, each read as a :class:`Box`."""
    p, t, fmt = check_box_pair(pred, target, box_format, check_boxes, names)
    return read_box(p, fmt, p.dtype), read_box(t, fmt, t.dtype)


def prepare_box_pair(
    pred: object,
    target: object,
    box_format: str,
    check_boxes: bool,
    names: tuple[str, str] = ("pred", "target"),
) -> tuple[Corners, Corners]:
    """:func:`check_box_pair`, each as ``(..., 2)`` :class:`Corners`."""
    p, t, fmt = check_box_pair(pred, target, box_format, check_boxes, names)
    return to_corners(p, fmt, p.dtype), to_corners(t, fmt, t.dtype)


# --- pairwise geometry, shared by box_iou and every IoU loss -------------------------------------

# The gradient conventions at kinks, the same for autograd (value only) and for the analytic
# gradient of :func:`iou_and_gradient`: a maximum or minimum at a tie passes the gradient to its
# first argument (the prediction), as ``clamp`` does; a size clamped at 0 passes it at exactly 0,
# so a zero-size box or touching boxes still move towards a positive size.


def pair_max(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise ``max(a, b)``; at a tie the gradient goes to ``a``."""
    return a.clamp(min=b)


def pair_min(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise ``min(a, b)``; at a tie the gradient goes to ``a``."""
    return a.clamp(max=b)


def _at_least(a: Tensor, b: Tensor | float) -> Tensor:
    """``a >= b`` as 0/1 in ``a``'s dtype (eagerly faster than a bool mask, which arithmetic must
    convert)."""
    if is_compiling():
        return (a >= b).to(a.dtype)
    return torch.ge(a, b, out=torch.empty_like(a))


def _extent(lo: Tensor, hi: Tensor, slope: bool = False) -> tuple[Tensor, Tensor | None]:
    """``max(hi - lo, 0)`` and, if ``slope``, its derivative with respect to ``hi`` (``[hi >= lo]``)."""
    d = hi - lo
    passes = _at_least(d, 0.0) if slope else None
    return d.clamp_(min=0), passes


def size(box: Box) -> XY:
    """``(w, h)`` clamped at 0: a box with ``x2 < x1`` has zero width."""
    return XY(_extent(box.lo.x, box.hi.x)[0], _extent(box.lo.y, box.hi.y)[0])


class AxisSlopes(NamedTuple):
    """Where the clamps, maxima and minima of one :class:`Axis` pass the gradient to the
    prediction's corners: 0/1 tensors, in the convention above."""

    size: Tensor  # [hi >= lo] of the prediction
    inter: Tensor  # [intersection extent >= 0]
    inter_lo: Tensor  # [pred lo >= target lo]: the intersection's lo is the prediction's
    inter_hi: Tensor  # [pred hi <= target hi]
    enclose: Tensor | None  # as inter, for the enclosing box
    enclose_lo: Tensor | None  # [pred lo <= target lo]
    enclose_hi: Tensor | None  # [pred hi >= target hi]


class Axis(NamedTuple):
    """One axis of a box pair: the extents (sizes) of the prediction, the target, their
    intersection and (when asked for) their enclosing box, and the offset from the prediction's
    centre to the target's; the slopes in gradient mode."""

    pred: Tensor
    target: Tensor
    inter: Tensor
    enclose: Tensor | None
    offset: Tensor | None
    slopes: AxisSlopes | None


def _axis(
    p_lo: Tensor, p_hi: Tensor, t_lo: Tensor, t_hi: Tensor, enclose: bool, slopes: bool
) -> Axis:
    pred, size_slope = _extent(p_lo, p_hi, slopes)
    target, _ = _extent(t_lo, t_hi)
    inter, inter_slope = _extent(pair_max(p_lo, t_lo), pair_min(p_hi, t_hi), slopes)
    outer = offset = outer_slope = None
    if enclose:
        outer, outer_slope = _extent(pair_min(p_lo, t_lo), pair_max(p_hi, t_hi), slopes)
        offset = (t_lo + t_hi - p_lo - p_hi) * 0.5
    axis_slopes = None
    if size_slope is not None and inter_slope is not None:
        axis_slopes = AxisSlopes(
            size_slope,
            inter_slope,
            _at_least(p_lo, t_lo),
            _at_least(t_hi, p_hi),
            outer_slope,
            _at_least(t_lo, p_lo) if enclose else None,
            _at_least(p_hi, t_hi) if enclose else None,
        )
    return Axis(pred, target, inter, outer, offset, axis_slopes)


class PairGeometry(NamedTuple):
    """IoU and what every kind is made of, for corresponding boxes (leading shape ``(...)``):
    ``iou = I / (U + eps)``, ``union`` is ``U``, and the two :class:`Axis`."""

    iou: Tensor
    union: Tensor
    x: Axis
    y: Axis


def pair_geometry(
    pred: Box, target: Box, eps: float, enclose: bool = False, slopes: bool = False
) -> PairGeometry:
    """Intersection, union and IoU of ``pred`` and ``target`` (broadcast together); with
    ``enclose`` also the enclosing box and the centre offset; with ``slopes`` the slopes."""
    x = _axis(pred.lo.x, pred.hi.x, target.lo.x, target.hi.x, enclose, slopes)
    y = _axis(pred.lo.y, pred.hi.y, target.lo.y, target.hi.y, enclose, slopes)
    inter = x.inter * y.inter
    union = x.pred * y.pred + x.target * y.target - inter
    return PairGeometry(inter / (union + eps), union, x, y)


class AspectRatio(NamedTuple):
    """CIoU's aspect-ratio term: the penalty is ``alpha * v`` with ``v = 4/pi^2 angle^2`` and
    ``angle = atan(num / den)``."""

    alpha: Tensor
    v: Tensor
    angle: Tensor
    num: Tensor
    den: Tensor


def aspect_ratio_penalty(
    geo: PairGeometry, eps: float, alpha_gate: float | None = None
) -> AspectRatio:
    """CIoU's ``alpha`` and ``v`` (and the parts of ``v``); the penalty is ``alpha * v``.

    ``v = 4/pi^2 (atan(w_gt / h_gt) - atan(w / h))^2`` is computed as
    ``4/pi^2 atan((w_gt h - w h_gt) / (h_gt h + w_gt w + eps))^2``, by
    ``atan(a) - atan(b) = atan((a - b) / (1 + ab))`` (valid for ``a, b >= 0``): one atan, no
    division by a height, so zero-height boxes are finite (``atan(w / h)`` has NaN gradients at
    h = 0), and a zero-size box, whose aspect ratio is undefined, adds ``v = 0``.
    ``alpha = v / ((1 - IoU) + v + eps)`` is computed without gradient, as the paper prescribes;
    without the eps, identical boxes give 0/0. ``alpha_gate=None`` applies it at every IoU (the
    paper); ``alpha_gate=0.5`` zeroes it where ``IoU <= 0.5`` (mmdetection's ``CIoULoss``).
    """
    w, h, w_gt, h_gt = geo.x.pred, geo.y.pred, geo.x.target, geo.y.target
    num = w_gt * h - w * h_gt
    den = h_gt * h + w_gt * w + eps
    # not atan2(num, den), the same value for den > 0: compiled, its kernel is ~15% slower
    angle = torch.atan(num / den)
    v = _FOUR_OVER_PI_SQUARED * angle * angle
    iou, v_const = geo.iou.detach(), v.detach()
    alpha = v_const / ((1 - iou) + v_const + eps)
    if alpha_gate is not None:
        alpha = alpha * (iou > alpha_gate).to(alpha.dtype)
    return AspectRatio(alpha, v, angle, num, den)


Slope: TypeAlias = Callable[[Tensor], "Tensor | float"]
"""``slope(value)``: the derivative of a loss with respect to an IoU kind's value, per box and
times the box's weight (a tensor of the value's shape, or a number)."""


class AxisPartials(NamedTuple):
    """Partial derivatives of a loss with respect to the quantities of one :class:`Axis`."""

    inter: Tensor
    size: Tensor
    enclose: Tensor | None
    offset: Tensor | None


def _axis_gradient(axis: Axis, d: AxisPartials) -> tuple[Tensor, Tensor]:
    """The gradient with respect to the prediction's ``(lo, hi)`` on one axis, from the partial
    derivatives ``d`` (temporaries, modified in place)."""
    # d extent / d hi = slope, d extent / d lo = -slope (times the max / min choices);
    # d offset / d lo = d offset / d hi = -1/2.
    s = cast(AxisSlopes, axis.slopes)
    d_inter = d.inter.mul_(s.inter)
    d_size = d.size.mul_(s.size)
    if d.offset is None:
        d_hi, d_lo = d_size, d_size.neg()
    else:
        d_hi = d_size.sub(d.offset, alpha=0.5)
        d_lo = d_size.add_(d.offset, alpha=0.5).neg_()
    d_hi.addcmul_(d_inter, s.inter_hi)
    d_lo.addcmul_(d_inter, s.inter_lo, value=-1)
    if d.enclose is not None:
        d_enclose = d.enclose.mul_(cast(Tensor, s.enclose))
        d_hi.addcmul_(d_enclose, cast(Tensor, s.enclose_hi))
        d_lo.addcmul_(d_enclose, cast(Tensor, s.enclose_lo), value=-1)
    return d_lo, d_hi


def iou_and_gradient(
    kind: PenalisedKind,
    pred: Box,
    target: Box,
    eps: float,
    alpha_gate: float | None = None,
    slope: Slope | None = None,
) -> tuple[Tensor, Box | None]:
    """An IoU kind's value for corresponding boxes (any broadcastable leading shapes) and, given
    ``slope``, ``slope(value)`` times its gradient with respect to the prediction's corners.

    * IoU  = I / (U + eps)
    * GIoU = IoU - (C - U) / (C + eps), C the enclosing box's area (Rezatofighi et al., CVPR 2019)
    * DIoU = IoU - rho^2 / (c^2 + eps) (Zheng et al., AAAI 2020)
    * CIoU = DIoU - alpha * v (same paper; see :func:`aspect_ratio_penalty`)
    * EIoU = DIoU - (w - w_gt)^2 / (c_w^2 + eps) - (h - h_gt)^2 / (c_h^2 + eps) (Zhang et al. 2022)

    Without ``slope`` only the value is computed, differentiable by autograd. With it (and no
    autograd graph), the value and its gradient are computed together, in place where they can:
    the gradient autograd gives the value, with the same conventions at kinks (see above) and
    CIoU's alpha a constant.
    """
    geo = pair_geometry(pred, target, eps, enclose=kind != "iou", slopes=slope is not None)
    x, y = geo.x, geo.y
    value = iou = geo.iou
    if kind == "giou":
        enclose = cast(Tensor, x.enclose) * cast(Tensor, y.enclose)
        value = iou - (enclose - geo.union) / (enclose + eps)
    elif kind != "iou":
        c_w, c_h = cast(Tensor, x.enclose), cast(Tensor, y.enclose)
        d_x, d_y = cast(Tensor, x.offset), cast(Tensor, y.offset)
        diag = c_w * c_w + c_h * c_h + eps
        distance = (d_x * d_x + d_y * d_y) / diag
        value = iou - distance
        if kind == "ciou":
            aspect = aspect_ratio_penalty(geo, eps, alpha_gate)
            value = value - aspect.alpha * aspect.v
        elif kind == "eiou":
            excess_w, excess_h = x.pred - x.target, y.pred - y.target
            c_w2, c_h2 = c_w * c_w + eps, c_h * c_h + eps
            value = value - (excess_w * excess_w / c_w2 + excess_h * excess_h / c_h2)
    if slope is None:
        return value, None

    # The partial derivatives of slope(value) * value, with D = U + eps and U = w h + w_gt h_gt - I:
    # d IoU / dI = (1 + IoU) / D, d IoU / d(w h) = -IoU / D.
    s = slope(value)
    union_eps = geo.union + eps
    by_inter = (iou + 1).div_(union_eps).mul_(s)
    by_area = iou.div(union_eps).mul_(s).neg_()
    # per axis: d/d(c_w, c_h) and d/d(dx, dy)
    by_enclose: tuple[Tensor, Tensor] | tuple[None, None] = (None, None)
    by_offset: tuple[Tensor, Tensor] | tuple[None, None] = (None, None)
    if kind == "giou":  # d/dU = 1 / (C + eps), d/dC = -(U + eps) / (C + eps)^2
        enclose_inv = (enclose + eps).reciprocal_().mul_(s)
        by_inter.sub_(enclose_inv)
        by_area.add_(enclose_inv)
        by_c = union_eps.mul_(enclose_inv).div_(enclose + eps).neg_()
        by_enclose = (by_c * cast(Tensor, y.enclose), by_c.mul_(cast(Tensor, x.enclose)))
    elif kind != "iou":  # d/d(dx) = -2 dx / c^2, d/d(c_w) = 2 (rho^2 / c^2) c_w / c^2
        twice = diag.reciprocal_().mul_(s * 2)
        by_offset = (d_x * twice.neg(), d_y * twice.neg())
        twice.mul_(distance)
        by_enclose = (c_w * twice, twice.mul_(c_h))
    by_size = (by_area * y.pred, by_area.mul_(x.pred))
    if kind == "ciou":
        # d v / d(w, h) = 8/pi^2 angle (-(den h_gt + num w_gt), den w_gt - num h_gt) / (num^2 + den^2)
        alpha, _, angle, num, den = aspect
        k = (angle * (2 * _FOUR_OVER_PI_SQUARED)).mul_(alpha).mul_(s)
        k.div_(num * num + den * den)
        by_size[0].addcmul_(k, torch.addcmul(den * y.target, num, x.target))
        by_size[1].addcmul_(k, torch.addcmul(den * x.target, num, y.target, value=-1), value=-1)
    elif kind == "eiou":  # with q = (w - w_gt) / (c_w^2 + eps): d/dw = -2 q, d/dc_w = 2 q^2 c_w
        for excess, c_sq, c, d_size, d_enclose in zip(
            (excess_w, excess_h), (c_w2, c_h2), (c_w, c_h), by_size, by_enclose, strict=True
        ):
            q = excess.div_(c_sq)
            twice_q = q * (s * 2)
            d_size.sub_(twice_q)
            cast(Tensor, d_enclose).addcmul_(twice_q.mul_(q), c)
    by_inters = (by_inter * y.inter, by_inter.mul_(x.inter))
    (x_lo, x_hi), (y_lo, y_hi) = (
        _axis_gradient(axis, AxisPartials(*partials))
        for axis, partials in zip(
            (x, y), zip(by_inters, by_size, by_enclose, by_offset, strict=True), strict=True
        )
    )
    return value, Box(XY(x_lo, y_lo), XY(x_hi, y_hi))


def iou_of_kind(
    kind: PenalisedKind,
    pred: Box,
    target: Box,
    eps: float,
    alpha_gate: float | None = None,
) -> Tensor:
    """The value of :func:`iou_and_gradient` (differentiable by autograd)."""
    return iou_and_gradient(kind, pred, target, eps, alpha_gate)[0]


def check_kind(kind: object) -> IoUKind:
    """Return ``kind`` if it is "iou", "giou", "diou" or "ciou"; raise ``ValueError`` otherwise."""
    if kind == "iou" or kind == "giou" or kind == "diou" or kind == "ciou":
        return kind
    raise ValueError(f"kind must be one of {IOU_KINDS}, got {kind!r}")


def box_iou(
    boxes1: Tensor,
    boxes2: Tensor,
    kind: str = "iou",
    *,
    aligned: bool = False,
    box_format: str = "xyxy",
    eps: float = EPS,
    check_boxes: bool = False,
) -> Tensor:
    """IoU, GIoU, DIoU or CIoU between boxes (formulas in :func:`iou_of_kind`).

    Args:
        boxes1, boxes2: boxes in ``box_format``. ``aligned=False``: shapes ``(N, 4)`` and
            ``(M, 4)``, result ``(N, M)`` with entry ``[i, j]`` comparing ``boxes1[i]`` and
            ``boxes2[j]``. ``aligned=True``: the same shape ``(..., 4)``, result ``(...)``.
        kind: "iou", "giou", "diou" or "ciou".
        eps: ``> 0``, added to every denominator.
        check_boxes: validate the boxes first (:func:`validate_boxes`; reads values).

    Returns:
        float32 (float64 for float64 input). IoU is in [0, 1], GIoU in [-1, 1], DIoU in (-1, 1],
        CIoU in (-2, 1]; zero-area boxes have IoU 0 with everything, themselves included.
    """
    k = check_kind(kind)
    eps = check_number(eps, "eps", low=0.0, strict=True)
    if aligned:
        p, t = prepare_boxes(boxes1, boxes2, box_format, check_boxes, ("boxes1", "boxes2"))
        return iou_of_kind(k, p, t, eps)
    b1 = check_boxes_tensor(boxes1, "boxes1")
    b2 = check_boxes_tensor(boxes2, "boxes2")
    if b1.dim() != 2 or b2.dim() != 2:
        raise ValueError(
            "aligned=False needs boxes1 of shape (N, 4) and boxes2 of shape (M, 4), got "
            f"{tuple(b1.shape)} and {tuple(b2.shape)}; use aligned=True for paired boxes"
        )
    fmt = check_box_format(box_format)
    if check_boxes:
        validate_boxes(b1, fmt, "boxes1")
        validate_boxes(b2, fmt, "boxes2")
    dtype = compute_dtype(b1, b2)
    return iou_of_kind(k, read_box(b1[:, None], fmt, dtype), read_box(b2[None], fmt, dtype), eps)
