"""Modules of the IoU-family losses in :mod:`detloss.iou` (mmdetection's names and arguments).

Each takes mmdetection's ``eps``, ``reduction`` and ``loss_weight`` (plus ``mode`` for
``IoULoss``), and detloss's keyword-only ``box_format`` and ``check_boxes``. Note that
``EIoULoss`` is Efficient IoU (Zhang et al. 2022), not mmdetection's ``EIoULoss`` (Extended IoU,
which takes ``smooth_point``; passing it here raises ``TypeError``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from detloss._checks import check_number
from detloss.boxes import EPS, check_box_format
from detloss.iou import (
    check_alpha_gate,
    check_mode,
    ciou_loss,
    diou_loss,
    eiou_loss,
    giou_loss,
    iou_loss,
    siou_loss,
)
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss


class BoxLoss(WeightedLoss):
    """The shared constructor of the IoU-family modules: ``eps``, ``box_format``, ``check_boxes``."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        *,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.eps = check_number(eps, "eps", low=0.0, strict=True)
        self.box_format: str = check_box_format(box_format)
        self.check_boxes = bool(check_boxes)

    def box_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        """The functional loss's keyword arguments: this module's box options and ``kwargs``."""
        return {"box_format": self.box_format, "check_boxes": self.check_boxes, **kwargs}

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps}, box_format={self.box_format!r}, check_boxes={self.check_boxes}, "
            f"{super().extra_repr()}"
        )


@register_loss()
class IoULoss(BoxLoss):
    """:func:`detloss.iou_loss` as a module; ``mode`` "log" (default), "linear" or "square"."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        mode: str = "log",
        *,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        super().__init__(
            eps, reduction, loss_weight, box_format=box_format, check_boxes=check_boxes
        )
        self.mode: str = check_mode(mode)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return iou_loss(pred, target, self.mode, self.eps, **self.box_kwargs(**kwargs))

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
    """:func:`detloss.ciou_loss` as a module; ``alpha_gate=0.5`` gives mmdetection's numbers."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        *,
        alpha_gate: float | None = None,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        super().__init__(
            eps, reduction, loss_weight, box_format=box_format, check_boxes=check_boxes
        )
        self.alpha_gate = check_alpha_gate(alpha_gate)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return ciou_loss(
            pred, target, self.eps, alpha_gate=self.alpha_gate, **self.box_kwargs(**kwargs)
        )

    def extra_repr(self) -> str:
        return f"alpha_gate={self.alpha_gate}, {super().extra_repr()}"


@register_loss()
class EIoULoss(BoxLoss):
    """:func:`detloss.eiou_loss` (Efficient IoU) as a module."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return eiou_loss(pred, target, self.eps, **self.box_kwargs(**kwargs))


@register_loss()
class SIoULoss(BoxLoss):
    """:func:`detloss.siou_loss` as a module; ``theta`` is the shape cost's exponent (default 4)."""

    def __init__(
        self,
        eps: float = EPS,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        *,
        theta: float = 4.0,
        box_format: str = "xyxy",
        check_boxes: bool = False,
    ) -> None:
        super().__init__(
            eps, reduction, loss_weight, box_format=box_format, check_boxes=check_boxes
        )
        self.theta = check_number(theta, "theta", low=1.0, strict=False)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return siou_loss(pred, target, self.eps, self.theta, **self.box_kwargs(**kwargs))

    def extra_repr(self) -> str:
        return f"theta={self.theta}, {super().extra_repr()}"
