"""The pairwise geometry of the IoU family, shared by :func:`detloss.box_iou` and every IoU loss.

Boxes are read as their corners (:class:`_Corners`, four ``(...)`` tensors; read from ``(..., 4)``
boxes by :func:`detloss.boxes._corners`). A pair of boxes, the prediction ``p`` and the target
``t``, is computed in its own units (:func:`_pair`): coordinates relative to the enclosing box's
top-left corner, divided by ``s``, its larger side, so no value overflows or underflows for any
finite boxes.

Gradient conventions at kinks (autograd of the formulas below): a maximum or minimum of the two
boxes' coordinates at a tie passes the gradient to its first argument (the prediction), as
``clamp`` does; a size clamped at 0 passes it at exactly 0, so a zero-size box or two touching
boxes still move towards a positive size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from detloss.boxes import IoUKind


def _four_over_pi_squared() -> float:
    """``4 / pi^2``, CIoU's factor of ``v``. Constants that loss code reads are literals (here
    returned by a function): under torch.compile(dynamic=True) a float read from a module global,
    ``math.pi`` included, is a graph input, a tensor made on every call."""
    return 0.4052847345693511


class _Corners(NamedTuple):
    """Boxes as their corners: four ``(...)`` tensors."""

    x1: Tensor
    y1: Tensor
    x2: Tensor
    y2: Tensor


def _eps_area_range() -> tuple[float, float]:
    """The range ``eps`` is clamped to once divided by ``s^2`` (:func:`_pair`): below it a product
    of two such numbers underflows, above it its square overflows (float32). Literals, as in
    :func:`_four_over_pi_squared`."""
    return 1e-18, 1e18


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
    :func:`_eps_area_range`), ``1 / s`` (detached) and the corners in these units (for the
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
    """``eps`` (an area) in units of ``s = 2 / r``, clamped to :func:`_eps_area_range`."""
    low, high = _eps_area_range()
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
    low, high = (bound**0.5 for bound in _eps_area_range())
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
    v = _four_over_pi_squared() * angle * angle
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
