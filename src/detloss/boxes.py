"""Boxes: formats, conversion, opt-in validation and ``box_iou``.

Boxes are ``(..., 4)`` tensors in one of three formats:

* ``"xyxy"`` -- ``(x1, y1, x2, y2)``, corners (torchvision, mmdetection, detectron2); the default;
* ``"xywh"`` -- ``(x1, y1, w, h)``, top-left corner and size (COCO annotations);
* ``"cxcywh"`` -- ``(cx, cy, w, h)``, centre and size (DETR, YOLO).

Internally boxes are checked and cast to the compute dtype by one function,
:func:`_prepare_boxes`, and read in one representation, their corners ``(x1, y1, x2, y2)`` as four
``(...)`` tensors (:class:`detloss._geometry._Corners`, :func:`_corners`), on which the pairwise
geometry of the IoU family is written (:mod:`detloss._geometry`). The compute dtype is float32
(float64 for float64 input; integer boxes give floating results). Half precision is never used for
geometry: float16 areas overflow above 65504, i.e. for boxes larger than about 256 x 256.

Degenerate boxes (documented behaviour, never NaN): a box's width and height are
``max(x2 - x1, 0)`` and ``max(y2 - y1, 0)``, so a zero-size box, a point, and a box with ``x2 < x1``
all have zero area and zero overlap with anything (IoU 0). Their centres are the coordinate
midpoints, and the enclosing box's width and height are clamped at 0 the same way. Validation
of tensor values (``x2 >= x1``, finite coordinates) reads the values, which forces a host-device
synchronisation, so it is opt-in: :func:`validate_boxes`, or ``check_boxes=True`` on the losses.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch
from torch import Tensor

from detloss._geometry import _Corners, _iou_of_kind, _pair
from detloss.checks import check_number, check_tensor, compute_dtype

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
