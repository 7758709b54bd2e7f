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

from typing import Literal, NamedTuple, TypeAlias

import torch
from torch import Tensor

from detloss.inputs import check_number, check_tensor, compute_dtype

BoxFormat: TypeAlias = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")
IoUKind: TypeAlias = Literal["iou", "giou", "diou", "ciou"]
IOU_KINDS: tuple[str, ...] = ("iou", "giou", "diou", "ciou")
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
    """A pair of ``(...)`` tensors, the x and y parts of a point, size or offset."""

    x: Tensor
    y: Tensor

    def prod(self) -> Tensor:
        """``x * y`` (the area of a size ``(w, h)``)."""
        return self.x * self.y

    def sum(self) -> Tensor:
        """``x + y``."""
        return self.x + self.y

    def square(self) -> XY:
        """``(x^2, y^2)``."""
        return XY(self.x * self.x, self.y * self.y)


class Box(NamedTuple):
    """A box as its corners ``lo = (x1, y1)`` and ``hi = (x2, y2)``, four ``(...)`` tensors."""

    lo: XY
    hi: XY


class Corners(NamedTuple):
    """A box as its two corners, each ``(..., 2)``: ``lo = (x1, y1)``, ``hi = (x2, y2)``."""

    lo: Tensor
    hi: Tensor


def read_box(boxes: Tensor, box_format: BoxFormat, dtype: torch.dtype) -> Box:
    """Read ``(..., 4)`` boxes in ``box_format`` as a :class:`Box` of contiguous coordinates in ``dtype``."""
    # One contiguous copy per coordinate: ops on the stride-4 columns of (..., 4) are not vectorised
    # and read every cache line of the boxes each time (one coordinate is read up to six times).
    x, y, a, b = (c.contiguous() for c in boxes.to(dtype).unbind(-1))
    if box_format == "xyxy":
        return Box(XY(x, y), XY(a, b))
    if box_format == "xywh":
        return Box(XY(x, y), XY(x + a, y + b))
    half_w, half_h = a * 0.5, b * 0.5
    return Box(XY(x - half_w, y - half_h), XY(x + half_w, y + half_h))


def box_corners(box: Box) -> Corners:
    """The ``(..., 2)`` :class:`Corners` of a :class:`Box`."""
    return Corners(torch.stack(box.lo, dim=-1), torch.stack(box.hi, dim=-1))


def to_corners(boxes: Tensor, box_format: BoxFormat, dtype: torch.dtype) -> Corners:
    """Read ``(..., 4)`` boxes in ``box_format`` as contiguous ``(..., 2)`` corners in ``dtype``."""
    return box_corners(read_box(boxes, box_format, dtype))


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


def prepare_boxes(
    pred: object,
    target: object,
    box_format: str,
    check_boxes: bool,
    names: tuple[str, str] = ("pred", "target"),
) -> tuple[Box, Box]:
    """Check a pair of box tensors of the same shape and read both as :class:`Box` in the compute dtype."""
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
    return read_box(p, fmt, dtype), read_box(t, fmt, dtype)


def prepare_box_pair(
    pred: object,
    target: object,
    box_format: str,
    check_boxes: bool,
    names: tuple[str, str] = ("pred", "target"),
) -> tuple[Corners, Corners]:
    """:func:`prepare_boxes`, each box as ``(..., 2)`` :class:`Corners`."""
    p, t = prepare_boxes(pred, target, box_format, check_boxes, names)
    return box_corners(p), box_corners(t)


# --- pairwise geometry, shared by box_iou and every IoU loss -------------------------------------


# Maxima, minima and the clamp of a size at 0 are written with relu: its backward is one pass
# (threshold_backward) where a clamp's or torch.maximum's builds masks and selects, ~2x slower end
# to end in eager mode. The relu is in place on its own temporary (one tensor less alive). At a
# tie the gradient goes to the first argument, as clamp's does, so a size of exactly 0 (a zero-size
# box, touching boxes) still passes the gradient towards a positive size. When the result is the
# second argument it is a + (b - a): exact when b - a is (Sterbenz: b / 2 <= a <= 2b), otherwise
# within one rounding of b.


