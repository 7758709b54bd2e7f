"""Modules of the classification losses in :mod:`detloss.cross_entropy`, :mod:`detloss.focal` and
:mod:`detloss.gfl` (mmdetection's names and arguments)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from detloss._checks import check_number
from detloss.cross_entropy import binary_cross_entropy, cross_entropy
from detloss.focal import sigmoid_focal_loss, softmax_focal_loss
from detloss.gfl import distribution_focal_loss, quality_focal_loss, varifocal_loss
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss


def _no_activated(activated: bool, name: str) -> None:
    if activated:
        raise ValueError(f"{name}(activated=True) is not supported: pass logits, not probabilities")


def _check_focal_alpha(alpha: float | None, use_sigmoid: bool) -> float | None:
    """The functionals' rule, checked when the module is built: ``alpha`` in [0, 1]; with the
    sigmoid also ``None`` or a negative number (no weighting)."""
    if alpha is None and use_sigmoid:
        return None
    value = check_number(alpha, "alpha", low=float("-inf"), strict=True)
    if value > 1 or (value < 0 and not use_sigmoid):
        none = " (or None / negative for none)" if use_sigmoid else ""
        raise ValueError(f"alpha must be in [0, 1]{none}, got {alpha!r}")
    return value


def _require_sigmoid(use_sigmoid: bool, name: str) -> None:
    if not use_sigmoid:
        raise ValueError(f"{name} supports only use_sigmoid=True (as mmdetection)")


@register_loss()
class CrossEntropyLoss(WeightedLoss):
    """:func:`detloss.cross_entropy` (softmax) or, with ``use_sigmoid=True``,
    :func:`detloss.binary_cross_entropy`, with mmdetection's arguments. With ``use_sigmoid=True``
    ``class_weight`` weighs the positive term only (``pos_weight``), as mmdetection.

    ``ignore_index=None`` means -100; ``forward(..., ignore_index=...)`` overrides it per call.
    ``use_mask`` (mask-head cross-entropy) is not supported.
    """

    class_weight: Tensor | None

    def __init__(
        self,
        use_sigmoid: bool = False,
        use_mask: bool = False,
        reduction: str = "mean",
        class_weight: Sequence[float] | Tensor | None = None,
        ignore_index: int | None = None,
        loss_weight: float = 1.0,
        avg_non_ignore: bool = False,
    ) -> None:
        super().__init__(reduction, loss_weight)
        if use_mask:
            raise ValueError("CrossEntropyLoss(use_mask=True) is not supported")
        self.use_sigmoid = bool(use_sigmoid)
        weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float)
        self.register_buffer("class_weight", weight, persistent=False)
        self.ignore_index = -100 if ignore_index is None else int(ignore_index)
        self.avg_non_ignore = bool(avg_non_ignore)

    def loss(
        self, pred: Tensor, target: Tensor, *, ignore_index: int | None = None, **kwargs: Any
    ) -> Tensor:
        index = self.ignore_index if ignore_index is None else ignore_index
        common = {"ignore_index": index, "avg_non_ignore": self.avg_non_ignore, **kwargs}
        if self.use_sigmoid:  # mmdetection passes class_weight as the positive term's weight
            return binary_cross_entropy(pred, target, pos_weight=self.class_weight, **common)
        return cross_entropy(pred, target, class_weight=self.class_weight, **common)

    def extra_repr(self) -> str:
        return (
            f"use_sigmoid={self.use_sigmoid}, ignore_index={self.ignore_index}, "
            f"avg_non_ignore={self.avg_non_ignore}, {super().extra_repr()}"
        )


@register_loss()
class FocalLoss(WeightedLoss):
    """:func:`detloss.sigmoid_focal_loss` (or, with ``use_sigmoid=False``,
    :func:`detloss.softmax_focal_loss`) with mmdetection's arguments and defaults."""

    def __init__(
        self,
        use_sigmoid: bool = True,
        gamma: float = 2.0,
        alpha: float = 0.25,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        activated: bool = False,
    ) -> None:
        super().__init__(reduction, loss_weight)
        _no_activated(activated, "FocalLoss")
        self.use_sigmoid = bool(use_sigmoid)
        self.gamma = check_number(gamma, "gamma", low=0.0, strict=False)
        self.alpha = _check_focal_alpha(alpha, self.use_sigmoid)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        if self.use_sigmoid or self.alpha is None:
            return sigmoid_focal_loss(pred, target, self.alpha, self.gamma, **kwargs)
        return softmax_focal_loss(pred, target, self.alpha, self.gamma, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"use_sigmoid={self.use_sigmoid}, gamma={self.gamma}, alpha={self.alpha}, "
            f"{super().extra_repr()}"
        )


@register_loss()
class VarifocalLoss(WeightedLoss):
    """:func:`detloss.varifocal_loss` with mmdetection's arguments and defaults."""

    def __init__(
        self,
        use_sigmoid: bool = True,
        alpha: float = 0.75,
        gamma: float = 2.0,
        iou_weighted: bool = True,
        reduction: str = "mean",
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(reduction, loss_weight)
        _require_sigmoid(use_sigmoid, "VarifocalLoss")
        self.alpha = check_number(alpha, "alpha", low=0.0, strict=False)
        self.gamma = check_number(gamma, "gamma", low=0.0, strict=False)
        self.iou_weighted = bool(iou_weighted)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return varifocal_loss(pred, target, self.alpha, self.gamma, self.iou_weighted, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, gamma={self.gamma}, iou_weighted={self.iou_weighted}, "
            f"{super().extra_repr()}"
        )


@register_loss()
class QualityFocalLoss(WeightedLoss):
    """:func:`detloss.quality_focal_loss`; the target is mmdetection's ``(labels, scores)`` tuple
    or a dense ``(N, C)`` soft-target tensor."""

    def __init__(
        self,
        use_sigmoid: bool = True,
        beta: float = 2.0,
        reduction: str = "mean",
        loss_weight: float = 1.0,
        activated: bool = False,
    ) -> None:
        super().__init__(reduction, loss_weight)
        _require_sigmoid(use_sigmoid, "QualityFocalLoss")
        _no_activated(activated, "QualityFocalLoss")
        self.beta = check_number(beta, "beta", low=0.0, strict=False)

    def loss(self, pred: Tensor, target: Any, **kwargs: Any) -> Tensor:
        if isinstance(target, (tuple, list)):
            labels, scores = target
            return quality_focal_loss(pred, labels, scores, self.beta, **kwargs)
        return quality_focal_loss(pred, target, None, self.beta, **kwargs)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, {super().extra_repr()}"


@register_loss()
class DistributionFocalLoss(WeightedLoss):
    """:func:`detloss.distribution_focal_loss` with mmdetection's arguments."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return distribution_focal_loss(pred, target, **kwargs)
