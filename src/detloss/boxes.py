"""Boxes: formats, conversion, opt-in validation, the pairwise geometry of the IoU family, ``box_iou``.

Boxes are ``(..., 4)`` tensors in one of three formats:

* ``"xyxy"`` -- ``(x1, y1, x2, y2)``, corners (torchvision, mmdetection, detectron2); the default;
* ``"xywh"`` -- ``(x1, y1, w, h)``, top-left corner and size (COCO annotations);
* ``"cxcywh"`` -- ``(cx, cy, w, h)``, centre and size (DETR, YOLO).

Internally boxes are checked and cast to the compute dtype by one function,
:func:`_prepare_boxes`, and read in one representation, their corners ``(x1, y1, x2, y2)`` as four
``(...)`` tensors (:class:`_Corners`, :func:`_corners`). The compute dtype is float32 (float64 for
float64 input; integer boxes give floating results). Half precision is never used for geometry:
float16 areas overflow above 65504, i.e. for boxes larger than about 256 x 256.

Degenerate boxes (documented behaviour, never NaN): a box's width and height are
``max(x2 - x1, 0)`` and ``max(y2 - y1, 0)``, so a zero-size box, a point, and a box with ``x2 < x1``
all have zero area and zero overlap with anything (IoU 0). Their centres are the coordinate
midpoints, and the enclosing box's width and height are clamped at 0 the same way. Validation
of tensor values (``x2 >= x1``, finite coordinates) reads the values, which forces a host-device
synchronisation, so it is opt-in: :func:`validate_boxes`, or ``check_boxes=True`` on the losses.

Gradient conventions at kinks (autograd of the formulas below): a maximum or minimum of the two
boxes' coordinates at a tie passes the gradient to its first argument (the prediction), as
``clamp`` does; a size clamped at 0 passes it at exactly 0, so a zero-size box or two touching
boxes still move towards a positive size.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, TypeAlias

import torch
from torch import Tensor

from detloss._checks import check_number, check_tensor, compute_dtype

BoxFormat: TypeAlias = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")
IoUKind: TypeAlias = Literal["iou", "giou", "diou", "ciou"]
IOU_KINDS: tuple[str, ...] = ("iou", "giou", "diou", "ciou")
BoxIoUKind: TypeAlias = Literal["iou", "iof", "giou", "diou", "ciou"]
BOX_IOU_KINDS: tuple[str, ...] = ("iou", "iof", "giou", "diou", "ciou")
Pairing: TypeAlias = Literal["same", "broadcast", "matrix"]
EPS: float = 1e-6
"""Default ``eps`` of every IoU function (mmdetection's IoU-loss modules use 1e-6 too)."""
NO_EPS: float = torch.finfo(torch.float32).tiny
"""An ``eps`` that stands for none (torchvision's ``box_iou`` and ``generalized_box_iou`` divide
without one): the smallest normal float32, which changes no quotient whose denominator exceeds
about 1e-31, and turns the 0/0 of zero-area pairs into 0 instead of NaN."""
EPS_RANGE: tuple[float, float] = (NO_EPS, 1e30)
"""The accepted ``eps`` of the box losses: numbers float32 represents (an eps below would round
to 0 where it is not divided by the pair's size: CIoU's alpha, ``iou_loss``'s clamp)."""

_FOUR_OVER_PI_SQUARED = 4.0 / torch.pi**2


def check_eps(eps: object, name: str = "eps") -> float:
    """``eps`` as a float in :data:`EPS_RANGE`; ``TypeError`` / ``ValueError`` otherwise."""
    low, high = EPS_RANGE
    return check_number(eps, name, low=low, strict=False, high=high)


def check_box_format(box_format: object, name: str = "box_format") -> BoxFormat:
    """Return ``box_format`` if it is "xyxy", "xywh" or "cxcywh"; raise ``ValueError`` otherwise."""
    if box_format == "xyxy" or box_format == "xywh" or box_format == "cxcywh":
        return box_format
    raise ValueError(f"{name} must be one of {BOX_FORMATS}, got {box_format!r}")


def _check_boxes_tensor(boxes: object, name: str) -> Tensor:
    """Raise unless ``boxes`` is a real (floating or integer, not bool) tensor of shape ``(..., 4)``."""
    b = check_tensor(boxes, name)
    if b.dtype == torch.bool or b.dtype.is_complex:
        raise TypeError(f"{name} must be a floating-point or integer tensor, got dtype {b.dtype}")
    if b.dim() == 0 or b.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {tuple(b.shape)}")
    return b


class _Corners(NamedTuple):
    """Boxes as their corners: four ``(...)`` tensors."""

    x1: Tensor
    y1: Tensor
    x2: Tensor
    y2: Tensor


def _corners(boxes: Tensor, box_format: BoxFormat) -> _Corners:
    """Read ``(..., 4)`` floating boxes in ``box_format`` as corners (views of the columns)."""
    a, b, c, d = boxes.unbind(-1)
    if box_format == "xyxy":
        return _Corners(a, b, c, d)
    if box_format == "xywh":
        return _Corners(a, b, a + c, b + d)
    half_w, half_h = c * 0.5, d * 0.5
    return _Corners(a - half_w, b - half_h, a + half_w, b + half_h)


def _from_corners(box: _Corners, box_format: BoxFormat) -> Tensor:
    """Write corners as ``(..., 4)`` boxes in ``box_format``."""
    x1, y1, x2, y2 = box
    if box_format == "xyxy":
        return torch.stack((x1, y1, x2, y2), dim=-1)
    if box_format == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    return torch.stack(((x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1), dim=-1)


def convert_boxes(boxes: Tensor, in_fmt: str, out_fmt: str = "xyxy") -> Tensor:
    """Convert ``(..., 4)`` boxes from ``in_fmt`` to ``out_fmt`` ("xyxy", "xywh" or "cxcywh").

    Computed in float32 (float64 for float64 input) and returned in the input's floating dtype;
    integer boxes give float32 boxes. Works on degenerate boxes (negative sizes convert as given).
    """
    b = _check_boxes_tensor(boxes, "boxes")
    src = check_box_format(in_fmt, "in_fmt")
    dst = check_box_format(out_fmt, "out_fmt")
    out_dtype = b.dtype if b.dtype.is_floating_point else torch.float32
    if src == dst:
        return b.to(out_dtype)
    return _from_corners(_corners(b.to(compute_dtype(b)), src), dst).to(out_dtype)


def validate_boxes(boxes: Tensor, box_format: str = "xyxy", name: str = "boxes") -> Tensor:
    """Raise ``ValueError`` unless every box is finite with non-negative width and height.

    This reads tensor values (a host-device synchronisation on an accelerator), which is why the
    losses only call it when given ``check_boxes=True``. Returns ``boxes`` unchanged.
    """
    b = _check_boxes_tensor(boxes, name)
    fmt = check_box_format(box_format)
    x1, y1, x2, y2 = _corners(b.to(compute_dtype(b)), fmt)
    finite = torch.isfinite(b).all(dim=-1)
    ok = finite & (x2 >= x1) & (y2 >= y1)
    if not bool(ok.all()):
        bad = (~ok).nonzero()
        first = tuple(int(i) for i in bad[0])
        reason = "non-finite coordinates" if not bool(finite[first]) else "x2 < x1 or y2 < y1"
        raise ValueError(
            f"{name}: {bad.shape[0]} invalid {fmt} box(es) ({reason}); the first, at index "
            f"{first}, is {b[first].tolist()}; boxes need finite coordinates and width, height >= 0"
        )
    return boxes


def _prepare_boxes(
    boxes1: object,
    boxes2: object,
    box_format: str,
    check_boxes: bool,
    names: tuple[str, str] = ("pred", "target"),
    *,
    pairing: Pairing = "same",
) -> tuple[Tensor, Tensor, BoxFormat]:
    """Check two box tensors; return both in their common compute dtype, and the format.

    ``pairing``: "same" -- the same shape ``(..., 4)``, compared pair by pair (every loss);
    "broadcast" -- shapes ``(..., 4)`` that broadcast together; "matrix" -- ``(..., N, 4)`` and
    ``(..., M, 4)`` with equal batch dimensions, returned as ``(..., N, 1, 4)`` and
    ``(..., 1, M, 4)``, which broadcast to every pair of each batch entry. ``check_boxes``
    validates the values first (:func:`validate_boxes`, a host sync). Read them as corners with
    :func:`_corners`.
    """
    b1 = _check_boxes_tensor(boxes1, names[0])
    b2 = _check_boxes_tensor(boxes2, names[1])
    s1, s2 = tuple(b1.shape), tuple(b2.shape)
    if pairing == "same" and s1 != s2:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {s1} and {s2}")
    if pairing == "broadcast":
        try:
            torch.broadcast_shapes(b1.shape, b2.shape)  # type: ignore[no-untyped-call]
        except RuntimeError:
            raise ValueError(
                f"{names[0]} {s1} and {names[1]} {s2} do not broadcast together"
            ) from None
    if pairing == "matrix" and (b1.dim() < 2 or b2.dim() < 2 or s1[:-2] != s2[:-2]):
        raise ValueError(
            f"aligned=False needs {names[0]} of shape (..., N, 4) and {names[1]} of shape "
            f"(..., M, 4) with the same batch dimensions, got {s1} and {s2}; use aligned=True "
            "for paired boxes"
        )
    fmt = check_box_format(box_format)
    if check_boxes:
        validate_boxes(b1, fmt, names[0])
        validate_boxes(b2, fmt, names[1])
    dtype = compute_dtype(b1, b2)
    b1, b2 = b1.to(dtype), b2.to(dtype)
    if pairing == "matrix":
        b1, b2 = b1.unsqueeze(-2), b2.unsqueeze(-3)
    return b1, b2, fmt


# --- pairwise geometry, shared by box_iou and every IoU loss -------------------------------------

EPS_AREA_RANGE: tuple[float, float] = (1e-18, 1e18)
"""The range ``eps`` is clamped to once divided by ``s^2`` (:func:`_pair`): below it a product of
two such numbers underflows, above it its square overflows (float32)."""


def _pair_max(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise ``max(a, b)``; at a tie the gradient goes to ``a``."""
    return a.clamp(min=b)


def _pair_min(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise ``min(a, b)``; at a tie the gradient goes to ``a``."""
    return a.clamp(max=b)


def _halves(box: _Corners) -> _Corners:
    """Half of each coordinate, with ``x2 < x1`` read as ``x2 = x1`` (likewise y): differences of
    halves stay finite for any finite coordinates."""
    x1, y1, x2, y2 = (c * 0.5 for c in box)
    return _Corners(x1, y1, _pair_max(x2, x1), _pair_max(y2, y1))


class _Pair(NamedTuple):
    """The terms every IoU kind of a box pair uses (``(...)`` tensors), lengths in units of ``s``,
    the larger side of the pair's enclosing box: the sizes of the prediction and the target and
    of the enclosing box, ``iou = I / (U + iou_eps)``, the union ``U``, the intersection ``I``,
    ``eps`` in these units (``eps / s^2``, or ``eps`` itself when relative, clamped to
    :data:`EPS_AREA_RANGE`), ``1 / s`` (detached) and the corners in these units (for the
    centres)."""

    w: Tensor
    h: Tensor
    w_gt: Tensor
    h_gt: Tensor
    c_w: Tensor
    c_h: Tensor
    iou: Tensor
    union: Tensor
    inter: Tensor
    eps: Tensor | float
    scale: Tensor
    p: _Corners
    t: _Corners


def _in_units_of_s(p: _Corners, t: _Corners) -> tuple[_Corners, _Corners, Tensor]:
    """Both boxes (:func:`_halves`) relative to the enclosing box's top-left corner, divided by
    ``s``, the enclosing box's larger side rounded up to a power of two (both constants for the
    gradient): coordinates in [0, 1], and multiplied by an exact power of two, so that equal
    differences of coordinates stay equal (the kinks of ``|w - w_gt|`` and the like are where
    the raw coordinates put them). Also ``r = 2 / s`` (detached)."""
    p, t = _halves(p), _halves(t)
    lo_x, lo_y = _pair_min(p.x1, t.x1).detach(), _pair_min(p.y1, t.y1).detach()
    half_s = torch.maximum(_pair_max(p.x2, t.x2) - lo_x, _pair_max(p.y2, t.y2) - lo_y).detach()
    r = torch.exp2(-torch.ceil(torch.log2(half_s.clamp(min=torch.finfo(half_s.dtype).tiny))))
    p, t = (
        _Corners((b.x1 - lo_x) * r, (b.y1 - lo_y) * r, (b.x2 - lo_x) * r, (b.y2 - lo_y) * r)
        for b in (p, t)
    )
    return p, t, r


def _area_eps(eps: float, r: Tensor, relative_eps: bool) -> Tensor | float:
    """``eps`` (an area) in units of ``s = 2 / r``, clamped to :data:`EPS_AREA_RANGE`."""
    low, high = EPS_AREA_RANGE
    return min(max(eps, low), high) if relative_eps else (r * r * (eps * 0.25)).clamp(low, high)


def _pair(
    p: _Corners,
    t: _Corners,
    eps: float,
    relative_eps: bool = False,
    iou_eps: float | None = None,
) -> _Pair:
    """The :class:`_Pair` of corresponding boxes ``p`` (the prediction) and ``t``; ``iou_eps``
    (default ``eps``) is the eps of the IoU's own denominator.

    Every term is a ratio of lengths or areas, so computing on coordinates relative to the
    enclosing box's corner and divided by ``s`` (both constants for the gradient), with ``eps``
    divided by ``s^2``, changes no value and no gradient, while no coordinate, area or squared
    length can overflow or underflow (each coordinate is in [0, 1]). Where the union is 0 (two
    zero-area boxes) ``iou`` is 0 with a zero gradient: to first order no move of one box gives
    them an intersection.
    """
    p, t, r = _in_units_of_s(p, t)
    w, h, w_gt, h_gt = p.x2 - p.x1, p.y2 - p.y1, t.x2 - t.x1, t.y2 - t.y1
    inter_w = (_pair_min(p.x2, t.x2) - _pair_max(p.x1, t.x1)).clamp(min=0)
    inter_h = (_pair_min(p.y2, t.y2) - _pair_max(p.y1, t.y1)).clamp(min=0)
    c_w = _pair_max(p.x2, t.x2) - _pair_min(p.x1, t.x1)
    c_h = _pair_max(p.y2, t.y2) - _pair_min(p.y1, t.y1)
    eps_area = _area_eps(eps, r, relative_eps)
    iou_eps_area = eps_area if iou_eps is None else _area_eps(iou_eps, r, relative_eps)
    inter = inter_w * inter_h
    union = w * h + w_gt * h_gt - inter
    iou = torch.where(union > 0, inter / (union + iou_eps_area), 0.0)
    return _Pair(w, h, w_gt, h_gt, c_w, c_h, iou, union, inter, eps_area, r * 0.5, p, t)


def _length_eps(g: _Pair, eps: float, relative_eps: bool) -> Tensor | float:
    """``eps`` added to a length (SIoU's ``max(w, w_gt) + eps``) in the units of :class:`_Pair`."""
    low, high = (bound**0.5 for bound in EPS_AREA_RANGE)
    return min(max(eps, low), high) if relative_eps else (g.scale * eps).clamp(low, high)


def _centre_offset(g: _Pair) -> tuple[Tensor, Tensor]:
    """``(dx, dy)``: from the prediction's centre to the target's, in units of ``s``."""
    p, t = g.p, g.t
    return ((t.x1 - p.x1) + (t.x2 - p.x2)) * 0.5, ((t.y1 - p.y1) + (t.y2 - p.y2)) * 0.5


def _giou(g: _Pair) -> Tensor:
    """``IoU - (C - U) / (C + eps)``, ``C`` the enclosing box's area (Rezatofighi et al., CVPR
    2019). Where ``C`` is 0 (the pair on one line) the penalty is 0 with a zero gradient: its
    one-sided derivative there is ``side / eps``, GIoU's jump from 0 to 1 within ``eps``."""
    enclose = g.c_w * g.c_h
    penalty = torch.where(enclose > 0, (enclose - g.union) / (enclose + g.eps), 0.0)
    return g.iou - penalty


def _centre_distance(offset: tuple[Tensor, Tensor], g: _Pair) -> Tensor:
    """DIoU's penalty ``rho^2 / (c^2 + eps)``: the squared centre distance over the squared
    diagonal of the enclosing box (Zheng et al., AAAI 2020), in [0, 1]."""
    d_x, d_y = offset
    return (d_x * d_x + d_y * d_y) / (g.c_w * g.c_w + g.c_h * g.c_h + g.eps)


def _diou(g: _Pair) -> Tensor:
    """``IoU - rho^2 / (c^2 + eps)``."""
    return g.iou - _centre_distance(_centre_offset(g), g)


def _ciou_alpha(v: Tensor, iou: Tensor, eps: float, alpha_gate: float | None) -> Tensor:
    """CIoU's trade-off ``alpha = v / ((1 - IoU) + v + eps)``, a constant for the gradient (the
    paper's prescription); without the eps identical boxes give 0/0. With ``alpha_gate`` it is 0
    where ``IoU <= alpha_gate`` (mmdetection's CIoULoss gates at 0.5)."""
    v, iou = v.detach(), iou.detach()
    alpha = v / ((1 - iou) + v + eps)
    if alpha_gate is not None:
        alpha = alpha * (iou > alpha_gate).to(alpha.dtype)
    return alpha


def _aspect_penalty(g: _Pair, eps: float, alpha_gate: float | None) -> Tensor:
    """CIoU's ``alpha * v`` with ``v = 4/pi^2 (atan(w_gt / h_gt) - atan(w / h))^2``.

    ``v`` is computed as ``4/pi^2 atan((w_gt h - w h_gt) / (h_gt h + w_gt w + eps))^2``, by
    ``atan(a) - atan(b) = atan((a - b) / (1 + ab))`` (valid for ``a, b >= 0``): one atan and no
    division by a height, so zero-height boxes have finite gradients (``atan(w / h)`` has NaN
    gradients at h = 0), and a zero-size box, whose aspect ratio is undefined, adds ``v = 0``.
    ``eps`` is the dimensionless one of ``alpha``; the area's is ``g.eps``.
    """
    w, h, w_gt, h_gt = g.w, g.h, g.w_gt, g.h_gt
    angle = torch.atan((w_gt * h - w * h_gt) / (h_gt * h + w_gt * w + g.eps))
    v = _FOUR_OVER_PI_SQUARED * angle * angle
    return _ciou_alpha(v, g.iou, eps, alpha_gate) * v


def _iou_of_kind(
    kind: IoUKind,
    p: _Corners,
    t: _Corners,
    eps: float,
    alpha_gate: float | None = None,
    relative_eps: bool = False,
    iou_eps: float | None = None,
) -> Tensor:
    """IoU, GIoU, DIoU (``IoU - rho^2 / (c^2 + eps)``) or CIoU (``DIoU - alpha v``) of pairs;
    ``relative_eps`` and ``iou_eps`` as :func:`_pair`."""
    g = _pair(p, t, eps, relative_eps, iou_eps)
    if kind == "iou":
        return g.iou
    if kind == "giou":
        return _giou(g)
    if kind == "diou":
        return _diou(g)
    return _diou(g) - _aspect_penalty(g, eps, alpha_gate)


def check_kind(kind: object) -> BoxIoUKind:
    """Return ``kind`` if it is "iou", "iof", "giou", "diou" or "ciou"; raise ``ValueError``
    otherwise."""
    if kind == "iou" or kind == "iof" or kind == "giou" or kind == "diou" or kind == "ciou":
        return kind
    raise ValueError(f"kind must be one of {BOX_IOU_KINDS}, got {kind!r}")


def box_iou(
    boxes1: Tensor,
    boxes2: Tensor,
    kind: str = "iou",
    *,
    aligned: bool = False,
    box_format: str = "xyxy",
    eps: float = EPS,
    iou_eps: float | None = None,
    relative_eps: bool = False,
    check_boxes: bool = False,
) -> Tensor:
    """IoU, IoF, GIoU, DIoU or CIoU between boxes.

    With ``I``, ``U`` the intersection and union areas, ``A1`` the area of the box of ``boxes1``,
    ``C`` / ``(c_w, c_h)`` the smallest enclosing box's area / size, ``rho`` the distance between
    the centres::

        iou  = I / (U + iou_eps)
        iof  = I / (A1 + eps)             intersection over the first box (mmdetection's "iof")
        giou = iou - (C - U) / (C + eps)
        diou = iou - rho^2 / (c_w^2 + c_h^2 + eps)
        ciou = diou - alpha v          (v, alpha: :func:`detloss.ciou_loss`)

    Args:
        boxes1, boxes2: boxes in ``box_format``. ``aligned=False``: shapes ``(..., N, 4)`` and
            ``(..., M, 4)`` with the same batch dimensions (none, or e.g. ``B``), result
            ``(..., N, M)`` with entry ``[..., i, j]`` comparing ``boxes1[..., i]`` and
            ``boxes2[..., j]``. ``aligned=True``: shapes ``(..., 4)`` that broadcast together,
            result of the broadcast shape without the last dimension.
        kind: "iou", "iof", "giou", "diou" or "ciou".
        eps: in [1.2e-38, 1e30], an area added to every denominator (mmdetection's absolute eps:
            with coordinates normalised to [0, 1] it is not small; see :mod:`detloss.iou`).
        iou_eps: in the same range, the eps of the IoU's own denominator instead of ``eps``
            (torchvision's ``distance_box_iou`` and ``complete_box_iou`` divide ``I / U``
            without one and add ``eps`` elsewhere: ``iou_eps=NO_EPS``).
        relative_eps: ``eps`` and ``iou_eps`` relative to each pair's size, as in the IoU losses
            (:mod:`detloss.iou`): the IoU of boxes ``k * b`` is that of ``b`` for every ``k > 0``.
        check_boxes: validate the boxes first (:func:`validate_boxes`; reads values).

    Returns:
        float32 (float64 for float64 input). IoU and IoF are in [0, 1], GIoU in [-1, 1], DIoU in
        (-1, 1], CIoU in (-2, 1]; zero-area boxes have IoU 0 with everything, themselves included.
    """
    k = check_kind(kind)
    eps = check_eps(eps)
    if iou_eps is not None:
        iou_eps = check_eps(iou_eps, "iou_eps")
    b1, b2, fmt = _prepare_boxes(
        boxes1,
        boxes2,
        box_format,
        check_boxes,
        ("boxes1", "boxes2"),
        pairing="broadcast" if aligned else "matrix",
    )
    p, t = _corners(b1, fmt), _corners(b2, fmt)
    if k == "iof":  # 0, with a zero gradient, where the first box has no area (as IoU's union)
        g = _pair(p, t, eps, relative_eps)
        area = g.w * g.h
        return torch.where(area > 0, g.inter / (area + g.eps), 0.0)
    return _iou_of_kind(k, p, t, eps, relative_eps=relative_eps, iou_eps=iou_eps)
