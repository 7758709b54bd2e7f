"""Label formats and per-class / per-row weights shared by the classification losses.

Sigmoid losses take logits of shape ``(N, C)`` (or any shape with floating targets) and targets in
one of two formats:

* a floating (or bool) tensor of the logits' shape: one-hot or soft targets in ``[0, 1]``;
* class indices of shape ``(N,)``, of any integer dtype: ``C`` and above are background, an
  all-zero target row (mmdetection's convention), and a negative index is ignored (a row of zero
  weight). The table of every loss's labels is in ``docs/classification.md``.

Every check reads shapes, dtypes and Python numbers only, never tensor values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detloss.checks import (
    check_floating,
    check_label_tensor,
    check_label_values,
    check_number,
    check_tensor,
    compute_dtype,
)
from detloss.reduction import check_weight


def is_dense(targets: Tensor) -> bool:
    """Whether ``targets`` are dense (floating or bool) rather than integer class indices."""
    return targets.dtype.is_floating_point or targets.dtype == torch.bool


def check_targets(targets: object) -> Tensor:
    """Sigmoid targets: a real tensor (floating or bool targets, or integer labels)."""
    t = check_tensor(targets, "targets")
    if t.dtype.is_complex:
        raise TypeError(
            "targets must be a real tensor (floating or bool targets, or integer class indices), "
            f"got dtype {t.dtype}"
        )
    return t


def check_sigmoid_targets(logits: object, targets: object) -> tuple[Tensor, Tensor]:
    """Check logits and targets in one of the two sigmoid label formats (see the module doc)."""
    x = check_floating(logits, "logits")
    t = check_targets(targets)
    if is_dense(t):
        if t.shape != x.shape:
            raise ValueError(
                f"floating targets must have the logits' shape {tuple(x.shape)}, "
                f"got {tuple(t.shape)}"
            )
        return x, t
    t = check_label_tensor(t, "targets")
    if x.dim() != 2 or t.shape != x.shape[:1]:
        raise ValueError(
            "integer targets must be class indices of shape (N,) for logits of shape (N, C), "
            f"got targets {tuple(t.shape)} and logits {tuple(x.shape)}"
        )
    return x, t


def check_class_indices(logits: object, labels: object) -> tuple[Tensor, Tensor]:
    """Check ``(N, C)`` logits and integer labels ``(N,)`` (any integer dtype, returned as int64)."""
    x = check_floating(logits, "logits")
    y = check_label_tensor(labels, "labels")
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(
            "logits must be (N, C) and labels (N,), got logits "
            f"{tuple(x.shape)} and labels {tuple(y.shape)}"
        )
    return x, y


def check_index_range(
    labels: Tensor, num_classes: int, *, background: bool, ignore_index: int | None = None
) -> None:
    """Opt-in ``check_labels``: ``ValueError`` naming the first label outside ``[0, C)``, other
    than ``ignore_index``; with a ``background`` class (the sigmoid losses) outside ``[0, C]``
    and the negative labels, which those losses ignore.

    Reads the labels' values: a host synchronisation (and a graph break under ``torch.compile``).
    """
    if background:
        allowed = labels <= num_classes
        rule = f"in [0, {num_classes}] ({num_classes} = background) or negative (ignored)"
    else:
        allowed = (labels >= 0) & (labels < num_classes)
        rule = f"in [0, {num_classes})"
    if ignore_index is not None and not (background and ignore_index < 0):
        allowed = allowed | (labels == ignore_index)
        rule += f" or {ignore_index} (ignored)"
    check_label_values(labels, allowed, rule)


def label_mask(
    labels: Tensor, shape: torch.Size, dtype: torch.dtype, ignore_index: int | None = None
) -> Tensor:
    """1 where an integer label counts, 0 where it is ignored (negative, or ``ignore_index``),
    shaped to broadcast against an element-wise loss of ``shape`` (a label per row of ``(N, C)``
    logits becomes ``(N, 1)``)."""
    valid = labels >= 0
    if ignore_index is not None:
        valid = valid & (labels != ignore_index)
    return valid.to(dtype).view(*labels.shape, *(1,) * (len(shape) - labels.dim()))


def ignoring_labels(
    weight: Tensor | None, labels: Tensor, shape: torch.Size, dtype: torch.dtype
) -> Tensor | None:
    """The weight of an element-wise loss of ``shape``: ``weight`` (checked against ``shape``),
    0 on the rows of negative class indices (ignored); ``weight`` itself for dense targets."""
    if is_dense(labels):
        return weight
    mask = label_mask(labels, shape, dtype)
    return mask if weight is None else check_weight(weight, shape).to(dtype) * mask


def dense_targets(targets: Tensor, x: Tensor) -> Tensor:
    """Targets as a tensor of ``x``'s shape and dtype (class indices become one-hot rows).

    Indices outside ``[0, C)`` (the background ``C``) give all-zero rows.
    """
    if is_dense(targets):
        return targets.to(x.dtype)
    classes = torch.arange(x.shape[1], device=x.device)
    return (targets.unsqueeze(1) == classes).to(x.dtype)


def loss_dtype(logits: Tensor, *others: Tensor) -> torch.dtype:
    """The dtype a loss computes in: the logits' and floating targets' promoted dtype, with
    float16/bfloat16 computed in float32."""
    return compute_dtype(logits, *(t for t in others if t.dtype.is_floating_point))


def row_weight(
    weight: Tensor | None, logits: Tensor, labels: Tensor | None = None
) -> Tensor | None:
    """The element weight of a sigmoid loss of the logits' shape: mmdetection's rule (a 1-D
    weight of length N on ``(N, C)`` logits weights whole rows), and with class-index ``labels``
    0 on the rows of negative labels (:func:`ignoring_labels`)."""
    w = None if weight is None else check_tensor(weight, "weight")
    if w is not None and logits.dim() == 2 and w.dim() == 1 and w.shape[0] == logits.shape[0]:
        w = w.unsqueeze(1)
    return w if labels is None else ignoring_labels(w, labels, logits.shape, logits.dtype)


def class_weight_tensor(
    class_weight: Tensor | Sequence[float] | None, x: Tensor, dim: int = 1
) -> Tensor | None:
    """``class_weight`` as a tensor of ``x``'s dtype and device with one value per entry of ``x``'s
    dimension ``dim`` (1 for the softmax losses; -1 where it broadcasts along the last), or None."""
    if class_weight is None:
        return None
    w = torch.as_tensor(class_weight, dtype=x.dtype)
    size = x.shape[dim]
    if w.shape != (size,):
        where = "last dimension" if dim == -1 else f"dimension {dim}"
        raise ValueError(
            f"class_weight must have shape ({size},) (one per entry of the logits' {where}, "
            f"logits {tuple(x.shape)}), got {tuple(w.shape)}"
        )
    # A list becomes a CPU tensor: as_tensor(..., device="cuda") would wait for the copy.
    return w.to(x.device, non_blocking=True)


def prob_bce(p: Tensor, t: Tensor) -> Tensor:
    """PyTorch's ``binary_cross_entropy`` of probabilities ``p`` (logs floored at -100), as a
    formula: no value check (no host synchronisation) and a zero, not NaN, gradient where floored.

    ``p`` outside ``[0, 1]`` gives NaN.
    """
    floor = torch.full((), -100.0, dtype=p.dtype, device=p.device)
    positive, below_one = p > 0, p < 1
    log_p = torch.where(positive, torch.log(torch.where(positive, p, 1)), floor)
    log_q = torch.where(below_one, torch.log1p(-torch.where(below_one, p, 0)), floor)
    return -(t * log_p.clamp_min(-100) + (1 - t) * log_q.clamp_min(-100))


def alpha_weight(t: Tensor, alpha: float) -> Tensor:
    """The focal ``alpha_t = alpha t + (1 - alpha)(1 - t)``: exactly ``alpha`` at ``t = 1`` and
    ``1 - alpha`` at ``t = 0``.

    ``lerp`` keeps both ends exact and never cancels in between, where
    ``(2 alpha - 1) t + 1 - alpha`` loses the digits of a small ``alpha`` at ``t = 1``.
    """
    if alpha == 1:
        return t
    ends = [torch.full((), value, dtype=t.dtype, device=t.device) for value in (1 - alpha, alpha)]
    return torch.lerp(ends[0], ends[1], t)


def check_alpha(alpha: float | None) -> float | None:
    """Focal ``alpha`` in ``[0, 1]``; ``None`` or a negative number (fvcore's -1) means none."""
    if alpha is None:
        return None
    value = check_number(alpha, "alpha", low=float("-inf"), strict=True)
    if value < 0:
        return None
    if value > 1:
        raise ValueError(f"alpha must be in [0, 1] (or None / negative for none), got {alpha!r}")
    return value
