"""The module of :func:`detloss.seesaw_ce_loss` (mmdetection's ``SeesawLoss``).

The classifier has ``C + 2`` outputs (mmdetection's layout): ``C`` class logits and two objectness
logits (foreground, background). Labels are in ``[0, C]``, ``C`` being background. The loss is

* ``loss_cls_classes``: Seesaw cross-entropy of the class logits over the foreground samples, with
  the class counts ``cum_samples`` (a ``(C + 1,)`` float32 buffer, mmdetection's name, saved in
  ``state_dict``), and
* ``loss_cls_objectness``: softmax cross-entropy of the objectness logits (foreground vs
  background) over all samples,

each times ``loss_weight``, returned as a dict (``return_dict=True``, mmdetection's default) or
summed. Each forward first adds the batch's label counts, summed over the ranks of the default
process group, to ``cum_samples`` (as mmdetection, before computing the loss), so that every rank
holds the counts of the concatenated batch.

Differences from mmdetection: the background rows are masked, not selected (no data-dependent
shapes), so "none" gives ``loss_cls_classes`` of shape ``(N,)`` with zeros at background rows, and
"mean" without ``avg_factor`` divides the class term by ``num_pos + 1.19e-7`` (mmdetection: the
mean over the selected rows, exactly ``num_pos``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import detloss
from detloss.checks import check_tensor
from detloss.distributed import sum_over_ranks
from detloss.modules.base import WeightedLoss
from detloss.reduction import check_reduction
from detloss.registry import register_loss
from detloss.seesaw import check_parameters, seesaw_ce_loss

__all__ = ["SeesawLoss"]


def _check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return num_classes


def _top1_accuracy(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Percentage of the masked rows whose top-1 class is the label (mmdetection's ``accuracy``
    with ``topk=1``, as a ``(1,)`` tensor; 0 when no row is masked in)."""
    correct = (logits.topk(1, dim=1).indices[:, 0] == labels) & mask
    return (100.0 * correct.sum() / mask.sum().clamp_min(1)).reshape(1)


@register_loss()
class SeesawLoss(WeightedLoss):
    """mmdetection's ``SeesawLoss`` (``p=0.8, q=2.0, num_classes=1203`` (LVIS v1), ``eps=1e-2``).

    ``custom_cls_channels``, ``custom_activation`` and ``custom_accuracy`` are set, as in
    mmdetection, so that its bbox heads call :meth:`get_cls_channels`, :meth:`get_activation` and
    :meth:`get_accuracy`.
    """

    cum_samples: Tensor

    def __init__(
        self,
        use_sigmoid: bool = False,
        p: float = 0.8,
        q: float = 2.0,
        num_classes: int = 1203,
        eps: float = 1e-2,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        return_dict: bool = True,
    ) -> None:
        super().__init__(reduction, loss_weight)
        if use_sigmoid:
            raise ValueError("SeesawLoss supports only use_sigmoid=False (as mmdetection)")
        self.use_sigmoid = False
        self.p, self.q, self.eps = check_parameters(p, q, eps)
        self.num_classes = _check_num_classes(num_classes)
        self.return_dict = bool(return_dict)
        self.register_buffer("cum_samples", torch.zeros(self.num_classes + 1))
        self.custom_cls_channels = True
        self.custom_activation = True
        self.custom_accuracy = True

    def _split(self, cls_score: Tensor) -> tuple[Tensor, Tensor]:
        if check_tensor(cls_score, "cls_score").shape[-1:] != (self.num_classes + 2,):
            raise ValueError(
                f"cls_score must have num_classes + 2 = {self.num_classes + 2} channels, "
                f"got shape {tuple(cls_score.shape)}"
            )
        return cls_score[..., :-2], cls_score[..., -2:]

    def get_cls_channels(self, num_classes: int) -> int:
        """The classifier's output channels, ``num_classes + 2``."""
        if num_classes != self.num_classes:
            raise ValueError(
                f"num_classes {num_classes} differs from the loss's {self.num_classes}"
            )
        return num_classes + 2

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Scores ``(..., C + 1)``: class softmax times the foreground probability, then the
        background probability."""
        classes, objectness = self._split(cls_score)
        objectness = F.softmax(objectness, dim=-1)
        return torch.cat(
            [F.softmax(classes, dim=-1) * objectness[..., :1], objectness[..., 1:]], -1
        )

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Top-1 accuracies (percent): objectness over all rows, classes over the foreground."""
        classes, objectness = self._split(cls_score)
        everything = torch.ones_like(labels, dtype=torch.bool)
        return {
            "acc_objectness": _top1_accuracy(
                objectness, (labels == self.num_classes).long(), everything
            ),
            "acc_classes": _top1_accuracy(classes, labels, labels < self.num_classes),
        }

    def forward(  # type: ignore[override]
        self,
        cls_score: Tensor,
        labels: Tensor,
        label_weights: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor | dict[str, Tensor]:
        reduction = check_reduction(
            self.reduction if reduction_override is None else reduction_override, avg_factor
        )
        classes, objectness = self._split(cls_score)
        y = check_tensor(labels, "labels")
        self._count(y)
        class_avg = avg_factor
        if reduction == "mean" and avg_factor is None:
            class_avg = ((y >= 0) & (y < self.num_classes)).sum()
        loss_classes = self.loss_weight * seesaw_ce_loss(
            classes,
            y,
            self.cum_samples[:-1],
            self.p,
            self.q,
            self.eps,
            weight=label_weights,
            reduction=reduction,
            avg_factor=class_avg,
        )
        loss_objectness = self.loss_weight * detloss.cross_entropy(
            objectness,
            (y == self.num_classes).long(),
            weight=label_weights,
            reduction=reduction,
            avg_factor=avg_factor,
        )
        if self.return_dict:
            return {"loss_cls_objectness": loss_objectness, "loss_cls_classes": loss_classes}
        return loss_classes + loss_objectness

    def _count(self, labels: Tensor) -> None:
        """Add the labels' counts in ``[0, C]``, summed over the ranks, to ``cum_samples``."""
        slots = self.num_classes + 1
        index = torch.where((labels >= 0) & (labels < slots), labels, slots).reshape(-1)
        counts = torch.zeros(slots + 1, dtype=torch.int64, device=labels.device)
        counts = counts.scatter_add(0, index, torch.ones_like(index))[:-1]
        with torch.no_grad():
            self.cum_samples.add_(sum_over_ranks(counts).to(self.cum_samples))

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, q={self.q}, num_classes={self.num_classes}, eps={self.eps}, "
            f"return_dict={self.return_dict}, {super().extra_repr()}"
        )
