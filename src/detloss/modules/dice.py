"""The module of :func:`detloss.dice_loss` (mmdetection's ``DiceLoss``)."""

from __future__ import annotations

from torch import Tensor

from detloss.checks import check_divisor
from detloss.dice import dice_loss
from detloss.modules.base import WeightedLoss
from detloss.reduction import check_reduction
from detloss.registry import register_loss

__all__ = ["DiceLoss"]


@register_loss()
class DiceLoss(WeightedLoss):
    """:func:`detloss.dice_loss` with mmdetection's arguments (``use_sigmoid=True, activate=True,
    naive_dice=False, eps=1e-3``) and forward order ``(pred, target, weight, reduction_override,
    avg_factor)``. ``activate=True`` applies the sigmoid (``use_sigmoid=False`` then raises, as
    mmdetection's ``NotImplementedError``; here at construction)."""

    def __init__(
        self,
        use_sigmoid: bool = True,
        activate: bool = True,
        reduction: str = "mean",
        naive_dice: bool = False,
        loss_weight: float = 1.0,
        eps: float = 1e-3,
    ) -> None:
        super().__init__(reduction, loss_weight)
        if activate and not use_sigmoid:
            raise ValueError("DiceLoss(activate=True) supports only use_sigmoid=True")
        self.use_sigmoid = bool(use_sigmoid)
        self.activate = bool(activate)
        self.naive_dice = bool(naive_dice)
        self.eps = check_divisor(eps, "eps")

    def forward(  # type: ignore[override]
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        reduction_override: str | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        reduction = check_reduction(
            self.reduction if reduction_override is None else reduction_override, avg_factor
        )
        loss = dice_loss(
            pred,
            target,
            activate=self.activate,
            naive_dice=self.naive_dice,
            eps=self.eps,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor,
        )
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (
            f"use_sigmoid={self.use_sigmoid}, activate={self.activate}, "
            f"naive_dice={self.naive_dice}, eps={self.eps}, {super().extra_repr()}"
        )
