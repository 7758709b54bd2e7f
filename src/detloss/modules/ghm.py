"""Modules of the GHM losses in :mod:`detloss.ghm` (mmdetection's ``GHMC`` and ``GHMR``).

They own the state: with ``momentum > 0`` the buffer ``acc_sum`` (mmdetection's name, saved in
``state_dict``) holds the moving average of the bin counts. Each forward computes the step's
statistics (bin counts and total), sums them over the ranks of the default process group, updates
``acc_sum`` from the summed counts (bins that are empty this step keep their value) and weighs the
elements by the summed statistics. "mean" then divides by the mean of ``total`` over the ranks, so
that DistributedDataParallel's gradient average equals the gradient of the concatenated batch on
one process (as :func:`detloss.distributed.global_avg_factor`). The ``edges`` buffer is
mmdetection's, kept so that its checkpoints load with ``strict=True``.

As in mmdetection, the weights of a forward call's third argument only mark the valid elements
(``label_weight > 0``) and the ``avg_factor`` that heads pass is not used: GHM normalises by its own
``total``. mmdetection's ``reduction="sum"`` raises (it always passes ``avg_factor``); here it is the
sum of the harmonised loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from detloss.checks import check_number
from detloss.distributed import sum_over_ranks, world_size
from detloss.ghm import (
    check_bins,
    check_mu,
    ghm_edges,
    ghmc_last_edge,
    ghmc_loss,
    ghmc_statistics,
    ghmr_last_edge,
    ghmr_loss,
    ghmr_statistics,
)
from detloss.modules.base import WeightedLoss
from detloss.registry import register_loss

__all__ = ["GHMC", "GHMR"]


class _GradientHarmonized(WeightedLoss):
    """The state and its update, shared by :class:`GHMC` and :class:`GHMR`."""

    edges: Tensor
    acc_sum: Tensor

    def __init__(
        self, bins: int, momentum: float, last_edge: float, reduction: str, loss_weight: float
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.bins = check_bins(bins)
        self.momentum = check_number(momentum, "momentum", low=0.0, strict=False)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.register_buffer("edges", ghm_edges(self.bins, last_edge))
        if self.momentum > 0:
            self.register_buffer("acc_sum", torch.zeros(self.bins))

    def _step(self, statistics: Tensor, reduction: str) -> dict[str, Any]:
        """Sum the step's statistics over the ranks, update ``acc_sum``; the loss's arguments."""
        statistics = sum_over_ranks(statistics)
        density = None
        if self.momentum > 0:
            counts = statistics[:-1].to(self.acc_sum)
            moved = self.momentum * self.acc_sum + (1 - self.momentum) * counts
            with torch.no_grad():
                self.acc_sum.copy_(torch.where(counts > 0, moved, self.acc_sum))
            density = self.acc_sum
        avg_factor = statistics[-1].clamp_min(1) / world_size() if reduction == "mean" else None
        return {
            "statistics": statistics,
            "density": density,
            "reduction": reduction,
            "avg_factor": avg_factor,
        }

    def extra_repr(self) -> str:
        return f"bins={self.bins}, momentum={self.momentum}, {super().extra_repr()}"


@register_loss()
class GHMC(_GradientHarmonized):
    """:func:`detloss.ghmc_loss` with mmdetection's arguments: ``forward(pred, target,
    label_weight)``; ``target`` as one-hot/soft ``(N, C)`` or class indices ``(N,)``."""

    def __init__(
        self,
        bins: int = 10,
        momentum: float = 0,
        use_sigmoid: bool = True,
        loss_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        if not use_sigmoid:
            raise ValueError("GHMC supports only use_sigmoid=True (as mmdetection)")
        super().__init__(bins, momentum, ghmc_last_edge(), reduction, loss_weight)
        self.use_sigmoid = True

    def loss(
        self,
        pred: Tensor,
        target: Tensor,
        *,
        weight: Tensor | None = None,
        reduction: str = "mean",
        label_weight: Tensor | None = None,
        **unused: Any,  # the heads' avg_factor: GHM normalises by its own total
    ) -> Tensor:
        valid = weight if label_weight is None else label_weight
        step = self._step(ghmc_statistics(pred, target, valid, self.bins), reduction)
        return ghmc_loss(pred, target, valid, self.bins, **step)


@register_loss()
class GHMR(_GradientHarmonized):
    """:func:`detloss.ghmr_loss` with mmdetection's arguments: ``forward(pred, target,
    label_weight)`` on box regression outputs."""

    def __init__(
        self,
        mu: float = 0.02,
        bins: int = 10,
        momentum: float = 0,
        loss_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(bins, momentum, ghmr_last_edge(), reduction, loss_weight)
        self.mu = check_mu(mu)

    def loss(
        self,
        pred: Tensor,
        target: Tensor,
        *,
        weight: Tensor | None = None,
        reduction: str = "mean",
        label_weight: Tensor | None = None,
        **unused: Any,  # the heads' avg_factor: GHM normalises by its own total
    ) -> Tensor:
        valid = weight if label_weight is None else label_weight
        step = self._step(ghmr_statistics(pred, target, valid, self.bins, self.mu), reduction)
        return ghmr_loss(pred, target, valid, self.mu, self.bins, **step)

    def extra_repr(self) -> str:
        return f"mu={self.mu}, {super().extra_repr()}"
