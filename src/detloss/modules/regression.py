"""Modules of the regression losses in :mod:`detloss.regression` (mmdetection's names and arguments)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from detloss.checks import check_number
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss
from detloss.regression import (
    balanced_l1_loss,
    check_balanced_l1,
    huber_loss,
    l1_loss,
    mse_loss,
    resolve_beta,
    smooth_l1_loss,
)

__all__ = ["BalancedL1Loss", "HuberLoss", "L1Loss", "MSELoss", "SmoothL1Loss"]


@register_loss()
class SmoothL1Loss(WeightedLoss):
    """:func:`detloss.smooth_l1_loss` as a module: ``beta`` (default 1.0) or Caffe's ``sigma``."""

    def __init__(
        self,
        beta: float | None = None,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        *,
        sigma: float | None = None,
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.beta = resolve_beta(beta, sigma)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return smooth_l1_loss(pred, target, self.beta, **kwargs)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, {super().extra_repr()}"


@register_loss()
class HuberLoss(WeightedLoss):
    """:func:`detloss.huber_loss` as a module (``delta > 0``, default 1.0)."""

    def __init__(
        self, delta: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.delta = check_number(delta, "delta", low=0.0, strict=True)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return huber_loss(pred, target, self.delta, **kwargs)

    def extra_repr(self) -> str:
        return f"delta={self.delta}, {super().extra_repr()}"


@register_loss()
class L1Loss(WeightedLoss):
    """:func:`detloss.l1_loss` as a module."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return l1_loss(pred, target, **kwargs)


@register_loss()
class MSELoss(WeightedLoss):
    """:func:`detloss.mse_loss` as a module."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return mse_loss(pred, target, **kwargs)


@register_loss()
class BalancedL1Loss(WeightedLoss):
    """:func:`detloss.balanced_l1_loss` as a module (Libra R-CNN; mmdetection's defaults)."""

    def __init__(
        self,
        alpha: float = 0.5,
        gamma: float = 1.5,
        beta: float = 1.0,
        reduction: str = "mean",
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.alpha, self.gamma, self.beta = check_balanced_l1(alpha, gamma, beta)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return balanced_l1_loss(pred, target, self.alpha, self.gamma, self.beta, **kwargs)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, beta={self.beta}, {super().extra_repr()}"
