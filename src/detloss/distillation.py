"""Knowledge distillation by KL divergence (Hinton, Vinyals & Dean, "Distilling the Knowledge in a
Neural Network", 2015), mmdetection's ``knowledge_distillation_kl_div_loss`` (used by LD and
GFL-based distillation heads).

With temperature ``T``, student logits ``z`` and teacher logits ``s`` (rows of ``C`` classes):

    loss = T^2 * (1 / C) sum_c q_c (log q_c - log_softmax(z / T)_c),   q = softmax(s / T)

i.e. ``T^2`` times the class-wise mean (mmdetection's ``.mean(1)``, not the sum: the KL divergence
divided by ``C``) of PyTorch's ``kl_div`` terms; ``q_c = 0`` contributes 0. ``T^2`` keeps the
gradient's scale independent of ``T``. The teacher's distribution is a constant unless
``detach_target=False``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss.checks import check_number, prepare_pair
from detloss.reduction import weight_reduce_loss

__all__ = ["knowledge_distillation_kl_div_loss"]


def check_temperature(T: object) -> float:  # noqa: N803 - mmdetection's name
    """``T`` in [1, 1e4]: at least 1 (mmdetection), so that ``logits / T`` cannot overflow, and at
    most 1e4, where ``T^2`` times the float32 rounding of the log-probabilities stays below the
    loss's own scale (mmdetection's detectors use 10)."""
    return check_number(T, "T", low=1.0, strict=False, high=1e4)


def knowledge_distillation_kl_div_loss(
    pred: Tensor,
    soft_label: Tensor,
    T: float = 10.0,  # noqa: N803 - mmdetection's name
    *,
    detach_target: bool = True,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """KL-divergence distillation loss per row (mmdetection's convention, default ``T = 10``).

    Args:
        pred: student logits ``(N, C)``.
        soft_label: teacher logits ``(N, C)``.
        T: temperature, in [1, 1e4] (``>= 1`` as mmdetection's module).
        detach_target: treat the teacher's distribution as a constant (default, mmdetection's).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    Returns:
        ``(N,)`` for "none", a scalar otherwise.
    """
    temperature = check_temperature(T)
    z, s = prepare_pair(pred, soft_label)
    if z.dim() != 2:
        raise ValueError(f"pred and soft_label must be (N, C), got {tuple(z.shape)}")
    # PyTorch's kl_div terms q (log q - log p) from log q (log(softmax) would be -inf where the
    # softmax underflows), 0 where q is 0 with a zero gradient (the product rule's
    # gradient * (log q - log p) would overflow there first)
    log_target = F.log_softmax(s / temperature, dim=1)
    if detach_target:
        log_target = log_target.detach()
    log_student = F.log_softmax(z / temperature, dim=1)
    target = log_target.exp()
    kl = torch.where(target > 0, target * (log_target - log_student), 0.0).mean(dim=1)
    return weight_reduce_loss(kl * (temperature * temperature), weight, reduction, avg_factor)
