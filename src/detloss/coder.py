"""The delta box coder of Faster R-CNN (Ren et al., NeurIPS 2015): boxes <-> regression targets.

With a proposal (anchor) of centre ``(xa, ya)`` and size ``(wa, ha)`` and a box of centre
``(x, y)`` and size ``(w, h)``::

    t = ((x - xa) / wa, (y - ya) / ha, log(w / wa), log(h / ha))
    encode: (t - means) / stds          decode: t = deltas * stds + means, then invert t

Conventions: mmdetection's ``DeltaXYWHBBoxCoder(target_means, target_stds, clip_border,
add_ctr_clamp, ctr_clamp)`` is ``DeltaXYWHCoder(means, stds, clip_border=..., add_ctr_clamp=...,
ctr_clamp=...)`` (it clamps dw, dh to ``+-log(1000/16)`` on decode, as here by default; with
``add_ctr_clamp`` only from above). torchvision's ``BoxCoder(weights=(10, 10, 5, 5))`` and
detectron2's ``Box2BoxTransform(weights)`` are ``DeltaXYWHCoder.from_weights(weights)``:
``stds = 1 / weights`` and the clamp only from above (``clamp_below=False``).

The means and stds are applied as Python numbers, one per column, so no call copies a tensor of them
from the host to the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch import Tensor

from detloss._geometry import _Corners
from detloss.boxes import _check_boxes_tensor, _from_corners, _prepare_boxes, check_box_format
from detloss.checks import LARGEST, check_number, compute_dtype

DEFAULT_CLAMP: float = math.log(1000.0 / 16)
"""dw, dh above this would make a box more than 62.5 times its proposal (and exp overflow later)."""
SCALE_RANGE: tuple[float, float] = (1e-30, 1e30)
"""The range of ``stds``, torchvision's ``weights`` and ``min_size``: float32 represents them."""


