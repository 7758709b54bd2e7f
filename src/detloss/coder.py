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
    _corners,
    _from_corners,
    _prepare_boxes,
    check_box_format,
)

DEFAULT_CLAMP: float = math.log(1000.0 / 16)
"""dw, dh above this would make a box more than 62.5 times its proposal (and exp overflow later)."""


def _four(values: Sequence[float], name: str, *, positive: bool) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or len(values) != 4:
        raise ValueError(f"{name} must be 4 numbers (x, y, w, h), got {values!r}")
    low = 0.0 if positive else -math.inf
    return tuple(check_number(v, name, low=low, strict=True) for v in values)


class DeltaXYWHCoder:
    """Encode boxes as (dx, dy, dw, dh) deltas from proposals, and decode deltas into boxes.

    Args:
        means, stds: the deltas' normalisation, ``(x, y, w, h)``; stds ``> 0``.
        clamp: decoding clamps dw, dh to ``[-clamp, clamp]`` (``clamp_below=False``: to
            ``(-inf, clamp]``) before ``exp``, so no delta makes exp overflow. ``> 0``.
        clamp_below: True as mmdetection, False as torchvision and detectron2.
        min_size: widths and heights are raised to at least ``min_size`` (in box units) before
            they divide or enter ``log``, so a zero-width or zero-height box encodes to finite
            deltas (``log(min_size / wa)``, e.g. -18.4 for wa = 100) where every framework gives
            ``-inf``. Boxes at least ``min_size`` wide are unaffected. ``> 0``.
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
        self.means = _four(means, "means", positive=False)
        self.stds = _four(stds, "stds", positive=True)
        self.clamp = check_number(clamp, "clamp", low=0.0, strict=True)
        self.clamp_below = bool(clamp_below)
        self.min_size = check_number(min_size, "min_size", low=0.0, strict=True)
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
        the clamp only from above.
        """
        w = _four(weights, "weights", positive=True)
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

    def _centre_size(self, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Centre and size of ``(..., 4)`` boxes, each ``(..., 2)``; sizes at least ``min_size``."""
        x1, y1, x2, y2 = _corners(boxes, self.box_format)
        lo, hi = torch.stack((x1, y1), dim=-1), torch.stack((x2, y2), dim=-1)
        return (lo + hi) * 0.5, (hi - lo).clamp(min=self.min_size)

    def encode(self, proposals: Tensor, gt: Tensor) -> Tensor:
        """Deltas ``(..., 4)`` that turn ``proposals`` into ``gt`` (both ``(..., 4)``, same shape).

        float32 result (float64 for float64 input).
        """
        p, g, _ = _prepare_boxes(proposals, gt, self.box_format, False, ("proposals", "gt"))
        p_xy, p_wh = self._centre_size(p)
        g_xy, g_wh = self._centre_size(g)
        deltas = torch.cat(((g_xy - p_xy) / p_wh, torch.log(g_wh / p_wh)), dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(
        self,
        proposals: Tensor,
        deltas: Tensor,
        max_shape: Sequence[int] | None = None,
    ) -> Tensor:
        """Boxes ``(..., 4)`` from ``proposals`` moved by ``deltas`` (shapes broadcast together).

        ``max_shape=(height, width)`` (further entries, e.g. channels, are ignored) clips the
        boxes to the image: x to ``[0, width]``, y to ``[0, height]``.
        """
        p_t = _check_boxes_tensor(proposals, "proposals")
        d_t = _check_boxes_tensor(deltas, "deltas")
        try:
            torch.broadcast_shapes(p_t.shape, d_t.shape)  # type: ignore[no-untyped-call]
        except RuntimeError:
            raise ValueError(
                f"proposals {tuple(p_t.shape)} and deltas {tuple(d_t.shape)} do not broadcast"
            ) from None
        dtype = compute_dtype(p_t, d_t)
        p_xy, p_wh = self._centre_size(p_t.to(dtype))
        d = d_t.to(dtype) * d_t.new_tensor(self.stds, dtype=dtype) + d_t.new_tensor(
            self.means, dtype=dtype
        )
        low = -self.clamp if self.clamp_below else None
        centre = p_xy + d[..., :2] * p_wh
        half = p_wh * torch.exp(d[..., 2:].clamp(min=low, max=self.clamp)) * 0.5
        lo, hi = centre - half, centre + half
        if max_shape is not None:
            if len(max_shape) < 2:
                raise ValueError(f"max_shape must be (height, width, ...), got {max_shape!r}")
            bound = lo.new_tensor((float(max_shape[1]), float(max_shape[0])))
            lo, hi = torch.minimum(lo.clamp(min=0), bound), torch.minimum(hi.clamp(min=0), bound)
        return _from_corners(_Corners(*lo.unbind(-1), *hi.unbind(-1)), self.box_format)
