"""The Seesaw loss (Wang et al., "Seesaw Loss for Long-Tailed Instance Segmentation", CVPR 2021),
mmdetection's ``seesaw_ce_loss``: softmax cross-entropy whose negative logits are shifted by
``log S_ij`` so that a rare class ``j`` receives less negative gradient from the samples of a
frequent class ``i``.

For a sample of class ``i`` and another class ``j``, with ``N_k`` the number of samples of class
``k`` seen so far (clamped at 1) and ``sigma`` the softmax of the logits (a constant for the
gradient, as mmdetection's ``cls_score.detach()``):

    S_ij = M_ij C_ij,   M_ij = (N_j / N_i)^p if N_j < N_i else 1            (mitigation)
                        C_ij = (sigma_j / max(sigma_i, eps))^q if > 1 else 1 (compensation)
    loss = -log( exp(z_i) / (exp(z_i) + sum_{j != i} S_ij exp(z_j)) )

i.e. cross-entropy of ``z + (1 - onehot) log S``. ``log M = p min(log N_j - log N_i, 0)`` and
``log C = q max(log_softmax_j - max(log_softmax_i, log eps), 0)`` are computed in log space (equal to
mmdetection's ``log(M^p C^q)``, and free of the underflow of ``sigma_j`` to 0). ``p = 0`` / ``q = 0``
switch the factors off (mmdetection's ``if p > 0`` / ``if q > 0``).

The class counts are the state of :class:`detloss.SeesawLoss`, which also adds the objectness
cross-entropy of mmdetection's ``C + 2`` output channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss.checks import (
    check_divisor,
    check_factor,
    check_floating,
    check_label_tensor,
    check_tensor,
    compute_dtype,
)
from detloss.reduction import weight_reduce_loss

__all__ = ["seesaw_ce_loss"]


def _log_mitigation(cum_samples: Tensor, labels: Tensor, p: float) -> Tensor:
    log_count = cum_samples.clamp_min(1).log()
    return p * (log_count.unsqueeze(0) - log_count[labels].unsqueeze(1)).clamp_max(0)


def _log_compensation(z: Tensor, labels: Tensor, q: float, eps: float) -> Tensor:
    log_scores = z.detach().log_softmax(dim=1)
    own = log_scores.gather(1, labels.unsqueeze(1)).clamp_min(math.log(eps))
    return q * (log_scores - own).clamp_min(0)


def check_parameters(p: float, q: float, eps: float) -> tuple[float, float, float]:
    """``p`` and ``q`` in [0, 1e30], ``eps`` in [1e-30, 1e30]."""
    return check_factor(p, "p"), check_factor(q, "q"), check_divisor(eps, "eps")


def seesaw_ce_loss(
    cls_score: Tensor,
    labels: Tensor,
    cum_samples: Tensor,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Seesaw cross-entropy over ``C`` classes (mmdetection's ``seesaw_ce_loss``).

    Args:
        cls_score: class logits ``(N, C)`` (without mmdetection's two objectness channels).
        labels: integer class indices ``(N,)``; a label outside ``[0, C)`` (background) contributes 0
            (mmdetection passes only the positive rows).
        cum_samples: ``(C,)`` number of samples of each class seen so far.
        p: mitigation exponent (in [0, 1e30], default 0.8).
        q: compensation exponent (in [0, 1e30], default 2.0).
        eps: lower clamp of the sample's own class probability (in [1e-30, 1e30], default 1e-2).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`; "mean"
            divides by ``N`` including background rows, so pass the number of positives as
            ``avg_factor`` to average over them (the module does).

    Returns:
        ``(N,)`` for "none", a scalar otherwise.
    """
    pp, qq, e = check_parameters(p, q, eps)
    x = check_floating(cls_score, "cls_score")
    y = check_label_tensor(labels)
    counts = check_tensor(cum_samples, "cum_samples")
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(
            f"cls_score must be (N, C) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if counts.shape != x.shape[1:]:
        raise ValueError(f"cum_samples must have shape ({x.shape[1]},), got {tuple(counts.shape)}")
    z = x.to(compute_dtype(x))
    positive = (y >= 0) & (y < x.shape[1])
    safe = torch.where(positive, y, 0)
    shift = z.new_zeros(())
    if pp > 0:
        shift = shift + _log_mitigation(counts.to(z.dtype), safe, pp)
    if qq > 0:
        shift = shift + _log_compensation(z, safe, qq, e)
    negatives = safe.unsqueeze(1) != torch.arange(x.shape[1], device=x.device)
    loss = F.cross_entropy(z + shift * negatives, torch.where(positive, y, -100), reduction="none")
    return weight_reduce_loss(loss, weight, reduction, avg_factor)
