"""Losses whose gradient is computed in the same pass as their value.

A loss built here supplies one function that returns its element-wise value and, given a
``factor``, ``factor * d loss / d pred``::

    value_and_grad(pred, *others, factor) -> (loss, grad)    # grad is None when factor is None

:func:`reduce_with_gradient` runs it in a custom autograd function: the forward weights and sums
``loss`` with :func:`detloss.reduction.weight_reduce_loss` and keeps ``grad``, computed with the
weight as ``factor``; the backward multiplies it by the incoming gradient. "mean" divides the sum
outside the function (:func:`detloss.reduction.mean_divisor`), so that autograd scales the incoming
gradient and a Python ``avg_factor`` stays symbolic under ``torch.compile``. Against autograd's
chain of saved intermediates this removes passes over memory in both backends: eagerly, the
backward is one multiplication and the forward works in place on its own temporaries; under
``torch.compile`` the forward is one loop that reads the inputs once and writes the gradient, and
the backward scales it (``docs/benchmarks.md``, "Gradient in the forward pass").

Only ``pred`` is differentiated this way. When another input (``target``, ``weight``, a tensor
``avg_factor``) requires a gradient, or no gradient is wanted (``torch.no_grad``, a ``pred`` that
does not require one), the same function runs with ``factor=None`` under ordinary autograd, so
every input gets its exact gradient. The analytic path does not support double backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, cast

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from detloss.backend import fresh_output, is_compiling
from detloss.reduction import check_reduction, check_weight, mean_divisor, weight_reduce_loss

Factor: TypeAlias = Tensor | float
"""The weight a gradient is multiplied by: a tensor that broadcasts to the loss, or 1.0."""
ValueAndGrad = Callable[..., tuple[Tensor, Tensor | None]]
"""``value_and_grad(pred, *others, factor)`` returns the element-wise loss and
``factor * d loss / d pred`` (``None`` when ``factor`` is ``None``). ``factor`` is 1.0 or a tensor
that broadcasts to the loss (the weight; :func:`apply_factor` applies it); a loss with one value per row of ``pred`` (box losses: ``pred``
``(..., 4)``, loss ``(...)``) broadcasts it over the last dimension itself. The function may work
in place on tensors it created (never on its inputs)."""


def apply_factor(grad: Tensor, factor: Factor, per_row: bool = False) -> Tensor:
    """``grad * factor`` in place (``factor`` is 1.0 or a tensor, over the last dim when ``per_row``)."""
    if not isinstance(factor, Tensor):
        return grad
    return grad.mul_(factor.unsqueeze(-1) if per_row else factor)


class _GradientInForward(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        value_and_grad: ValueAndGrad,
        reduce: Callable[[Tensor], Tensor],
        factor: Factor,
        pred: Tensor,
        *others: Tensor,
    ) -> Tensor:
        loss, grad = value_and_grad(pred, *others, factor)
        ctx.save_for_backward(cast(Tensor, grad))  # not None: factor is not None
        return fresh_output(reduce(loss))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        if grad_output.dim() > 0:  # reduction="none": one incoming gradient per loss element
            grad_output = grad_output.reshape(
                grad_output.shape + (1,) * (grad.dim() - grad_output.dim())
            )
        n_others = len(ctx.needs_input_grad) - 4
        return (None, None, None, grad * grad_output, *([None] * n_others))


def reduce_with_gradient(
    value_and_grad: ValueAndGrad,
    pred: Tensor,
    others: tuple[Tensor, ...],
    loss_shape: torch.Size,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
    *,
    compiled: bool = True,
) -> Tensor:
    """``weight_reduce_loss(loss, weight, reduction, avg_factor)`` of the element-wise ``loss`` that
    ``value_and_grad`` computes, differentiated with respect to ``pred`` by the gradient it computes.

    Args:
        value_and_grad: see :data:`ValueAndGrad`.
        pred: the differentiated input, in the compute dtype.
        others: the other tensor inputs (targets), in the compute dtype.
        loss_shape: the element-wise loss's shape (``pred.shape``, or ``pred.shape[:-1]`` for one
            loss per row).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.
        compiled: use the analytic gradient under ``torch.compile`` too; ``False`` leaves the
            compiled loss to autograd of the value (for losses whose analytic form inductor
            compiles into slower code than value and autograd backward).
    """
    reduction = check_reduction(reduction, avg_factor)
    if weight is not None:
        weight = check_weight(weight, loss_shape).to(pred.dtype)

    within = "sum" if reduction == "mean" else reduction

    def reduce(loss: Tensor) -> Tensor:
        return weight_reduce_loss(loss, weight, within, inplace=True)

    analytic = (
        (compiled or not is_compiling())
        and torch.is_grad_enabled()
        and pred.requires_grad
        and not any(t.requires_grad for t in others)
        and not (weight is not None and weight.requires_grad)
        and not (isinstance(avg_factor, Tensor) and avg_factor.requires_grad)
    )
    if not analytic:
        return weight_reduce_loss(
            value_and_grad(pred, *others, None)[0], weight, reduction, avg_factor
        )
    factor = 1.0 if weight is None else weight
    apply = cast(Callable[..., Tensor], _GradientInForward.apply)
    total = apply(value_and_grad, reduce, factor, pred, *others)
    if reduction != "mean":
        return total
    return total / mean_divisor(loss_shape.numel(), avg_factor)
