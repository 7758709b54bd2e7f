"""The value formulas of the losses with a hand-written derivative (``detloss._fast``), in plain
operations: autograd of these is what each ``_fast`` Function is tested and benchmarked against."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


def softplus(z: Tensor) -> Tensor:
    return F.softplus(z, threshold=40.0)


def bce(x: Tensor, t: Tensor) -> Tensor:
    return t * softplus(-x) + (1 - t) * softplus(x)


def power(m: Tensor, complement: Callable[[], Tensor], k: float) -> Tensor:
    """``m**k`` for ``m`` in ``[0, 1]``. Up to ``k = 8`` ``pow``; above, from ``m = 1/2`` up
    ``exp(k log1p(-p))`` with ``p = complement()``, ``1 - m`` evaluated on its own (``pow`` would
    multiply the rounding of ``m``, which rounds a small ``p`` away, by ``k``)."""
    if k <= 8:
        return m**k
    small = m < 0.5
    # the inner wheres keep the unused branch's derivative finite (autograd multiplies it by 0)
    p = torch.where(small, 0, complement())
    return torch.where(small, m, 1) ** k * torch.exp(k * torch.log1p(-p))


def sigmoid_focal(x: Tensor, t: Tensor, alpha: float | None, gamma: float) -> Tensor:
    """``alpha_t (t sigmoid(-x) + (1 - t) sigmoid(x))**gamma bce(x, t)``."""
    m = t * torch.sigmoid(-x) + (1 - t) * torch.sigmoid(x)
    alpha_t = 1.0 if alpha is None else alpha * t + (1 - alpha) * (1 - t)

    def p_t() -> Tensor:
        return t * torch.sigmoid(x) + (1 - t) * torch.sigmoid(-x)

    return alpha_t * power(m, p_t, gamma) * bce(x, t)


def varifocal(x: Tensor, q: Tensor, alpha: float, gamma: float, iou_weighted: bool) -> Tensor:
    """``bce(x, q) * (w_q if q > 0 else alpha sigmoid(x)**gamma)``."""
    weight = q if iou_weighted else torch.ones_like(q)
    # the inner where keeps the unused branch's derivative finite (autograd multiplies it by 0)
    probability = torch.where(q > 0, torch.ones_like(x), torch.sigmoid(x))

    def complement() -> Tensor:
        return torch.where(q > 0, 0, torch.sigmoid(-x))

    focal = torch.where(q > 0, weight, alpha * power(probability, complement, gamma))
    return bce(x, q) * focal


def quality_focal(x: Tensor, q: Tensor, beta: float) -> Tensor:
    """``|(1 - q) sigmoid(x) - q sigmoid(-x)|**beta * bce(x, q)`` element-wise (``1 - |d|`` as
    ``min(q + sigmoid(-x), (1 - q) + sigmoid(x))``)."""
    d = (1 - q) * torch.sigmoid(x) - q * torch.sigmoid(-x)

    def complement() -> Tensor:
        return torch.minimum(q + torch.sigmoid(-x), (1 - q) + torch.sigmoid(x))

    return power(d.abs(), complement, beta) * bce(x, q)


def softmax_cross_entropy(
    x: Tensor, labels: Tensor, class_weight: Tensor | None, ignore_index: int
) -> Tensor:
    return F.cross_entropy(
        x, labels, weight=class_weight, ignore_index=ignore_index, reduction="none"
    )


def softmax_focal(x: Tensor, labels: Tensor, alpha: float, gamma: float) -> Tensor:
    """``-alpha (1 - p_t)**gamma log p_t`` per row, ``1 - p_t = -expm1(log p_t)``."""
    log_pt = torch.log_softmax(x, 1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return -alpha * (-torch.expm1(log_pt)) ** gamma * log_pt


def distribution_focal(x: Tensor, bins: Tensor, weights: Tensor) -> Tensor:
    """``-sum_k w_k log softmax(x)[bin_k]`` per row."""
    return -(torch.log_softmax(x, 1).gather(1, bins) * weights).sum(1)


@contextlib.contextmanager
def recording_saved_tensors(saved: list[torch.Tensor]) -> Iterator[None]:
    """Within the block, every tensor autograd saves for backward is appended to ``saved``."""

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield
