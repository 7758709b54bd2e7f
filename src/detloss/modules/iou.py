"""Modules of the IoU-family losses (mmdetection's names, arguments and meanings).

Each takes mmdetection's ``eps``, ``reduction`` and ``loss_weight`` in mmdetection's positional
order, the type's own mmdetection arguments, and detloss's keyword-only ``relative_eps``,
``box_format`` and ``check_boxes`` (the functional losses' arguments), checked when the module is
built. Where a registered name's mmdetection default differs from the paper, the module
follows mmdetection and the paper's version is an explicit argument: ``CIoULoss`` gates alpha v at
IoU > 0.5 (``alpha_gate=None`` for the paper), ``SIoULoss`` has ``neg_gamma=False`` and the clamp.
``EIoULoss`` is mmdetection's Extended IoU; the Efficient IoU loss is ``EfficientIoULoss``.

mmdetection returns ``(pred * weight).sum()`` when no weight is positive (a host-side test); here
such a weight gives the same 0 through the reduction (zeros of the loss's shape for "none").
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from detloss.boxes import EPS, check_box_format, check_eps
from detloss.checks import LARGEST, check_number
from detloss.extended_iou import extended_iou_loss
from detloss.iou import (
    check_alpha_gate,
    check_mode,
    ciou_loss,
    diou_loss,
    efficient_iou_loss,
    giou_loss,
    iou_loss,
    siou_loss,
)
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss

__all__ = [
    "CIoULoss",
    "DIoULoss",
    "EIoULoss",
    "EfficientIoULoss",
    "GIoULoss",
    "IoULoss",
    "SIoULoss",
]

MMDET_CIOU_GATE = 0.5
"""mmdetection's ``CIoULoss`` applies alpha v only where IoU > 0.5."""


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


class BoxLoss(WeightedLoss):
    """The shared constructor of the IoU-family modules: ``eps`` (in [1.2e-38, 1e30]),
    ``relative_eps``, ``box_format``, ``check_boxes``."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        *,
        relative_eps: bool = False,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        self._init_box(eps, reduction, loss_weight, relative_eps, box_format, check_boxes)

    def _init_box(
        self,
        eps: float,
        reduction: str,
        loss_weight: float,
        relative_eps: bool,
        box_format: str,
        check_boxes: bool,
    ) -> None:
        """The constructor's work, for the subclasses' constructors (each with its signature)."""
        super().__init__(reduction, loss_weight)
        self.eps = check_eps(eps)
        self.relative_eps = _check_bool(relative_eps, "relative_eps")
        self.box_format: str = check_box_format(box_format)
        self.check_boxes = bool(check_boxes)

    def box_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        """The functional loss's keyword arguments: this module's box options and ``kwargs``."""
        return {
            "relative_eps": self.relative_eps,
            "box_format": self.box_format,
            "check_boxes": self.check_boxes,
            **kwargs,
        }

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps}, relative_eps={self.relative_eps}, box_format={self.box_format!r}, "
            f"check_boxes={self.check_boxes}, {super().extra_repr()}"
        )


@register_loss()
class IoULoss(BoxLoss):
    """:func:`detloss.iou_loss` with mmdetection's arguments and meanings: ``mode`` "log"
    (default), "linear" or "square"; ``linear=True`` is mmdetection's deprecated alias of
    ``mode="linear"``; ``eps`` clamps the IoU from below (``min_iou``), while the IoU's own
    denominator keeps 1e-6, as mmdetection's ``bbox_overlaps``."""

    def __init__(
        self,
        linear: bool = False,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        mode: str = "log",
        *,
        relative_eps: bool = False,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        self._init_box(eps, reduction, loss_weight, relative_eps, box_format, check_boxes)
        self.mode: str = check_mode(mode)
        if _check_bool(linear, "linear"):
            if self.mode not in ("log", "linear"):
                raise ValueError(
                    f'IoULoss(linear=True) means mode="linear"; it contradicts mode={mode!r}'
                )
            warnings.warn(
                'IoULoss(linear=True) is deprecated (as in mmdetection); use mode="linear"',
                DeprecationWarning,
                stacklevel=2,
            )
            self.mode = "linear"

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return iou_loss(pred, target, self.mode, EPS, min_iou=self.eps, **self.box_kwargs(**kwargs))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, {super().extra_repr()}"


@register_loss()
class GIoULoss(BoxLoss):
    """:func:`detloss.giou_loss` as a module."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return giou_loss(pred, target, self.eps, **self.box_kwargs(**kwargs))


@register_loss()
class DIoULoss(BoxLoss):
    """:func:`detloss.diou_loss` as a module."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return diou_loss(pred, target, self.eps, **self.box_kwargs(**kwargs))


@register_loss()
class CIoULoss(BoxLoss):
    """:func:`detloss.ciou_loss` with mmdetection's meaning: alpha v only where IoU > 0.5
    (``alpha_gate=0.5``, the default); ``alpha_gate=None`` is the paper's CIoU."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        *,
        alpha_gate: float | None = MMDET_CIOU_GATE,
        relative_eps: bool = False,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        self._init_box(eps, reduction, loss_weight, relative_eps, box_format, check_boxes)
        self.alpha_gate = check_alpha_gate(alpha_gate)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return ciou_loss(
            pred, target, self.eps, alpha_gate=self.alpha_gate, **self.box_kwargs(**kwargs)
        )

    def extra_repr(self) -> str:
        return f"alpha_gate={self.alpha_gate}, {super().extra_repr()}"


@register_loss()
class EIoULoss(BoxLoss):
    """:func:`detloss.extended_iou_loss` (Extended IoU, Peng & Yu 2021) with mmdetection's
    arguments (``smooth_point=0.1``)."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        smooth_point: float = 0.1,
        *,
        relative_eps: bool = False,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        self._init_box(eps, reduction, loss_weight, relative_eps, box_format, check_boxes)
        self.smooth_point = check_number(smooth_point, "smooth_point", low=0.0, strict=False)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return extended_iou_loss(
            pred, target, self.smooth_point, self.eps, **self.box_kwargs(**kwargs)
        )

    def extra_repr(self) -> str:
        return f"smooth_point={self.smooth_point}, {super().extra_repr()}"


@register_loss()
class EfficientIoULoss(BoxLoss):
    """:func:`detloss.efficient_iou_loss` (Efficient IoU, Zhang et al. 2022) as a module; not in
    mmdetection (whose ``EIoULoss`` is Extended IoU)."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return efficient_iou_loss(pred, target, self.eps, **self.box_kwargs(**kwargs))


@register_loss()
class SIoULoss(BoxLoss):
    """:func:`detloss.siou_loss` with mmdetection's arguments and meaning: ``neg_gamma=False``
    (its default: ``gamma = 2 - Lambda``) or True (the paper's distance cost), and the SIoU
    clamped to ``[-1, 1]`` (``clamp=True``), so boxes far apart get 0 with ``neg_gamma=False``.
    ``neg_gamma=True, clamp=False`` is the paper. ``theta`` is the shape cost's exponent, in
    [1, 1e30] (mmdetection: 4)."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        neg_gamma: bool = False,
        *,
        theta: float = 4.0,
        clamp: bool = True,
        relative_eps: bool = False,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        self._init_box(eps, reduction, loss_weight, relative_eps, box_format, check_boxes)
        self.neg_gamma = _check_bool(neg_gamma, "neg_gamma")
        self.clamp = _check_bool(clamp, "clamp")
        self.theta = check_number(theta, "theta", low=1.0, strict=False, high=LARGEST)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return siou_loss(
            pred,
            target,
            self.eps,
            self.theta,
            neg_gamma=self.neg_gamma,
            clamp=self.clamp,
            **self.box_kwargs(**kwargs),
        )

    def extra_repr(self) -> str:
        return (
            f"neg_gamma={self.neg_gamma}, clamp={self.clamp}, theta={self.theta}, "
            f"{super().extra_repr()}"
        )
