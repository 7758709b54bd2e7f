"""Modules of the classification losses in :mod:`detloss.ce`, :mod:`detloss.focal` and
:mod:`detloss.gfl` (mmdetection's names and arguments)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from detloss.ce import binary_cross_entropy, cross_entropy
from detloss.checks import check_exponent, check_factor, check_number
from detloss.focal import focal_loss_with_prob, sigmoid_focal_loss, softmax_focal_loss
from detloss.gfl import (
    distribution_focal_loss,
    quality_focal_loss,
    quality_focal_loss_with_prob,
    varifocal_loss,
)
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss

__all__ = [
    "CrossEntropyLoss",
    "DistributionFocalLoss",
    "FocalLoss",
    "QualityFocalLoss",
    "VarifocalLoss",
]


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
    ``use_mask`` (mask-head cross-entropy) is not supported (its error says what to use).
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
            raise ValueError(
                "CrossEntropyLoss(use_mask=True) (mmdetection's mask_cross_entropy) is not "
                "supported: gather each RoI's class channel of the mask logits and use "
                "use_sigmoid=True (detloss.binary_cross_entropy), or detloss.DiceLoss"
            )
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
    """:func:`detloss.sigmoid_focal_loss` with mmdetection's arguments and defaults.

    ``activated=True``: ``pred`` holds probabilities, :func:`detloss.focal.focal_loss_with_prob`
    (mmdetection's ``py_focal_loss_with_prob``). Integer targets of ``pred``'s shape are one-hot
    rows (used as floating, as mmdetection). ``use_sigmoid=False`` is detloss's own
    :func:`detloss.softmax_focal_loss` (mmcv's; mmdetection 3.3's ``FocalLoss`` asserts
    ``use_sigmoid=True``), and takes no ``activated=True``.
    """

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
        self.use_sigmoid = bool(use_sigmoid)
        self.activated = bool(activated)
        if self.activated and not self.use_sigmoid:
            raise ValueError(
                "FocalLoss(activated=True) needs use_sigmoid=True (probabilities of a sigmoid), "
                "got use_sigmoid=False"
            )
        self.gamma = check_exponent(gamma, "gamma")
        self.alpha = _check_focal_alpha(alpha, self.use_sigmoid)

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        if not self.use_sigmoid and self.alpha is not None:
            return softmax_focal_loss(pred, target, self.alpha, self.gamma, **kwargs)
        if target.shape == pred.shape and not target.dtype.is_floating_point:
            target = target.to(pred.dtype)  # integer one-hot rows, as mmdetection's type_as
        if self.activated:
            return focal_loss_with_prob(pred, target, self.alpha, self.gamma, **kwargs)
        return sigmoid_focal_loss(pred, target, self.alpha, self.gamma, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"use_sigmoid={self.use_sigmoid}, gamma={self.gamma}, alpha={self.alpha}, "
            f"activated={self.activated}, {super().extra_repr()}"
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
        self.alpha = check_factor(alpha, "alpha")
        self.gamma = check_exponent(gamma, "gamma")
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
    or a dense ``(N, C)`` soft-target tensor. ``activated=True``: ``pred`` holds probabilities,
    :func:`detloss.gfl.quality_focal_loss_with_prob` (mmdetection's)."""

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
        self.activated = bool(activated)
        self.beta = check_exponent(beta, "beta")

    def loss(self, pred: Tensor, target: Any, **kwargs: Any) -> Tensor:
        fn = quality_focal_loss_with_prob if self.activated else quality_focal_loss
        if isinstance(target, (tuple, list)):
            labels, scores = target
            return fn(pred, labels, scores, self.beta, **kwargs)
        return fn(pred, target, None, self.beta, **kwargs)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, activated={self.activated}, {super().extra_repr()}"


@register_loss()
class DistributionFocalLoss(WeightedLoss):
    """:func:`detloss.distribution_focal_loss` with mmdetection's arguments."""

    def loss(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        return distribution_focal_loss(pred, target, **kwargs)
