"""The one reduction mechanism every detloss loss goes through.

``loss -> loss * weight -> reduction -> / avg_factor`` with mmdetection's semantics:

* ``reduction="none"`` returns the weighted element-wise loss (``avg_factor`` is ignored);
* ``"sum"`` returns its sum (an ``avg_factor`` is an error, as in mmdetection);
* ``"mean"`` returns ``sum / numel`` or, with ``avg_factor``, ``sum / (avg_factor + eps)`` where
  ``eps = torch.finfo(torch.float32).eps``; ``avg_factor`` is a finite number ``>= 0`` or a
  one-element tensor, and a tensor is cast to the loss's dtype. Note that this is the mean over *all* elements, not a
  weighted mean: zero-weight elements count in the denominator.

An empty loss reduces to an exact ``0`` that stays connected to the autograd graph ("mean" divides
by ``max(numel, 1)``), where ``torch.mean`` would give NaN. Nothing here reads tensor values, so
reductions never synchronise with the device.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, cast

import torch
from torch import Tensor

from detloss.checks import check_number, check_tensor

Reduction: TypeAlias = Literal["none", "mean", "sum"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
AVG_FACTOR_EPS: float = torch.finfo(torch.float32).eps


def check_reduction(reduction: object, avg_factor: object = None) -> Reduction:
    """Return ``reduction`` if it is one of "none", "mean", "sum" (and ``avg_factor`` is ``None``
    for "sum", as in mmdetection); raise ``ValueError`` otherwise."""
    if reduction == "sum" and avg_factor is not None:
        raise ValueError('avg_factor cannot be used with reduction="sum"; use "mean" or "none"')
    if reduction == "none" or reduction == "mean" or reduction == "sum":
        return reduction
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_weight(weight: object, shape: torch.Size, name: str = "weight") -> Tensor:
    """Check that ``weight`` is a tensor that broadcasts to ``shape`` (without growing it)."""
    w = check_tensor(weight, name)
    # Not torch.broadcast_shapes: its generality made it a quarter of a small loss's host time.
    fits = w.dim() <= len(shape) and all(
        a == 1 or a == b for a, b in zip(reversed(w.shape), reversed(shape), strict=False)
    )
    if not fits:
        raise ValueError(
            f"{name} of shape {tuple(w.shape)} cannot broadcast to the element-wise loss of "
            f"shape {tuple(shape)}"
        )
    return w


def check_avg_factor(avg_factor: object) -> float | Tensor | None:
    """Return ``avg_factor`` if it is ``None``, a finite number ``>= 0``, or a real tensor of one
    element (its value is not read: no host-device synchronisation); raise otherwise."""
    if avg_factor is None:
        return None
    if isinstance(avg_factor, Tensor):
        if avg_factor.numel() != 1 or avg_factor.dim() > 1:
            raise ValueError(
                "avg_factor must be a number or a tensor of one element, got a tensor of shape "
                f"{tuple(avg_factor.shape)}"
            )
        if avg_factor.dtype == torch.bool or avg_factor.dtype.is_complex:
            raise TypeError(f"avg_factor must be a real tensor, got dtype {avg_factor.dtype}")
        return avg_factor.reshape(())
    return check_number(avg_factor, "avg_factor", low=0.0, strict=False)


def weight_reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Apply an element-wise ``weight``, then ``reduction`` and ``avg_factor`` to ``loss``.

    Args:
        loss: element-wise loss of any shape.
        weight: optional tensor that broadcasts to ``loss.shape`` (without growing it).
        reduction: "none", "mean" or "sum".
        avg_factor: optional normaliser for "mean": a finite number ``>= 0`` or a one-element
            tensor; "sum" rejects it.

    Returns:
        ``loss``'s shape for "none", a scalar otherwise, in ``loss``'s dtype.
    """
    reduction = check_reduction(reduction, avg_factor)
    factor = check_avg_factor(avg_factor)
    if weight is not None:
        loss = loss * check_weight(weight, loss.shape).to(loss.dtype)
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if factor is None:
        return total / _numel_at_least_one(loss.numel())
    if isinstance(factor, Tensor):
        factor = factor.to(total.dtype)
    # AVG_FACTOR_EPS read from torch.finfo: torch.compile(dynamic=True) makes a module-level
    # float a graph input (a tensor built on every call), where finfo folds to a constant.
    return total / (factor + torch.finfo(torch.float32).eps)


def _numel_at_least_one(numel: int | torch.SymInt) -> int:
    """``max(numel, 1)``: an empty loss gives 0, not NaN."""
    if isinstance(numel, int):
        return max(numel, 1)
    # A dynamic numel under torch.compile: sym_max keeps it symbolic (max() would guard on it).
    return cast(int, torch.sym_max(numel, 1))  # type: ignore[no-untyped-call]
