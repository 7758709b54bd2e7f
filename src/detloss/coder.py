"""The delta box coder of Faster R-CNN (Ren et al., NeurIPS 2015): boxes <-> regression targets.

With a proposal (anchor) of centre ``(xa, ya)`` and size ``(wa, ha)`` and a box of centre
``(x, y)`` and size ``(w, h)``::

    t = ((x - xa) / wa, (y - ya) / ha, log(w / wa), log(h / ha))
    encode: (t - means) / stds          decode: t = deltas * stds + means, then invert t

Conventions: mmdetection's ``DeltaXYWHBBoxCoder(target_means, target_stds)`` is
``DeltaXYWHCoder(means, stds)`` (it clamps dw, dh to ``+-log(1000/16)`` on decode, as here by
default). torchvision's ``BoxCoder(weights=(10, 10, 5, 5))`` and detectron2's
``Box2BoxTransform(weights)`` are ``DeltaXYWHCoder.from_weights(weights)``: ``stds = 1 / weights``
and the clamp only from above (``clamp_below=False``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from detloss._checks import check_number, compute_dtype
from detloss.boxes import (
    _check_boxes_tensor,
    _Corners,
    _from_corners,
    _prepare_boxes,
    check_box_format,
)

DEFAULT_CLAMP: float = math.log(1000.0 / 16)
"""dw, dh above this would make a box more than 62.5 times its proposal (and exp overflow later)."""
SCALE_RANGE: tuple[float, float] = (1e-30, 1e30)
"""The range of ``stds``, torchvision's ``weights`` and ``min_size``: float32 represents them."""


def _four(values: Sequence[float], name: str, *, scale: bool) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4:
        raise ValueError(f"{name} must be 4 numbers (x, y, w, h), got {values!r}")
    if scale:
        low, high = SCALE_RANGE
        return tuple(check_number(v, name, low=low, strict=False, high=high) for v in values)
    return tuple(check_number(v, name, low=-math.inf, strict=True) for v in values)


def _check_max_shape(max_shape: object) -> tuple[float, float]:
    """``(height, width)`` from ``(height, width, ...)`` Python numbers (a tensor would have to be
    read on the host)."""
    if isinstance(max_shape, (str, bytes, Tensor)) or not isinstance(max_shape, Sequence):
        raise TypeError(
            "max_shape must be a sequence of numbers (height, width, ...), got "
            f"{type(max_shape).__name__} {max_shape!r}"
        )
    if len(max_shape) < 2:
        raise ValueError(f"max_shape must be (height, width, ...), got {max_shape!r}")
    height, width = (check_number(v, "max_shape", low=0.0, strict=False) for v in max_shape[:2])
    return height, width


