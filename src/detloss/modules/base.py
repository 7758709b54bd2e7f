"""The base of detloss's loss modules: mmdetection's ``reduction`` / ``loss_weight`` / forward signature."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from detloss.checks import LARGEST, check_number
from detloss.reduction import check_reduction

__all__ = ["WeightedLoss"]


class WeightedLoss(nn.Module):
    """A thin module over a functional loss.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None, **kwargs)``
    returns ``loss_weight * loss_fn(pred, target, weight=..., reduction=..., avg_factor=...)``,
    exactly mmdetection's module contract. Subclasses implement :meth:`loss` by calling their
    functional loss with the parameters given to the constructor; all maths lives there.
    """

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction: str = check_reduction(reduction)
        self.loss_weight = check_number(
            loss_weight, "loss_weight", low=-LARGEST, strict=False, high=LARGEST
        )

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
        **kwargs: Any,
    ) -> Tensor:
        reduction = check_reduction(
            self.reduction if reduction_override is None else reduction_override
        )
        loss = self.loss(
            pred, target, weight=weight, reduction=reduction, avg_factor=avg_factor, **kwargs
        )
        return self.loss_weight * loss

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        """The unscaled loss: the functional loss with this module's parameters."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, loss_weight={self.loss_weight}"
