"""The module of :func:`detloss.bounded_iou_loss` (mmdetection's ``BoundedIoULoss``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from detloss.bounded_iou import bounded_iou_loss
from detloss.boxes import check_eps
from detloss.checks import check_number
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss

__all__ = ["BoundedIoULoss"]


@register_loss()
class BoundedIoULoss(WeightedLoss):
    """:func:`detloss.bounded_iou_loss` with mmdetection's arguments (``beta=0.2, eps=1e-3``).

    mmdetection returns ``(pred * weight).sum()`` when no weight is positive (a host-side test);
    here such a weight simply gives 0 through the reduction (a scalar for "mean"/"sum", zeros of the
    loss's shape for "none").
    """

    def __init__(
        self,
        beta: float = 0.2,
        eps: float = 1e-3,
        reduction: str = "mean",
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.beta = check_number(beta, "beta", low=0.0, strict=False)
        self.eps = check_eps(eps)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return bounded_iou_loss(pred, target, self.beta, self.eps, **kwargs)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, eps={self.eps}, {super().extra_repr()}"