def _four(values: Sequence[float], name: str, *, scale: bool) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4:
        raise ValueError(f"{name} must be 4 numbers (x, y, w, h), got {values!r}")
    low, high = SCALE_RANGE if scale else (-LARGEST, LARGEST)
    return tuple(check_number(v, name, low=low, strict=False, high=high) for v in values)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _height_width(value: object, name: str) -> tuple[float, float] | None:
    """``(height, width)`` of a sequence of at least two numbers (further entries ignored), else
    None."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) >= 2:
        height, width = value[0], value[1]
        if _is_number(height) and _is_number(width):
            return (
                check_number(height, name, low=0.0, strict=False),
                check_number(width, name, low=0.0, strict=False),
            )
    return None


def _constant_where(flat: Tensor, value: Tensor) -> Tensor:
    """``value``, a constant for the gradient where ``flat`` (a degenerate proposal's axis)."""
    return torch.where(flat, value.detach(), value)


def _offset(shift: Tensor, half: Tensor, flat: Tensor, mean: float, std: float) -> Tensor:
    """The normalised delta ``(shift / half - mean) / std`` (half a centre offset over half a
    proposal's size), ``shift / half`` a constant where ``flat``.

    Divided so that nothing overflows before the result: by ``std >= 1`` first (then
    ``shift / std / half`` and ``mean / std`` are beyond the range only where the delta is),
    by ``std < 1`` last (``shift / half`` beyond the range makes the delta so too). The backward
    of a division forms ``(shift / half) / half``: over a safe denominator there, it overflows
    only with the gradient itself (a product with the reciprocal would form ``gradient * shift``
    first, which overflows for huge proposals)."""
    if std >= 1:
        shift = shift / std
    safe = torch.where(flat, 1.0, half)
    ratio = torch.where(flat, (shift / half).detach(), shift / safe)
    return ratio - mean / std if std >= 1 else (ratio - mean) / std


MaxShape: TypeAlias = Sequence[float] | Sequence[Sequence[float]] | Tensor


def _image_bounds(max_shape: object, like: Tensor) -> tuple[float, float] | tuple[Tensor, Tensor]:
    """``(height, width)`` of ``max_shape`` as numbers, or as tensors of shape ``(..., 1)``
    (per image) in ``like``'s dtype and on its device, for boxes ``(..., N)`` in ``like``."""
    pair = _height_width(max_shape, "max_shape")
    if pair is not None:
        return pair
    bounds: Tensor | None = None
    if isinstance(max_shape, Tensor):
        if max_shape.dtype == torch.bool or max_shape.dtype.is_complex:
            raise TypeError(f"max_shape must be a real tensor, got dtype {max_shape.dtype}")
        bounds = max_shape
    elif isinstance(max_shape, Sequence) and not isinstance(max_shape, (str, bytes)):
        per_image = [_height_width(shape, "max_shape") for shape in max_shape]
        if per_image and all(shape is not None for shape in per_image):
            # A list given by the caller: one host-to-device copy (pass a tensor to avoid it).
            bounds = torch.tensor(per_image, dtype=like.dtype)
    if bounds is None:
        raise TypeError(
            "max_shape must be (height, width, ...) numbers, a sequence of them (one per image), "
            f"or a tensor (..., 2+), got {max_shape!r}"
        )
    batch = like.shape[:-1]
    if bounds.dim() == 0 or bounds.shape[-1] < 2 or bounds.shape[:-1] not in ((), batch):
        raise ValueError(
            f"max_shape of shape {tuple(bounds.shape)} does not fit decoded boxes of shape "
            f"{(*like.shape, 4)}: give (2+,) for all boxes or {(*batch, 2)} (one per image)"
        )
    bounds = bounds.to(device=like.device, dtype=like.dtype)
    return bounds[..., 0:1], bounds[..., 1:2]


class DeltaXYWHCoder:
    """Encode boxes as (dx, dy, dw, dh) deltas from proposals, and decode deltas into boxes.

    Args:
        means, stds: the deltas' normalisation, ``(x, y, w, h)``; means in [-1e30, 1e30], stds
            in [1e-30, 1e30].
        clamp: decoding clamps dw, dh to ``[-clamp, clamp]`` (``clamp_below=False``: to
            ``(-inf, clamp]``) before ``exp``, so no delta makes exp overflow. ``> 0``, and at
            most ``log`` of the largest number of the dtype decoded in (88.7 for float32).
        clamp_below: True as mmdetection, False as torchvision and detectron2; default
            ``not add_ctr_clamp`` (mmdetection's).
        clip_border: clip decoded boxes to ``max_shape`` when it is given (mmdetection's
            ``clip_border``).
        add_ctr_clamp, ctr_clamp: mmdetection's centre clamp (YOLOF): decoding limits the shift
            of the centre to ``ctr_clamp`` box units in x and in y (``ctr_clamp > 0``, default 32),
            and, unless ``clamp_below`` says otherwise, clamps dw, dh only from above.
        min_size: widths and heights are raised to at least ``min_size`` (in box units) before
            they divide or enter ``log``, so a zero-width or zero-height box encodes to finite
            deltas (``log(min_size / wa)``, e.g. -18.4 for wa = 100) where every framework gives
            ``-inf``. Boxes at least ``min_size`` wide are unaffected. In [1e-30, 1e30]. The
            deltas of a proposal at most ``min_size`` wide along an axis (a degenerate proposal:
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
        clamp_below: bool | None = None,
        clip_border: bool = True,
        add_ctr_clamp: bool = False,
        ctr_clamp: float = 32.0,
        min_size: float = 1e-6,
        box_format: str = "xyxy",
    ) -> None:
        self.means = _four(means, "means", scale=False)
        self.stds = _four(stds, "stds", scale=True)
        self.clamp = check_number(
            clamp, "clamp", low=0.0, strict=True, high=math.log(torch.finfo(torch.float64).max)
        )
        self.add_ctr_clamp = bool(add_ctr_clamp)
        self.ctr_clamp = check_number(ctr_clamp, "ctr_clamp", low=0.0, strict=True)
        self.clamp_below = not self.add_ctr_clamp if clamp_below is None else bool(clamp_below)
        self.clip_border = bool(clip_border)
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
        centre = f"ctr_clamp={self.ctr_clamp}, " if self.add_ctr_clamp else ""
        return (
            f"{type(self).__name__}(means={self.means}, stds={self.stds}, clamp={self.clamp}, "
            f"clamp_below={self.clamp_below}, clip_border={self.clip_border}, "
            f"add_ctr_clamp={self.add_ctr_clamp}, {centre}min_size={self.min_size}, "
            f"box_format={self.box_format!r})"
        )

    def _centre_half_size(self, boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Centre ``(x, y)`` and half size ``(w / 2, h / 2)`` of ``(..., 4)`` boxes, each
        ``(...)``, half sizes at least ``min_size / 2``; in the format's own terms (a coordinate
        reaches a size only if the size depends on it) and from halves, so that nothing overflows
        before the result."""
        a, b, c, d = boxes.unbind(-1)
        floor = self.min_size * 0.5
        if self.box_format == "xyxy":
            x1, y1, x2, y2 = a * 0.5, b * 0.5, c * 0.5, d * 0.5
            return x1 + x2, y1 + y2, (x2 - x1).clamp(min=floor), (y2 - y1).clamp(min=floor)
        half_w, half_h = (c * 0.5).clamp(min=floor), (d * 0.5).clamp(min=floor)
        if self.box_format == "cxcywh":
            return a, b, half_w, half_h
        return a + c * 0.5, b + d * 0.5, half_w, half_h

    def encode(self, proposals: Tensor, gt: Tensor) -> Tensor:
        """Deltas ``(..., 4)`` that turn ``proposals`` into ``gt`` (both ``(..., 4)``, same shape).

        float32 result (float64 for float64 input).
        """
        p, g, _ = _prepare_boxes(proposals, gt, self.box_format, False, ("proposals", "gt"))
        px, py, pw, ph = self._centre_half_size(p)
        gx, gy, gw, gh = self._centre_half_size(g)
        floor = self.min_size * 0.5
        flat_x, flat_y = pw <= floor, ph <= floor
        (mx, my, mw, mh), (sx, sy, sw, sh) = self.means, self.stds
        deltas = (
            _offset(gx * 0.5 - px * 0.5, pw, flat_x, mx, sx),
            _offset(gy * 0.5 - py * 0.5, ph, flat_y, my, sy),
            (_constant_where(flat_x, torch.log(gw) - torch.log(pw)) - mw) / sw,
            (_constant_where(flat_y, torch.log(gh) - torch.log(ph)) - mh) / sh,
        )
        return torch.stack(deltas, dim=-1)

    def decode(
        self,
        proposals: Tensor,
        deltas: Tensor,
        max_shape: MaxShape | None = None,
    ) -> Tensor:
        """Boxes ``(..., 4)`` from ``proposals`` moved by ``deltas`` (shapes broadcast together).

        ``max_shape`` clips the boxes to the image (with ``clip_border``): x to ``[0, width]``,
        y to ``[0, height]``. It is ``(height, width)`` for every box (further entries, e.g.
        channels, are ignored), or one per image for batched boxes ``(B, N, 4)``: a sequence of
        ``B`` such pairs or a tensor ``(B, 2+)`` (mmdetection's batched decode). A tensor on the
        boxes' device costs no host-device copy.
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
        if self.clamp > math.log(torch.finfo(dtype).max):
            raise ValueError(
                f"clamp={self.clamp:g} is above log of {dtype}'s largest number, "
                f"{math.log(torch.finfo(dtype).max):.4g}: exp(clamp) overflows; use a smaller "
                "clamp or float64 boxes"
            )
        px, py, half_w, half_h = self._centre_half_size(p_t.to(dtype))
        dx, dy, dw, dh = d_t.to(dtype).unbind(-1)
        (mx, my, mw, mh), (sx, sy, sw, sh) = self.means, self.stds
        low = -self.clamp if self.clamp_below else None
        grow_w = torch.exp((dw * sw + mw).clamp(min=low, max=self.clamp))
        grow_h = torch.exp((dh * sh + mh).clamp(min=low, max=self.clamp))
        cx, x1, x2 = self._axis(px, half_w, dx, mx, sx, grow_w)
        cy, y1, y2 = self._axis(py, half_h, dy, my, sy, grow_h)
        box = _Corners(x1, y1, x2, y2)
        if max_shape is not None and self.clip_border:
            height, width = _image_bounds(max_shape, box.x1)
            x1, y1, x2, y2 = (c.clamp(min=0) for c in box)
            box = _Corners(
                x1.clamp(max=width), y1.clamp(max=height), x2.clamp(max=width), y2.clamp(max=height)
            )
            return _from_corners(box, self.box_format)
        # in the format's own terms: a size is not the difference of two overflowed corners
        if self.box_format == "xyxy":
            return torch.stack(box, dim=-1)
        first = (box.x1, box.y1) if self.box_format == "xywh" else (cx, cy)
        return torch.stack((*first, half_w * grow_w * 2, half_h * grow_h * 2), dim=-1)

    def _axis(
        self, centre: Tensor, half: Tensor, delta: Tensor, mean: float, std: float, grow: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The decoded centre and corners along one axis, for a proposal of ``centre`` and half
        size ``half``: ``centre + size (delta * std + mean) (-+ half grow)``, ``size = 2 half``.

        The shift is grouped as ``half * mean + delta * (half * std)``, so that a huge delta meets
        the small ``half * std``. Where the terms could exceed an eighth of the largest number,
        two of them could overflow with opposite signs (inf - inf) where their sum, or the
        corner clipped to an image, is finite: there ``half`` is written as ``r * unit``
        (``unit`` a power of two, ``r`` in [1, 2)), the terms are summed in units of ``unit``
        and the sum scaled back, which overflows only where the result does. No value is NaN.
        """
        top = torch.finfo(half.dtype).max / 8
        big = half * (grow * 0.5).clamp(min=max(abs(mean), std)) > top
        power = torch.exp2(torch.floor(torch.log2(half.clamp(min=1))))
        unit = torch.where(big, power, 1.0).detach()
        r = half / unit
        shift = delta * (r * std) if mean == 0 else torch.addcmul(r * mean, delta, r * std)
        if self.add_ctr_clamp:  # a bounded shift: corners from the centre
            moved = centre + (shift * unit * 2).clamp(-self.ctr_clamp, self.ctr_clamp)
            extent = half * grow
            return moved, moved - extent, moved + extent
        extent = r * (grow * 0.5)
        return (
            centre + shift * unit * 2,
            centre + (shift - extent) * unit * 2,
            centre + (shift + extent) * unit * 2,
        )
