"""The focal losses (Lin et al., Focal Loss for Dense Object Detection, ICCV 2017): sigmoid, FL*
and softmax.

All take raw logits, compute float16/bfloat16 in float32 (the loss comes back in float32) and reduce
through :func:`detloss.reduction.weight_reduce_loss`. Targets receive no gradient. The sigmoid
losses accept the label formats of :mod:`detloss._labels` (dense targets of the logits' shape, or
class indices ``(N,)``: ``C`` and above background, negative ignored).

Precision: the cross-entropy inside the focal loss is ``t softplus(-x) + (1 - t) softplus(x)``,
evaluated as a sum of non-negative terms, and ``1 - p_t`` as ``t sigmoid(-x) + (1 - t) sigmoid(x)``,
never as a difference: the loss of a confident correct logit keeps all its digits (within a few
units in the last place of the exact value, tested from -100 to 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from detloss._fast import apply_function
from detloss._fast.sigmoid_focal import SigmoidFocal
from detloss._fast.softmax import SoftmaxFocal
from detloss._labels import (
    alpha_weight,
    check_alpha,
    check_class_indices,
    check_index_range,
    check_sigmoid_targets,
    class_weight_tensor,
    dense_targets,
    is_dense,
    loss_dtype,
    prob_bce,
    row_weight,
)
from detloss.checks import check_divisor, check_exponent, compute_dtype
from detloss.reduction import weight_reduce_loss

__all__ = [
    "focal_loss_with_prob",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "softmax_focal_loss",
]


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    check_labels: bool = False,
) -> Tensor:
    """Sigmoid focal loss (Lin et al., Focal Loss for Dense Object Detection, ICCV 2017).

    With ``p = sigmoid(x)``, ``p_t = p t + (1 - p)(1 - t)``, ``alpha_t = alpha t + (1 - alpha)(1 - t)``::

        loss = alpha_t * (1 - p_t)**gamma * ce,   ce = t softplus(-x) + (1 - t) softplus(x)

    (``ce = -log p_t`` for hard targets; the binary cross-entropy on logits for soft ``t``).

    Args:
        logits: ``(N, C)`` (any shape with floating targets).
        targets: one-hot / soft float targets of the logits' shape, or class indices ``(N,)``
            (``C`` and above: background; negative: ignored, a row of weight 0).
        alpha: in ``[0, 1]``; ``None`` or negative (fvcore's -1) = no alpha weighting. ``alpha=1``
            zeroes the negatives' terms exactly, ``alpha=0`` the positives'.
        gamma: 0 or in ``[1e-30, 1e30]`` (float32 represents it). ``gamma=0`` is PyTorch's
            ``binary_cross_entropy_with_logits`` element for element (times ``alpha_t``).
        weight: element-wise; a 1-D weight of length N on ``(N, C)`` logits weights rows.
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`. "mean" divides by
            all ``N*C`` elements, as fvcore and torchvision (mmcv's CUDA op divides by N); dense
            heads pass ``avg_factor`` = number of positives.
        check_labels: for class indices, raise ``ValueError`` naming the first label above ``C``
            (reads the labels: a host synchronisation, hence off by default).

    Returns:
        The element-wise loss (the logits' shape) for "none", else a scalar.

    Conventions: torchvision ``sigmoid_focal_loss`` and mmdetection ``FocalLoss`` default to
    ``alpha=0.25, gamma=2`` (as here); fvcore's default ``alpha=-1`` is ``alpha=None``. For
    ``gamma > 0`` the value and its derivative come from :mod:`detloss._fast.sigmoid_focal`.
    """
    x, y = check_sigmoid_targets(logits, targets)
    if check_labels and not is_dense(y):
        check_index_range(y, x.shape[1], background=True)
    a = check_alpha(alpha)
    g = check_exponent(gamma, "gamma")
    x = x.to(loss_dtype(x, y))
    t = dense_targets(y.detach(), x)
    if g == 0:
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        if a is not None:
            loss = loss * alpha_weight(t, a)
    else:
        loss = apply_function(SigmoidFocal, x, t, a, g)
    return weight_reduce_loss(loss, row_weight(weight, x, y), reduction, avg_factor)


def focal_loss_with_prob(
    probs: Tensor,
    targets: Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """The sigmoid focal loss of probabilities (mmdetection's ``py_focal_loss_with_prob``, used by
    ``FocalLoss(activated=True)``): with ``p_t = p t + (1 - p)(1 - t)``::

        loss = alpha_t * (1 - p_t)**gamma * BCE(p, t)

    ``BCE`` is PyTorch's ``binary_cross_entropy`` (logs floored at -100, so ``p`` = 0 or 1 stays
    finite, with a finite gradient); ``probs`` in ``[0, 1]`` (outside: NaN). Targets, ``alpha``,
    ``gamma``, weight and reduction as :func:`sigmoid_focal_loss`. Prefer logits: the loss of a
    probability close to 1 has lost the digits that the logit keeps.
    """
    p, y = check_sigmoid_targets(probs, targets)
    a = check_alpha(alpha)
    g = check_exponent(gamma, "gamma")
    p = p.to(loss_dtype(p, y))
    t = dense_targets(y.detach(), p)
    loss = prob_bce(p, t) * ((1 - p) * t + p * (1 - t)).pow(g)
    if a is not None:
        loss = loss * alpha_weight(t, a)
    return weight_reduce_loss(loss, row_weight(weight, p, y), reduction, avg_factor)


def sigmoid_focal_loss_star(
    logits: Tensor,
    targets: Tensor,
    alpha: float | None = None,
    gamma: float = 1.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    check_labels: bool = False,
) -> Tensor:
    """FL* (Lin et al. 2017, appendix): ``loss = -alpha_t * log(sigmoid(gamma * x * (2t - 1))) / gamma``.

    Evaluated as ``alpha_t * softplus(gamma * y) / gamma`` with ``y = x (1 - 2t)`` (``y`` itself
    where ``gamma * y > 40``, so that no huge logit overflows). ``gamma`` in ``[1e-30, 1e30]``
    (it divides); ``alpha`` as :func:`sigmoid_focal_loss`. Defaults are fvcore's
    ``sigmoid_focal_loss_star`` (``alpha=-1`` = ``None``, ``gamma=1``); labels, weight, reduction
    and ``check_labels`` as :func:`sigmoid_focal_loss`.

    For hard targets ``gamma * y`` is exact when ``gamma`` is a power of two (fvcore's 1 included)
    and the loss is then within a few ulp of the exact value; otherwise ``gamma * y`` is rounded
    once, an error that the exponential tail of the loss amplifies by ``|gamma * y|`` (the
    conditioning of ``exp``).
    """
    x, y = check_sigmoid_targets(logits, targets)
    if check_labels and not is_dense(y):
        check_index_range(y, x.shape[1], background=True)
    g = check_divisor(gamma, "gamma")
    a = check_alpha(alpha)
    x = x.to(loss_dtype(x, y))
    t = dense_targets(y.detach(), x)
    # beyond beta z = 40, softplus(z) = z to within half an ulp even in float64 (exp(-40) < 2^-57):
    # the linear branch is exact there and keeps a huge logit from overflowing
    loss = F.softplus(x * (1 - 2 * t), beta=g, threshold=40.0)
    if a is not None:
        loss = loss * alpha_weight(t, a)
    return weight_reduce_loss(loss, row_weight(weight, x, y), reduction, avg_factor)


def softmax_focal_loss(
    logits: Tensor,
    labels: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    *,
    class_weight: Tensor | Sequence[float] | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    check_labels: bool = False,
) -> Tensor:
    """Softmax focal loss (mmcv's ``softmax_focal_loss``), one value per row.

    With ``p = softmax(logits_i)`` and ``p_t = p[y_i]``::

        loss_i = -alpha * class_weight[y_i] * (1 - p_t)**gamma * log(p_t)

    ``1 - p_t`` is ``-expm1(log p_t)``, exact where ``p_t`` is close to 1. The gradient comes from
    :mod:`detloss._fast.softmax` (no logits-sized tensor kept for backward).

    Args:
        logits: ``(N, C)``; labels: int64 ``(N,)`` in ``[0, C)`` (the background is a class here).
        alpha: scalar in ``[0, 1]`` (mmcv default 0.25); gamma: 0 or in ``[1e-30, 1e30]``.
        class_weight: ``(C,)`` per-class weights (mmcv's ``weight`` argument).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`; "mean"
            divides by N, as mmcv.
        check_labels: raise ``ValueError`` naming the first label outside ``[0, C)`` (reads the
            labels: a host synchronisation, hence off by default).

    Returns:
        The loss per row ``(N,)`` for "none", else a scalar.
    """
    x, y = check_class_indices(logits, labels)
    if check_labels:
        check_index_range(y, x.shape[1], background=False)
    a = check_alpha(alpha)
    if a is None:
        raise ValueError(f"alpha must be in [0, 1] for the softmax focal loss, got {alpha!r}")
    g = check_exponent(gamma, "gamma")
    x = x.to(compute_dtype(x))
    loss = apply_function(SoftmaxFocal, x, y, a, g)
    w = class_weight_tensor(class_weight, x)
    if w is not None:
        loss = loss * w[y]
    return weight_reduce_loss(loss, weight, reduction, avg_factor)
