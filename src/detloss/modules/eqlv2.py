"""The module of :func:`detloss.eqlv2_loss` (mmdetection's ``EQLV2Loss``).

The state is mmdetection's three buffers (saved in ``state_dict``): ``pos_grad`` and ``neg_grad``,
the ``(K,)`` accumulated positive and negative gradient magnitudes, and ``pos_neg`` (initially 100),
their ratio. Each forward computes the loss with the current ``pos_neg``, then adds the step's
:func:`detloss.eqlv2.eqlv2_gradient_statistics`, summed over the ranks of the default process group,
and recomputes ``pos_neg = pos_grad / (neg_grad + 1e-10)`` (mmdetection's ``collect_grad``; it has
no gradient hook: the magnitudes are computed in forward from the detached logits).

Differences from mmdetection: the statistics are summed over the ranks whenever a process group is
initialised (mmdetection only with ``use_distributed=True``; with its default the ranks' states
drift apart), so ``use_distributed`` is accepted for configs and has no effect; ``weight`` (one per
row), ``reduction``/``reduction_override`` and ``avg_factor`` are honoured (mmdetection ignores them
and returns ``sum / N``, which is "mean" here), and the row weight also scales the statistics.
``vis_grad`` is stored and unused, as in mmdetection. ``class_weight`` must be ``None`` (mmdetection
stores it unused).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from detloss.distributed import sum_over_ranks
from detloss.eqlv2 import check_parameters, eqlv2_gradient_statistics, eqlv2_loss
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss

__all__ = ["EQLV2Loss"]


@register_loss()
class EQLV2Loss(WeightedLoss):
    """mmdetection's ``EQLV2Loss`` (``gamma=12, mu=0.8, alpha=4.0, num_classes=1203``): logits of
    ``num_classes + 1`` channels (the last: background), labels in ``[0, num_classes]``."""

    pos_grad: Tensor
    neg_grad: Tensor
    pos_neg: Tensor

    def __init__(
        self,
        use_sigmoid: bool = True,
        reduction: str = "mean",
        class_weight: Tensor | None = None,
        loss_weight: float = 1.0,
        num_classes: int = 1203,
        use_distributed: bool = False,
        mu: float = 0.8,
        alpha: float = 4.0,
        gamma: float = 12,
        vis_grad: bool = False,
        test_with_obj: bool = True,
    ) -> None:
        super().__init__(reduction, loss_weight)
        if not use_sigmoid:
            raise ValueError("EQLV2Loss supports only use_sigmoid=True (as mmdetection)")
        if class_weight is not None:
            raise ValueError(
                "EQLV2Loss(class_weight=...) is not supported (mmdetection ignores it)"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.use_sigmoid = True
        self.num_classes = num_classes
        self.use_distributed = bool(use_distributed)
        self.gamma, self.mu, self.alpha = check_parameters(gamma, mu, alpha)
        self.vis_grad = bool(vis_grad)
        self.test_with_obj = bool(test_with_obj)
        self.register_buffer("pos_grad", torch.zeros(num_classes))
        self.register_buffer("neg_grad", torch.zeros(num_classes))
        self.register_buffer("pos_neg", torch.full((num_classes,), 100.0))

    def loss(
        self, pred: Tensor, target: Tensor, *, weight: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        parameters = (self.gamma, self.mu, self.alpha)
        loss = eqlv2_loss(pred, target, self.pos_neg, *parameters, weight=weight, **kwargs)
        step = eqlv2_gradient_statistics(pred, target, self.pos_neg, *parameters, weight)
        step = sum_over_ranks(step).to(self.pos_grad)
        with torch.no_grad():
            self.pos_grad.add_(step[0])
            self.neg_grad.add_(step[1])
            torch.div(self.pos_grad, self.neg_grad + 1e-10, out=self.pos_neg)
        return loss

    def get_channel_num(self, num_classes: int) -> int:
        """The classifier's output channels, ``num_classes + 1``."""
        return num_classes + 1

    def get_activation(self, pred: Tensor) -> Tensor:
        """Sigmoid scores; with ``test_with_obj`` the class scores times ``1 - background``."""
        scores = torch.sigmoid(pred)
        if not self.test_with_obj:
            return scores
        background = scores[:, -1:]
        return torch.cat([scores[:, :-1] * (1 - background), background], dim=1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, gamma={self.gamma}, mu={self.mu}, "
            f"alpha={self.alpha}, test_with_obj={self.test_with_obj}, {super().extra_repr()}"
        )
