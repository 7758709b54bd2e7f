"""Element-wise regression losses: Smooth L1 (beta, sigma and Caffe forms), Huber, L1, L2, Balanced L1.

Every function takes ``pred`` and ``target`` of the same shape (no broadcasting), computes
float16/bfloat16 inputs in float32, and reduces through :func:`detloss.reduction.weight_reduce_loss`
(``weight``, ``reduction`` in {"none", "mean", "sum"}, ``avg_factor``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss._checks import check_number, prepare_pair
from detloss.analytic import Factor, ValueAndGrad, apply_factor, reduce_with_gradient
from detloss.backend import fusable
from detloss.reduction import check_weight, weight_reduce_loss

aten = torch.ops.aten


def residual_loss(
    value_and_grad: ValueAndGrad,
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None,
    reduction: str,
    avg_factor: float | Tensor | None,
) -> Tensor:
    """Check and cast ``(pred, target)``, then reduce the loss ``value_and_grad`` computes from them
    with its gradient computed in the forward pass (:func:`detloss.analytic.reduce_with_gradient`)."""
    pred, target = prepare_pair(pred, target)
    return reduce_with_gradient(
        value_and_grad, pred, (target,), pred.shape, weight, reduction, avg_factor
    )


Gradient = Callable[[Tensor, Tensor, Factor], Tensor]
"""``gradient(pred, target, factor)``: ``factor * d loss / d pred`` of an element-wise loss."""

_NO_REDUCTION = 0  # ATen's Reduction::None


def of_residual(loss: Callable[[Tensor, Tensor], Tensor], gradient: Gradient) -> ValueAndGrad:
    """The ``value_and_grad`` of ``loss(pred, target)`` with the weighted gradient ``gradient``."""

    def value_and_grad(p: Tensor, t: Tensor, factor: Factor | None) -> tuple[Tensor, Tensor | None]:
        return loss(p, t), None if factor is None else gradient(p, t, factor)

    return value_and_grad


def by_kernel(backward: torch._ops.OpOverload, *params: float) -> Gradient:
    """The gradient computed by PyTorch's own backward kernel of the loss, ``backward(grad_output,
    pred, target, reduction, *params, grad_input=out)``, with the factor as its incoming gradient:
    one pass that reads ``pred``, ``target`` and the weight and writes the weighted gradient
    (autograd of the native loss calls the same kernel, so the gradients are equal bit for bit)."""

    def gradient(p: Tensor, t: Tensor, factor: Factor) -> Tensor:
        incoming = factor if isinstance(factor, Tensor) else p.new_ones(())
        out = torch.empty_like(p)
        return cast(Tensor, backward(incoming, p, t, _NO_REDUCTION, *params, grad_input=out))

    return gradient


def _sign_gradient(p: Tensor, t: Tensor, factor: Factor) -> Tensor:
    # L1's subgradient at 0 is 0, as autograd of |pred - target|; the Smooth L1 kernel at beta = 0
    # would give -1 there.
    return apply_factor((p - t).sign_(), factor)


def resolve_beta(beta: float | None, sigma: float | None) -> float:
    """The Smooth L1 ``beta`` from either parameterisation: ``beta`` or Caffe's ``sigma`` (beta = 1/sigma^2).

    Neither given means beta = 1.0; both given is an error.
    """
    if beta is not None and sigma is not None:
        raise ValueError(
            f"give beta or sigma, not both (got beta={beta!r}, sigma={sigma!r}); beta = 1 / sigma**2"
        )
    if sigma is not None:
        return 1.0 / check_number(sigma, "sigma", low=0.0, strict=True) ** 2
    if beta is None:
        return 1.0
    return check_number(beta, "beta", low=0.0, strict=False)


@fusable
def smooth_l1_loss(
    pred: Tensor,
    target: Tensor,
    beta: float | None = None,
    *,
    sigma: float | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Smooth L1 loss (Girshick, Fast R-CNN, ICCV 2015).

    With ``x = pred - target``::

        loss(x) = 0.5 * x**2 / beta      if |x| < beta
                  |x| - 0.5 * beta       otherwise

    Args:
        pred, target: tensors of the same shape ``(*)``; ``pred`` floating point.
        beta: the quadratic zone's half-width, ``beta >= 0`` (default 1.0). ``beta == 0`` is exactly
            L1 with finite gradients (a ``torch.where`` formulation divides by zero in the unused
            branch and sends NaN into the gradient, PyTorch issue 96813; fvcore avoids it the same
            way, by computing L1 below ``beta < 1e-5``).
        sigma: Caffe / py-faster-rcnn parameterisation, ``sigma > 0``; ``beta = 1 / sigma**2``.
            Give ``beta`` or ``sigma``, not both.
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    Conventions: PyTorch ``F.smooth_l1_loss(beta=b)``, fvcore ``smooth_l1_loss(beta=b)`` and
    mmdetection ``SmoothL1Loss(beta=b)`` are ``beta=b``; py-faster-rcnn's RPN ``sigma=3`` and its
    detection head ``sigma=1``; torchvision's RPN and RoI heads use ``beta=1/9`` with ``"sum"``
    divided by the number of sampled anchors/RoIs; detectron2's default ``SMOOTH_L1_BETA`` is 0 (L1).
    Huber's ``delta`` form is ``delta * smooth_l1_loss(beta=delta)`` (:func:`huber_loss`).
    """
    beta = resolve_beta(beta, sigma)

    # PyTorch's kernel computes plain L1 when beta == 0, and so does the gradient below.
    value_and_grad = of_residual(
        lambda p, t: F.smooth_l1_loss(p, t, reduction="none", beta=beta),
        _sign_gradient if beta == 0 else by_kernel(aten.smooth_l1_loss_backward.grad_input, beta),
    )
    return residual_loss(value_and_grad, pred, target, weight, reduction, avg_factor)


