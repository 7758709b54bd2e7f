"""The module of :func:`detloss.knowledge_distillation_kl_div_loss` (mmdetection's
``KnowledgeDistillationKLDivLoss``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from detloss.distillation import check_temperature, knowledge_distillation_kl_div_loss
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss

__all__ = ["KnowledgeDistillationKLDivLoss"]


@register_loss()
class KnowledgeDistillationKLDivLoss(WeightedLoss):
    """:func:`detloss.knowledge_distillation_kl_div_loss` with mmdetection's arguments
    (``T=10``, ``T >= 1``); ``forward(pred, soft_label, weight, avg_factor, reduction_override)``,
    the teacher's ``soft_label`` logits detached."""

    def __init__(
        self,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        T: float = 10,  # noqa: N803 - mmdetection's name
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.T = check_temperature(T)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return knowledge_distillation_kl_div_loss(pred, target, self.T, **kwargs)

    def extra_repr(self) -> str:
        return f"T={self.T}, {super().extra_repr()}"
