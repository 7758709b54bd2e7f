"""Quality-aware classification losses of dense detectors: the varifocal loss (VarifocalNet) and
the quality and distribution focal losses of Generalized Focal Loss.

All take raw logits, compute float16/bfloat16 in float32 (the loss comes back in float32) and
reduce through :func:`detloss.reduction.weight_reduce_loss`. Their targets (IoU scores, box
distances) are constants: they receive no gradient, as mmdetection's heads detach them.

The varifocal and quality focal losses and their derivatives come from :mod:`detloss._fast.gfl`:
the binary cross-entropy inside them is a sum of non-negative terms and their focal factor
``|sigmoid(x) - q|`` is never formed as ``1 - sigmoid``, so a confident correct logit keeps all
its digits (within a few units in the last place of the exact value, tested from -100 to 100),
and the derivative stays finite for every finite logit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from detloss._fast import apply_function
from detloss._fast.gfl import QualityFocal, Varifocal
from detloss._labels import (
    check_index_range,
    check_sigmoid_targets,
    dense_targets,
    ignoring_labels,
    is_dense,
    loss_dtype,
    prob_bce,
)
from detloss.checks import check_exponent, check_factor, check_floating, check_number
from detloss.reduction import check_weight, weight_reduce_loss

__all__ = [
    "distribution_focal_loss",
    "quality_focal_loss",
    "quality_focal_loss_with_prob",
    "varifocal_loss",
]


def varifocal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
    *,
    positive: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Varifocal loss (Zhang et al., VarifocalNet, CVPR 2021), as mmdetection's ``varifocal_loss``.

    With ``p = sigmoid(x)`` and the IoU-aware target ``q`` (IoU with the ground truth for the
    positive class, 0 elsewhere)::

        loss = -q (q log p + (1 - q) log(1 - p))     positives   (factor q only if iou_weighted)
               -alpha p**gamma log(1 - p)            negatives

    Args:
        logits, targets: ``(N, C)`` of the same shape; targets in ``[0, 1]``.
        alpha: in ``[0, 1e30]`` (default 0.75); gamma: 0 or in ``[1e-30, 1e30]`` (default 2).
        iou_weighted: weight positives by ``q`` (mmdetection's default True).
        positive: the positives, a mask that broadcasts to the logits' shape (bool, or numbers:
            nonzero is positive); ``None`` (default, mmdetection) is ``targets > 0``. A positive of
            target 0 has the loss ``-log(1 - p)``, times ``q = 0`` if iou_weighted (ultralytics'
            matched query of IoU 0); a negative's target is not read.
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    Returns:
        The element-wise loss (the logits' shape) for "none", else a scalar.

    As in mmdetection, the negatives' focal factor ``p**gamma`` is differentiated (not detached).
    """
    x = check_floating(logits, "logits")
    q = check_floating(targets, "targets")
    if q.shape != x.shape:
        raise ValueError(
            f"targets must have the logits' shape {tuple(x.shape)}, got {tuple(q.shape)}"
        )
    a = check_factor(alpha, "alpha")
    g = check_exponent(gamma, "gamma")
    dtype = loss_dtype(x, q)
    x, q, iw = x.to(dtype), q.detach().to(dtype), bool(iou_weighted)
    if positive is None:
        is_positive = torch.gt(q, 0)
    else:
        is_positive = check_weight(positive, x.shape, "positive").to(torch.bool)
        q = torch.where(is_positive, q, 0)  # a negative's target is not read
    loss = apply_function(Varifocal, x, q, is_positive, a, g, iw)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def quality_focal_loss(
    logits: Tensor,
    targets: Tensor,
    scores: Tensor | None = None,
    beta: float = 2.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    check_labels: bool = False,
) -> Tensor:
    """Quality focal loss (Li et al., Generalized Focal Loss, NeurIPS 2020), one value per row.

    With ``p = sigmoid(x)`` and the soft target ``q`` (the IoU score at the ground-truth class, 0
    elsewhere)::

        loss_i = sum_c |q_ic - p_ic|**beta * BCE(x_ic, q_ic)

    Args:
        logits: ``(N, C)``.
        targets: either the dense soft targets ``(N, C)`` (then ``scores`` is None), or class
            indices ``(N,)`` (``C`` and above: background; negative: ignored), together with
            ``scores`` ``(N,)``: mmdetection's ``(label, score)`` tuple.
        beta: 0 or in ``[1e-30, 1e30]`` (default 2).
        weight, reduction, avg_factor: on the ``(N,)`` row losses; see
            :func:`detloss.reduction.weight_reduce_loss`.
        check_labels: for class indices, raise ``ValueError`` naming the first label above ``C``
            (reads the labels: a host synchronisation, hence off by default).

    Returns:
        The loss per row ``(N,)`` for "none", else a scalar.

    As mmdetection's ``quality_focal_loss``, the factor ``|q - p|**beta`` is differentiated.
    """
    x, t = check_sigmoid_targets(logits, targets)
    if scores is None:
        if not t.dtype.is_floating_point:
            raise TypeError("class-index targets need scores (N,); dense targets must be floating")
        dtype = loss_dtype(x, t)
        x = x.to(dtype)
        q = t.detach().to(dtype)
    else:
        s = check_floating(scores, "scores")
        if is_dense(t) or s.shape != t.shape:
            raise ValueError(
                "scores (N,) go with integer class indices (N,), got targets "
                f"{tuple(t.shape)} {t.dtype} and scores {tuple(s.shape)}"
            )
        if check_labels:
            check_index_range(t, x.shape[1], background=True)
        x = x.to(loss_dtype(x, s))
        q = dense_targets(t, x) * s.detach().to(x.dtype).unsqueeze(1)
    b = check_exponent(beta, "beta")
    loss = apply_function(QualityFocal, x, q, b).sum(dim=-1)
    weight = ignoring_labels(weight, t, loss.shape, loss.dtype)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def quality_focal_loss_with_prob(
    probs: Tensor,
    targets: Tensor,
    scores: Tensor | None = None,
    beta: float = 2.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """The quality focal loss of probabilities (mmdetection's ``quality_focal_loss_with_prob`` and
    ``quality_focal_loss_tensor_target(activated=True)``, used by
    ``QualityFocalLoss(activated=True)``): ``loss_i = sum_c |q_ic - p_ic|**beta * BCE(p_ic, q_ic)``.

    ``BCE`` is PyTorch's ``binary_cross_entropy`` (logs floored at -100: finite at ``p`` = 0 or 1);
    ``probs`` ``(N, C)`` in ``[0, 1]`` (outside: NaN); targets, scores, beta, weight and reduction
    as :func:`quality_focal_loss`.
    """
    p, t = check_sigmoid_targets(probs, targets)
    if scores is None:
        if not t.dtype.is_floating_point:
            raise TypeError("class-index targets need scores (N,); dense targets must be floating")
        p = p.to(loss_dtype(p, t))
        q = t.detach().to(p.dtype)
    else:
        s = check_floating(scores, "scores")
        if is_dense(t) or s.shape != t.shape:
            raise ValueError(
                "scores (N,) go with integer class indices (N,), got targets "
                f"{tuple(t.shape)} {t.dtype} and scores {tuple(s.shape)}"
            )
        p = p.to(loss_dtype(p, s))
        q = dense_targets(t, p) * s.detach().to(p.dtype).unsqueeze(1)
    b = check_exponent(beta, "beta")
    loss = (prob_bce(p, q) * (q - p).abs().pow(b)).sum(dim=-1)
    weight = ignoring_labels(weight, t, loss.shape, loss.dtype)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def distribution_focal_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    max_target: float | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Distribution focal loss (Li et al., Generalized Focal Loss, NeurIPS 2020), one value per row.

    For a continuous target ``y`` between the bins ``l = floor(y)`` and ``r = l + 1``, with
    ``S = softmax(logits)`` over the ``n + 1`` bins::

        loss = -((r - y) log S_l + (y - l) log S_r)

    Args:
        logits: ``(N, n + 1)`` bin logits (mmdetection: ``reg_max + 1``), or ``(N, k, n + 1)``.
        targets: floating distances, ``(N,)`` or ``(N, k)`` with ``k >= 1`` (e.g. a box's four
            sides): a row's loss is the mean over its ``k`` distances (ultralytics' ``DFLoss``).
            Values outside ``[0, max_target]`` are clamped (``y = n`` puts all mass on the last
            bin, where mmdetection would index past it); a NaN target gives a NaN loss for its row.
        max_target: in ``[0, n]``, the largest distance (default ``n``; ultralytics clamps to
            ``n - 0.01``).
        weight, reduction, avg_factor: on the ``(N,)`` row losses; see
            :func:`detloss.reduction.weight_reduce_loss`.

    Returns:
        The loss per row ``(N,)`` for "none", else a scalar.
    """
    x = check_floating(logits, "logits")
    y = check_floating(targets, "targets")
    if y.dim() not in (1, 2) or x.shape[:-1] != y.shape or x.shape[-1] < 2 or 0 in y.shape[1:]:
        raise ValueError(
            "logits must be (N, n + 1) or (N, k, n + 1) and targets (N,) or (N, k), with n >= 1 "
            f"and k >= 1, got logits {tuple(x.shape)} and targets {tuple(y.shape)}"
        )
    n = x.shape[-1] - 1
    top = (
        n
        if max_target is None
        else check_number(max_target, "max_target", low=0, strict=False, high=n)
    )
    if y.dim() == 1:  # one distance per row
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    x = x.to(loss_dtype(x, y))
    distance = y.detach().to(x.dtype).clamp(0, top)
    # The bins come from a NaN-free copy (a NaN index is undefined); a NaN target keeps its NaN
    # in the bin weights, so its row's loss is NaN (read no values: no host synchronisation).
    left = torch.nan_to_num(distance, nan=0.0).floor().clamp_max(n - 1)
    w_right = (distance - left).unsqueeze(-1)
    index = left.long().unsqueeze(-1)
    bins = torch.cat([index, index + 1], dim=-1)
    weights = torch.cat([1 - w_right, w_right], dim=-1)
    loss = -(torch.log_softmax(x, -1).gather(-1, bins) * weights).sum(dim=-1).mean(dim=-1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)
