"""Softmax and sigmoid (binary) cross-entropy on logits, as mmdetection's ``cross_entropy`` and
``binary_cross_entropy``.

Both take raw logits, compute float16/bfloat16 in float32 (the loss comes back in float32) and
reduce through :func:`detloss.reduction.weight_reduce_loss` (``weight``, ``reduction`` in
{"none", "mean", "sum"}, ``avg_factor``). The values are PyTorch's (``F.cross_entropy``,
``F.binary_cross_entropy_with_logits``), label smoothing's computed without PyTorch's sum over
the classes, which overflows where the loss does not; the softmax cross-entropy of ``(N, C)``
logits without label smoothing takes its gradient from :mod:`detloss._fast.softmax` (the same
forward kernels), which keeps no logits-sized tensor for backward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss._fast import apply_function
from detloss._fast.softmax import SoftmaxCrossEntropy
from detloss._labels import (
    check_index_range,
    check_sigmoid_targets,
    check_targets,
    class_weight_tensor,
    dense_targets,
    is_dense,
    label_mask,
    loss_dtype,
    row_weight,
)
from detloss.checks import (
    check_floating,
    check_label_tensor,
    check_label_values,
    check_number,
    check_tensor,
    compute_dtype,
)
from detloss.reduction import check_weight, weight_reduce_loss

__all__ = ["binary_cross_entropy", "cross_entropy"]


def cross_entropy(
    logits: Tensor,
    labels: Tensor,
    *,
    class_weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    avg_non_ignore: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    check_labels: bool = False,
) -> Tensor:
    """Softmax cross-entropy on logits (mmdetection's ``cross_entropy``).

    ``loss_i = -class_weight[y_i] * log softmax(logits_i)[y_i]`` (with label smoothing ``eps``:
    ``(1 - eps) * that + eps / C * sum_c -class_weight[c] * log softmax(logits_i)[c]``); labels equal
    to ``ignore_index`` give 0.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        labels: integer class indices (any integer dtype), ``(N,)`` or ``(N, d1, ...)``.
        class_weight: ``(C,)`` per-class weights (PyTorch's ``weight``).
        ignore_index: label value that contributes nothing (default -100, as PyTorch).
        label_smoothing: ``eps`` in ``[0, 1]``.
        avg_non_ignore: "mean" divides by the number of non-ignored labels instead of all labels.
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.
        check_labels: raise ``ValueError`` naming the first label outside ``[0, C)`` other than
            ``ignore_index`` (reads the labels: a host synchronisation, hence off by default).

    Returns:
        The loss per label (``labels``' shape) for "none", else a scalar.

    "mean" is ``sum / number of labels`` (mmdetection), not PyTorch's weighted mean, which divides
    by ``sum(class_weight[y_i])`` over non-ignored labels: get that one as
    ``cross_entropy(..., reduction="sum") / class_weight[labels[labels != ignore_index]].sum()``.
    """
    x = check_floating(logits, "logits")
    y = check_label_tensor(labels, "labels")
    if x.dim() < 2 or y.shape != x.shape[:1] + x.shape[2:]:
        raise ValueError(
            f"logits (N, C, *) and labels (N, *) do not match: logits {tuple(x.shape)}, "
            f"labels {tuple(y.shape)}"
        )
    if check_labels:
        check_index_range(y, x.shape[1], background=False, ignore_index=ignore_index)
    smoothing = check_number(label_smoothing, "label_smoothing", low=0.0, strict=False)
    if smoothing > 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    x = x.to(compute_dtype(x))
    w = class_weight_tensor(class_weight, x)
    if smoothing > 0:
        loss = _label_smoothed(x, y, w, ignore_index, smoothing)
    elif x.dim() == 2:
        loss = apply_function(SoftmaxCrossEntropy, x, y, w, ignore_index)
    else:
        loss = F.cross_entropy(x, y, weight=w, ignore_index=ignore_index, reduction="none")
    if avg_non_ignore and reduction == "mean" and avg_factor is None:
        avg_factor = (y != ignore_index).sum().clamp_min(1).to(loss.dtype)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def _label_smoothed(
    x: Tensor, y: Tensor, w: Tensor | None, ignore_index: int, smoothing: float
) -> Tensor:
    """PyTorch's label-smoothed cross-entropy per label, ``(1 - eps) nll_i + sum_c -(eps / C)
    w_c log p_ic`` (0 where ``y_i = ignore_index``), with each term of the sum scaled by
    ``eps / C`` before it is added: ``C`` log-probabilities near the float range overflow in a
    sum where the loss, their weighted mean, is representable."""
    log_p = torch.log_softmax(x, 1)
    nll = F.nll_loss(log_p, y, w, ignore_index=ignore_index, reduction="none")
    scale: Tensor | float = -smoothing / x.shape[1]
    if w is not None:
        scale = (w * scale).view(-1, *(1,) * (x.dim() - 2))
    smooth = (log_p * scale).sum(1).masked_fill(y == ignore_index, 0.0)
    return nll * (1 - smoothing) + smooth


def binary_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    *,
    pos_weight: Tensor | None = None,
    class_weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    avg_non_ignore: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    check_labels: bool = False,
) -> Tensor:
    """Sigmoid (binary) cross-entropy on logits (mmdetection's ``binary_cross_entropy``).

    ``loss = -(pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x))) * class_weight``
    computed from the logits by PyTorch's ``binary_cross_entropy_with_logits``.

    Args:
        logits: ``(N, C)`` (or any shape with floating / binary integer targets of the same shape).
        targets: floating targets of the logits' shape; integer labels of the logits' shape
            (binary 0/1, negative values and ``ignore_index`` ignored, e.g. RPN labels with -1);
            or class indices ``(N,)`` for ``(N, C)`` logits (``C`` and above: background, an
            all-zero row; negative and ``ignore_index`` rows ignored).
        pos_weight: weight of the positive term, broadcast along the last dimension (PyTorch).
        class_weight: per-class weights, broadcast along the last dimension as ``pos_weight``
            (``(C,)`` for ``(N, C)`` logits; its length must be the logits' last dimension).
        avg_non_ignore: "mean" divides by the number of non-ignored elements instead of all.
        weight: element-wise weight; a 1-D weight of length N on ``(N, C)`` logits weights rows.
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.
        check_labels: for integer targets, raise ``ValueError`` naming the first bad label: binary
            labels must be 1, 0, negative or ``ignore_index``; class indices in ``[0, C]``,
            negative or ``ignore_index`` (reads the labels: a host synchronisation, hence off by
            default).

    Returns:
        The element-wise loss (the logits' shape) for "none", else a scalar.
    """
    x = check_floating(logits, "logits")
    y = check_targets(targets)
    labels: Tensor | None = None
    if is_dense(y) or y.shape == x.shape:
        if y.shape != x.shape:
            raise ValueError(
                f"targets must have the logits' shape {tuple(x.shape)}, got {tuple(y.shape)}"
            )
        if not is_dense(y):
            labels = check_label_tensor(y, "targets")
            if check_labels:
                allowed = (labels <= 1) | (labels == ignore_index)
                check_label_values(labels, allowed, f"1, 0, negative or {ignore_index} (ignored)")
            y = labels.clamp(0, 1).to(compute_dtype(x))
    else:
        x, labels = check_sigmoid_targets(x, y)
        if check_labels:
            check_index_range(labels, x.shape[1], background=True, ignore_index=ignore_index)
        y = labels
    x = x.to(loss_dtype(x, y))
    t = dense_targets(y, x)
    pw = None if pos_weight is None else check_tensor(pos_weight, "pos_weight").to(x.dtype)
    loss = F.binary_cross_entropy_with_logits(
        x, t, weight=class_weight_tensor(class_weight, x, -1), pos_weight=pw, reduction="none"
    )
    weight = row_weight(weight, x)
    if labels is not None:
        mask = label_mask(labels, loss.shape, x.dtype, ignore_index).expand(loss.shape)
        weight = mask if weight is None else check_weight(weight, loss.shape).to(x.dtype) * mask
        if avg_non_ignore and reduction == "mean" and avg_factor is None:
            avg_factor = mask.sum().clamp_min(1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)