def pair_max(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise ``max(a, b)``; at a tie the gradient goes to ``a``."""
    return a + (b - a).relu_()


def pair_min(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise ``min(a, b)``; at a tie the gradient goes to ``a``."""
    return a - (a - b).relu_()


def _extent(lo: Tensor, hi: Tensor) -> Tensor:
    """``max(hi - lo, 0)``."""
    d = hi - lo
    return d + (-d).relu_()


def size(box: Box) -> XY:
    """``(w, h)`` clamped at 0: a box with ``x2 < x1`` has zero width."""
    return XY(_extent(box.lo.x, box.hi.x), _extent(box.lo.y, box.hi.y))


def intersection_size(pred: Box, target: Box) -> XY:
    """``(w, h)`` of the intersection of ``pred`` and ``target``, clamped at 0."""
    return XY(
        _extent(pair_max(pred.lo.x, target.lo.x), pair_min(pred.hi.x, target.hi.x)),
        _extent(pair_max(pred.lo.y, target.lo.y), pair_min(pred.hi.y, target.hi.y)),
    )


def enclosing_size(pred: Box, target: Box) -> XY:
    """``(c_w, c_h)`` of the smallest box enclosing both, clamped at 0."""
    return XY(
        _extent(pair_min(pred.lo.x, target.lo.x), pair_max(pred.hi.x, target.hi.x)),
        _extent(pair_min(pred.lo.y, target.lo.y), pair_max(pred.hi.y, target.hi.y)),
    )


class PairGeometry(NamedTuple):
    """IoU and what it is made of, for corresponding boxes (leading shape ``(...)``).

    ``iou = I / (U + eps)``; ``union`` is ``U``; ``pred_wh`` and ``target_wh`` are the boxes' sizes.
    """

    iou: Tensor
    union: Tensor
    pred_wh: XY
    target_wh: XY


def pair_geometry(pred: Box, target: Box, eps: float) -> PairGeometry:
    """Intersection, union and IoU of ``pred`` and ``target`` (broadcast together)."""
    inter = intersection_size(pred, target).prod()
    pred_wh, target_wh = size(pred), size(target)
    union = pred_wh.prod() + target_wh.prod() - inter
    return PairGeometry(inter / (union + eps), union, pred_wh, target_wh)


def centre_offset(pred: Box, target: Box) -> XY:
    """``(dx, dy)`` from ``pred``'s centre to ``target``'s."""
    return XY(
        (target.lo.x + target.hi.x - pred.lo.x - pred.hi.x) * 0.5,
        (target.lo.y + target.hi.y - pred.lo.y - pred.hi.y) * 0.5,
    )


def distance_penalty(offset: XY, enclose_wh: XY, eps: float) -> Tensor:
    """DIoU's ``rho^2 / (c^2 + eps)``: squared centre distance over the enclosing box's squared diagonal."""
    return offset.square().sum() / (enclose_wh.square().sum() + eps)


def aspect_ratio_penalty(
    geo: PairGeometry, eps: float, alpha_gate: float | None = None
) -> tuple[Tensor, Tensor]:
    """CIoU's ``(alpha, v)``; the penalty is ``alpha * v``.

    ``v = 4/pi^2 (atan(w_gt / h_gt) - atan(w / h))^2`` is computed as
    ``4/pi^2 atan((w_gt h - w h_gt) / (h_gt h + w_gt w + eps))^2``, by
    ``atan(a) - atan(b) = atan((a - b) / (1 + ab))`` (valid for ``a, b >= 0``): one atan and no
    division by a height, so zero-height boxes are finite (``atan(w / h)`` has NaN gradients at
    h = 0) and a zero-size box, whose aspect ratio is undefined, adds ``v = 0``.
    ``alpha = v / ((1 - IoU) + v + eps)`` is computed without gradient, as the paper prescribes;
    without the eps, identical boxes give 0/0. ``alpha_gate=None`` applies it at every IoU (the
    paper); ``alpha_gate=0.5`` zeroes it where ``IoU <= 0.5`` (mmdetection's ``CIoULoss``).
    """
    (w, h), (w_gt, h_gt) = geo.pred_wh, geo.target_wh
    angle = torch.atan((w_gt * h - w * h_gt) / (h_gt * h + w_gt * w + eps))
    v = _FOUR_OVER_PI_SQUARED * angle * angle
    iou, v_const = geo.iou.detach(), v.detach()
    alpha = v_const / ((1 - iou) + v_const + eps)
    if alpha_gate is not None:
        alpha = alpha * (iou > alpha_gate).to(alpha.dtype)
    return alpha, v


def iou_of_kind(
    kind: IoUKind,
    pred: Box,
    target: Box,
    eps: float,
    alpha_gate: float | None = None,
) -> Tensor:
    """IoU, GIoU, DIoU or CIoU of corresponding boxes (any broadcastable leading shapes).

    * IoU  = I / (U + eps)
    * GIoU = IoU - (C - U) / (C + eps), C the enclosing box's area (Rezatofighi et al., CVPR 2019)
    * DIoU = IoU - rho^2 / (c^2 + eps) (Zheng et al., AAAI 2020)
    * CIoU = DIoU - alpha * v (same paper; see :func:`aspect_ratio_penalty`)
    """
    geo = pair_geometry(pred, target, eps)
    if kind == "iou":
        return geo.iou
    enclose_wh = enclosing_size(pred, target)
    if kind == "giou":
        enclose = enclose_wh.prod()
        return geo.iou - (enclose - geo.union) / (enclose + eps)
    diou = geo.iou - distance_penalty(centre_offset(pred, target), enclose_wh, eps)
    if kind == "diou":
        return diou
    alpha, v = aspect_ratio_penalty(geo, eps, alpha_gate)
    return diou - alpha * v


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