class DeltaXYWHCoder:
    """Encode boxes as (dx, dy, dw, dh) deltas from proposals, and decode deltas into boxes.

    Args:
        means, stds: the deltas' normalisation, ``(x, y, w, h)``; means finite, stds in
            [1e-30, 1e30].
        clamp: decoding clamps dw, dh to ``[-clamp, clamp]`` (``clamp_below=False``: to
            ``(-inf, clamp]``) before ``exp``, so no delta makes exp overflow. ``> 0``, and at
            most ``log`` of the largest number of the dtype decoded in (88.7 for float32).
        clamp_below: True as mmdetection, False as torchvision and detectron2.
        min_size: widths and heights are raised to at least ``min_size`` (in box units) before
            they divide or enter ``log``, so a zero-width or zero-height box encodes to finite
            deltas (``log(min_size / wa)``, e.g. -18.4 for wa = 100) where every framework gives
            ``-inf``. Boxes at least ``min_size`` wide are unaffected. In [1e-30, 1e30]. The
            deltas of a proposal narrower than ``min_size`` along an axis (a degenerate proposal:
            its deltas are about ``offset / min_size``) are constants for the gradient on that
            axis, whose slope ``1 / min_size`` is of no use to a gradient step.
        box_format: the format of proposals, targets and decoded boxes.
    """

    def __init__(
        self,
        means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        clamp: float = DEFAULT_CLAMP,
        *,
        clamp_below: bool = True,
        min_size: float = 1e-6,
        box_format: str = "xyxy",
    ) -> None:
        self.means = _four(means, "means", scale=False)
        self.stds = _four(stds, "stds", scale=True)
        self.clamp = check_number(
            clamp, "clamp", low=0.0, strict=True, high=math.log(torch.finfo(torch.float64).max)
        )
        self.clamp_below = bool(clamp_below)
        low, high = SCALE_RANGE
        self.min_size = check_number(min_size, "min_size", low=low, strict=False, high=high)
        self.box_format = check_box_format(box_format)

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        clamp: float = DEFAULT_CLAMP,
        *,
        clamp_below: bool = False,
        min_size: float = 1e-6,
        box_format: str = "xyxy",
    ) -> DeltaXYWHCoder:
        """torchvision's ``BoxCoder(weights, bbox_xform_clip=clamp)`` / detectron2's
        ``Box2BoxTransform(weights, scale_clamp=clamp)``: ``stds = 1 / weights``, ``means = 0``,
        the clamp only from above; weights in [1e-30, 1e30].
        """
        w = _four(weights, "weights", scale=True)
        stds = tuple(1.0 / x for x in w)
        return cls(
            (0.0,) * 4,
            stds,
            clamp,
            clamp_below=clamp_below,
            min_size=min_size,
            box_format=box_format,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(means={self.means}, stds={self.stds}, clamp={self.clamp}, "
            f"clamp_below={self.clamp_below}, min_size={self.min_size}, "
            f"box_format={self.box_format!r})"
        )

    def _centre_half_size(self, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Centres and half sizes of ``(..., 4)`` boxes, each ``(..., 2)``, half sizes at least
        ``min_size / 2``; in the format's own terms (so that a coordinate reaches the size only
        if the size depends on it) and from halves, so that nothing overflows before the result."""
        first, second = boxes[..., :2], boxes[..., 2:]
        if self.box_format == "xyxy":
            lo, hi = first * 0.5, second * 0.5
            return lo + hi, (hi - lo).clamp(min=self.min_size * 0.5)
        half = (second * 0.5).clamp(min=self.min_size * 0.5)
        return (first if self.box_format == "cxcywh" else first + second * 0.5), half

    def encode(self, proposals: Tensor, gt: Tensor) -> Tensor:
        """Deltas ``(..., 4)`` that turn ``proposals`` into ``gt`` (both ``(..., 4)``, same shape).

        float32 result (float64 for float64 input).
        """
        p, g, _ = _prepare_boxes(proposals, gt, self.box_format, False, ("proposals", "gt"))
        p_xy, p_half = self._centre_half_size(p)
        g_xy, g_half = self._centre_half_size(g)
        # times the reciprocal: the backward of a division forms (offset / p_half) / p_half,
        # which overflows for a degenerate proposal even where no gradient flows
        offset = (g_xy * 0.5 - p_xy * 0.5) * p_half.reciprocal()
        deltas = torch.cat((offset, torch.log(g_half) - torch.log(p_half)), dim=-1)
        degenerate = p_half <= self.min_size * 0.5
        deltas = torch.where(torch.cat((degenerate, degenerate), -1), deltas.detach(), deltas)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(
        self,
        proposals: Tensor,
        deltas: Tensor,
        max_shape: Sequence[int] | None = None,
    ) -> Tensor:
        """Boxes ``(..., 4)`` from ``proposals`` moved by ``deltas`` (shapes broadcast together).

        ``max_shape=(height, width)`` (further entries, e.g. channels, are ignored; Python
        numbers) clips the boxes to the image: x to ``[0, width]``, y to ``[0, height]``.
        """
        p_t = _check_boxes_tensor(proposals, "proposals")
        d_t = _check_boxes_tensor(deltas, "deltas")
        try:
            torch.broadcast_shapes(p_t.shape, d_t.shape)  # type: ignore[no-untyped-call]
        except RuntimeError:
            raise ValueError(
                f"proposals {tuple(p_t.shape)} and deltas {tuple(d_t.shape)} do not broadcast"
            ) from None
        bound = None if max_shape is None else _check_max_shape(max_shape)
        dtype = compute_dtype(p_t, d_t)
        if self.clamp > math.log(torch.finfo(dtype).max):
            raise ValueError(
                f"clamp={self.clamp:g} is above log of {dtype}'s largest number, "
                f"{math.log(torch.finfo(dtype).max):.4g}: exp(clamp) overflows; use a smaller "
                "clamp or float64 boxes"
            )
        p_xy, p_half = self._centre_half_size(p_t.to(dtype))
        d = d_t.to(dtype) * d_t.new_tensor(self.stds, dtype=dtype) + d_t.new_tensor(
            self.means, dtype=dtype
        )
        low = -self.clamp if self.clamp_below else None
        centre = p_xy + d[..., :2] * p_half * 2
        half = p_half * torch.exp(d[..., 2:].clamp(min=low, max=self.clamp))
        lo, hi = centre - half, centre + half
        if bound is not None:
            height, width = bound
            limit = lo.new_tensor((width, height))
            lo, hi = torch.minimum(lo.clamp(min=0), limit), torch.minimum(hi.clamp(min=0), limit)
            return _from_corners(_Corners(*lo.unbind(-1), *hi.unbind(-1)), self.box_format)
        # in the format's own terms: a size is not the difference of two overflowed corners
        if self.box_format == "xyxy":
            return torch.cat((lo, hi), dim=-1)
        return torch.cat((lo if self.box_format == "xywh" else centre, half * 2), dim=-1)
