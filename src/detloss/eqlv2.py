"""Equalization Loss v2 (Tan et al., "Equalization Loss v2: A New Gradient Balance Approach for
Long-tailed Object Detection", CVPR 2021), mmdetection's ``EQLV2Loss``.

Sigmoid cross-entropy over ``C = K + 1`` channels (``K`` classes, the last channel background /
objectness) whose positive and negative terms are re-weighted per class from the ratio ``r_k`` of
the positive to the negative gradient that class ``k`` has accumulated so far:

    f_k = 1 / (1 + exp(-gamma (r_k - mu)))          (f = 1 for the background channel)
    w_neg_k = f_k,   w_pos_k = 1 + alpha (1 - f_k)
    loss_i = sum_k BCE(x_ik, t_ik) (w_pos_k t_ik + w_neg_k (1 - t_ik)),   t_i = onehot(label_i)

The ratio ``r`` is the state of :class:`detloss.EQLV2Loss`: after each step it adds, per class, the
gradient magnitudes ``|sigmoid(x_ik) - t_ik|`` times the weights above, of the positives and of the
negatives (:func:`eqlv2_gradient_statistics`, mmdetection's ``collect_grad``), and sets
``r = pos_grad / (neg_grad + 1e-10)``. mmdetection starts from ``r = 100`` (weights 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss._labels import dense_targets, label_mask
from detloss.checks import (
    LARGEST,
    check_factor,
    check_floating,
    check_label_tensor,
    check_number,
    check_tensor,
    compute_dtype,
)
from detloss.reduction import weight_reduce_loss

__all__ = ["eqlv2_loss"]


def _check_inputs(
    cls_score: object, labels: object, pos_neg: object
) -> tuple[Tensor, Tensor, Tensor]:
    x = check_floating(cls_score, "cls_score")
    y = check_label_tensor(labels)
    r = check_tensor(pos_neg, "pos_neg")
    if x.dim() != 2 or y.shape != x.shape[:1] or r.shape != (x.shape[1] - 1,):
        raise ValueError(
            "cls_score must be (N, K + 1), labels (N,) and pos_neg (K,), got "
            f"{tuple(x.shape)}, {tuple(y.shape)} and {tuple(r.shape)}"
        )
    return x.to(compute_dtype(x)), y, r


def check_parameters(gamma: float, mu: float, alpha: float) -> tuple[float, float, float]:
    """``gamma`` and ``alpha`` in [0, 1e30], ``mu`` in [-1e30, 1e30]."""
    return (
        check_factor(gamma, "gamma"),
        check_number(mu, "mu", low=-LARGEST, strict=False, high=LARGEST),
        check_factor(alpha, "alpha"),
    )


def _targets_and_weights(
    x: Tensor, labels: Tensor, pos_neg: Tensor, gamma: float, mu: float, alpha: float
) -> tuple[Tensor, Tensor]:
    """One-hot targets and EQLv2's element weights ``w_pos t + w_neg (1 - t)`` (0 on the rows of
    negative labels, which are ignored)."""
    t = dense_targets(labels, x)
    ratio = pos_neg.detach().to(device=x.device, dtype=x.dtype)
    neg = torch.cat([torch.sigmoid(gamma * (ratio - mu)), ratio.new_ones(1)])
    pos = 1 + alpha * (1 - neg)
    return t, torch.where(t > 0, pos, neg) * label_mask(labels, x.shape, x.dtype)


def eqlv2_loss(
    cls_score: Tensor,
    labels: Tensor,
    pos_neg: Tensor,
    gamma: float = 12.0,
    mu: float = 0.8,
    alpha: float = 4.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """EQLv2's re-weighted sigmoid cross-entropy, summed over the channels of each row.

    Args:
        cls_score: logits ``(N, K + 1)``, the last channel background (mmdetection's bbox head).
        labels: integer labels ``(N,)`` in ``[0, K]`` (``K``: background); a label above ``K``
            gives an all-zero target row, a negative one is ignored (a row of weight 0).
        pos_neg: ``(K,)`` accumulated positive-to-negative gradient ratio (the module's state).
        gamma: steepness of the mapping ``f`` (in [0, 1e30], default 12).
        mu: centre of the mapping ``f`` (in [-1e30, 1e30], default 0.8).
        alpha: extra weight of the positives of rare classes (in [0, 1e30], default 4.0).
        weight: per-row ``(N,)`` weight (mmdetection ignores it).
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`; "mean" is the sum
            over the rows divided by ``N``, mmdetection's ``sum / n_i``.

    Returns:
        ``(N,)`` for "none", a scalar otherwise.
    """
    g, m, a = check_parameters(gamma, mu, alpha)
    x, y, r = _check_inputs(cls_score, labels, pos_neg)
    t, w = _targets_and_weights(x, y, r, g, m, a)
    loss = (F.binary_cross_entropy_with_logits(x, t, reduction="none") * w).sum(dim=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def eqlv2_gradient_statistics(
    cls_score: Tensor,
    labels: Tensor,
    pos_neg: Tensor,
    gamma: float = 12.0,
    mu: float = 0.8,
    alpha: float = 4.0,
    weight: Tensor | None = None,
) -> Tensor:
    """One step's ``(2, K)`` positive and negative gradient magnitudes per class (float32, or
    float64 for float64 logits): ``sum_i |sigmoid(x_ik) - t_ik| w_ik t_ik`` and the same over
    ``1 - t_ik``, times the row weight if given; the background channel is left out (mmdetection's
    ``collect_grad``). No gradient flows through it."""
    g, m, a = check_parameters(gamma, mu, alpha)
    x, y, r = _check_inputs(cls_score, labels, pos_neg)
    x = x.detach()
    t, w = _targets_and_weights(x, y, r, g, m, a)
    grad = (torch.sigmoid(x) - t).abs() * w
    if weight is not None:
        grad = grad * check_tensor(weight, "weight").to(x.dtype).reshape(-1, 1)
    return torch.stack([(grad * t).sum(dim=0), (grad * (1 - t)).sum(dim=0)])[:, :-1]
