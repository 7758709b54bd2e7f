"""The module of :func:`detloss.gaussian_focal_loss` (mmdetection's ``GaussianFocalLoss``)."""

from __future__ import annotations

from torch import Tensor

from detloss.gaussian_focal import check_parameters, gaussian_focal_loss, positives_from_indices
from detloss.modules.base import WeightedLoss
from detloss.reduction import check_reduction
from detloss.registry import register_loss

__all__ = ["GaussianFocalLoss"]


@register_loss()
class GaussianFocalLoss(WeightedLoss):
    """:func:`detloss.gaussian_focal_loss` with mmdetection's arguments and forward.

    ``forward(pred, target, pos_inds=None, pos_labels=None, weight=None, avg_factor=None,
    reduction_override=None)``: mmdetection's order, where the third positional argument is
    ``pos_inds``. With ``pos_inds``/``pos_labels`` (CenterNet-update: ``pred`` ``(N, C)``, the
    positives at ``(pos_inds[k], pos_labels[k])``) "mean" needs ``avg_factor``: mmdetection then
    averages the positive and negative terms separately, which one reduction cannot express;
    "none" gives the ``(N, C)`` element-wise loss.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        gamma: float = 4.0,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        pos_weight: float = 1.0,
        neg_weight: float = 1.0,
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.alpha, self.gamma, self.pos_weight, self.neg_weight = check_parameters(
            alpha, gamma, pos_weight, neg_weight
        )

    def forward(  # type: ignore[override]
        self,
        pred: Tensor,
        target: Tensor,
        pos_inds: Tensor | None = None,
        pos_labels: Tensor | None = None,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        reduction = check_reduction(
            self.reduction if reduction_override is None else reduction_override, avg_factor
        )
        positives = None
        if pos_inds is not None or pos_labels is not None:
            if pos_inds is None or pos_labels is None:
                raise ValueError("pos_inds and pos_labels must be given together")
            if reduction == "mean" and avg_factor is None:
                raise ValueError('with pos_inds, reduction="mean" needs avg_factor')
            positives = positives_from_indices(pred, pos_inds, pos_labels)
        loss = gaussian_focal_loss(
            pred,
            target,
            self.alpha,
            self.gamma,
            self.pos_weight,
            self.neg_weight,
            positives=positives,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor,
        )
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, gamma={self.gamma}, pos_weight={self.pos_weight}, "
            f"neg_weight={self.neg_weight}, {super().extra_repr()}"
        )