@fusable
def huber_loss(
    pred: Tensor,
    target: Tensor,
    delta: float = 1.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Huber loss (Huber, 1964), ``delta > 0``.

    With ``x = pred - target``::

        loss(x) = 0.5 * x**2                  if |x| < delta
                  delta * (|x| - 0.5 * delta)  otherwise

    which is ``delta * smooth_l1_loss(beta=delta)``; equal to PyTorch's ``F.huber_loss(delta=delta)``.
    Its gradient is ``x`` clipped to ``[-delta, delta]`` (Smooth L1's is clipped to ``[-1, 1]``).
    """
    delta = check_number(delta, "delta", low=0.0, strict=True)

    value_and_grad = of_residual(
        lambda p, t: F.huber_loss(p, t, reduction="none", delta=delta),
        by_kernel(aten.huber_loss_backward.out, delta),
    )
    return residual_loss(value_and_grad, pred, target, weight, reduction, avg_factor)


@fusable
def l1_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """L1 loss ``|pred - target|``; ``smooth_l1_loss(beta=0)``. Equal to PyTorch's ``F.l1_loss``."""
    value_and_grad = of_residual(lambda p, t: F.l1_loss(p, t, reduction="none"), _sign_gradient)
    return residual_loss(value_and_grad, pred, target, weight, reduction, avg_factor)


@fusable
def mse_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """L2 loss ``(pred - target)**2`` (no 1/2 factor), equal to PyTorch's ``F.mse_loss``."""
    value_and_grad = of_residual(
        lambda p, t: F.mse_loss(p, t, reduction="none"),
        by_kernel(aten.mse_loss_backward.grad_input),
    )
    return residual_loss(value_and_grad, pred, target, weight, reduction, avg_factor)


@fusable
def balanced_l1_loss(
    pred: Tensor,
    target: Tensor,
    alpha: float = 0.5,
    gamma: float = 1.5,
    beta: float = 1.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Balanced L1 loss (Pang et al., Libra R-CNN, CVPR 2019).

    With ``x = |pred - target|`` and ``b = exp(gamma / alpha) - 1``::

        loss(x) = alpha / b * (b*x + 1) * log(b*x/beta + 1) - alpha*x   if x < beta
                  gamma*x + gamma/b - alpha*beta                       otherwise

    The constant ``gamma/b - alpha*beta`` makes the two pieces meet at ``x = beta``. With the paper's
    ``beta = 1`` the gradient is ``alpha * log(b*x + 1)`` inside (promoting small, inlier residuals)
    and ``gamma`` outside. Parameters: ``alpha > 0``, ``gamma > 0``, ``beta > 0``; defaults and
    formula as the paper and mmdetection's ``BalancedL1Loss`` (whose formula, for ``beta != 1``,
    is slightly negative near ``x = 0``; detloss reproduces it rather than changing the numbers).
    """
    alpha = check_number(alpha, "alpha", low=0.0, strict=True)
    gamma = check_number(gamma, "gamma", low=0.0, strict=True)
    beta = check_number(beta, "beta", low=0.0, strict=True)
    b = math.expm1(gamma / alpha)

    def value_and_grad(p: Tensor, t: Tensor, factor: Factor | None) -> tuple[Tensor, Tensor | None]:
        d = p - t
        x = d.abs()
        inside = x < beta
        log_term = torch.log1p(b * x / beta)
        inner = alpha / b * (b * x + 1) * log_term - alpha * x
        loss = torch.where(inside, inner, gamma * x + (gamma / b - alpha * beta))
        if factor is None:
            return loss, None
        # d inner / dx = alpha * log(b x / beta + 1) + alpha * (b x + 1) / (b x + beta) - alpha
        slope_in = alpha * log_term + alpha * (b * x + 1) / (b * x + beta) - alpha
        grad = torch.where(inside, slope_in, gamma).mul_(d.sign_())
        return loss, apply_factor(grad, factor)

    return residual_loss(value_and_grad, pred, target, weight, reduction, avg_factor)


@fusable
def caffe_smooth_l1_loss(
    pred: Tensor,
    target: Tensor,
    inside_weight: Tensor,
    outside_weight: Tensor,
    sigma: float = 1.0,
    dim: tuple[int, ...] = (1,),
    *,
    reduction: str = "mean",
) -> Tensor:
    """Smooth L1 as the Caffe ``SmoothL1Loss`` layer of py-faster-rcnn (Ren et al., NeurIPS 2015).

    ::

        d    = inside_weight * (pred - target)
        f(d) = 0.5 * sigma**2 * d**2       if |d| < 1 / sigma**2
               |d| - 0.5 / sigma**2        otherwise
        loss = mean over the remaining dims of  sum over ``dim`` of  outside_weight * f(d)

    ``f`` is :func:`smooth_l1_loss` with ``beta = 1/sigma**2``. In py-faster-rcnn the inside
    weight is 1 on positive anchors' coordinates and 0 elsewhere, the outside weight
    ``1 / number of labelled anchors``; the RPN used ``sigma=3``, the detection head ``sigma=1``.
    The layer divides the total by the batch size N: for RPN deltas of shape (N, 4A, H, W) that is
    ``dim=(1, 2, 3)``; for (R, 4) deltas the default ``dim=(1,)``.

    Args:
        pred, target: tensors of the same shape.
        inside_weight, outside_weight: tensors that broadcast to ``pred``'s shape.
        sigma: ``> 0``.
        dim: the dimensions summed before the mean over the rest.
        reduction: "mean" (the layer's semantics), "sum", or "none" (the per-row sums).
    """
    beta = resolve_beta(None, sigma)
    pred, target = prepare_pair(pred, target)
    inside = check_weight(inside_weight, pred.shape, "inside_weight").to(pred.dtype)
    outside = check_weight(outside_weight, pred.shape, "outside_weight").to(pred.dtype)
    f = F.smooth_l1_loss(inside * pred, inside * target, reduction="none", beta=beta)
    per_row = (outside * f).sum(dim=dim)
    return weight_reduce_loss(per_row, reduction=reduction)
