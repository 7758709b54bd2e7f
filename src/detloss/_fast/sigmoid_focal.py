"""The sigmoid focal loss and its derivative, computed together in the forward pass.

For logits ``x`` and targets ``t`` in ``[0, 1]`` (element-wise, any shape)::

    loss = alpha_t * (1 - p_t)**gamma * ce(x, t)
    ce   = t * softplus(-x) + (1 - t) * softplus(x)
    1 - p_t = t * sigmoid(-x) + (1 - t) * sigmoid(x)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)        (1 without alpha)

Every term comes from ``u = relu(x)``, ``v = relu(-x)`` (one of them is 0),
``A = exp(-v)``, ``B = exp(-u)`` (one of them is 1, the other ``e = exp(-|x|) = A * B`` exactly)
and ``r = 1 / (1 + e) = exp(-log1p(e))``:

* ``sigmoid(x) = A r`` and ``sigmoid(-x) = B r``, so ``1 - p_t = M r`` with
  ``M = (1 - t) A + t B`` (a sum of non-negative terms, exact to rounding down to subnormals);
* ``ce = (1 - t) u + t v + log1p(e)``, a sum of non-negative terms: no cancellation anywhere, so
  a confident correct logit keeps all its digits.

With ``D = (1 - t) A - t B = M - 2 t B`` (``sigmoid(x) - t = D r``) the derivative is::

    d loss / dx = alpha_t * M**(gamma - 1) * r**(gamma + 1) * (gamma (1 - 2t) e ce + M D)

The forward pass evaluates both in one go (they share every transcendental term) and saves the
derivative for backward, instead of the inputs; targets receive no gradient. Five buffers of the
logits' size are alive at the peak of the forward pass (four after it for the loss and the
derivative, one while backward multiplies in the incoming gradient). ``M ** (gamma - 1)`` is taken
as 0 where ``M = 0`` (its factor ``gamma (1 - 2t) e ce + M D`` vanishes there too: the limit).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable


def sigmoid_focal_terms(
    x: Tensor, t: Tensor, alpha: float | None, gamma: float, with_derivative: bool
) -> tuple[Tensor, Tensor | None]:
    """The element-wise loss and, if asked, its derivative in ``x`` (see the module doc).

    ``x`` and ``t`` have the same shape and floating dtype; ``gamma > 0``; ``alpha`` in
    ``[0, 1]`` or None.
    """
    u = torch.clamp_min(x, 0)
    v = torch.sub(u, x)  # relu(-x), exact
    ce = torch.lerp(u, v, t)  # (1 - t) u + t v; lerp keeps the t = 0 and t = 1 ends exact
    b = u.neg_().exp_()
    a = v.neg_().exp_()
    m = torch.lerp(a, b, t)  # M
    e = a.mul_(b)  # one factor is exactly 1
    if with_derivative:
        d = torch.addcmul(m, b, t, value=-2, out=b)  # D = M - 2 t B
    log1p_e = torch.log1p(e) if with_derivative else e.log1p_()
    ce.add_(log1p_e)
    bracket: Tensor | None = None
    if with_derivative:
        bracket = e.mul_(ce).mul_(gamma)
        bracket.addcmul_(bracket, t, value=-2).add_(d.mul_(m))  # gamma (1 - 2t) e ce + M D
    # w = alpha_t r**gamma M**(gamma - 1) with r**gamma = exp(-gamma log1p(e)); alpha_t is
    # (1 - alpha)(1 + c t) with c = (2 alpha - 1) / (1 - alpha), the (1 - alpha) inside the exp.
    scale = 1.0 if alpha is None or alpha == 1 else 1.0 - alpha
    log_scale = torch.full((), math.log(scale), dtype=x.dtype)  # a CPU scalar on any device
    w = torch.add(log_scale, log1p_e, alpha=-gamma).exp_()
    if alpha == 1:
        w.mul_(t)
    elif alpha is not None:
        w.addcmul_(w, t, value=(2 * alpha - 1) / (1 - alpha))
    if gamma == 2:
        w.mul_(m)
    elif gamma != 1:
        w.mul_(_pow_zero_limit(m, gamma - 1))
    loss = ce.mul_(w).mul_(m)
    if bracket is None:
        return loss, None
    r = log1p_e.neg_().exp_()
    return loss, bracket.mul_(w).mul_(r)


def _pow_zero_limit(base: Tensor, exponent: float) -> Tensor:
    """``base ** exponent`` for ``base >= 0``, with 0 where ``base == 0`` (also for a negative
    ``exponent``, where the power multiplies a factor that vanishes with ``base``)."""
    if exponent >= 0:
        return torch.pow(base, exponent)
    positive = base > 0
    return torch.where(positive, base, 1.0).pow_(exponent).mul_(positive)


class SigmoidFocal(torch.autograd.Function):
    """``apply(x, t, alpha, gamma)``: the element-wise sigmoid focal loss of :func:`sigmoid_focal_terms`
    (``x`` and dense targets ``t`` of one shape and floating dtype); ``t`` receives no gradient."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, t: Tensor, alpha: float | None, gamma: float
    ) -> Tensor:
        loss, derivative = sigmoid_focal_terms(x, t, alpha, gamma, ctx.needs_input_grad[0])
        ctx.save_for_backward(derivative)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (derivative,) = ctx.saved_tensors
        return torch.mul(derivative, grad), None, None, None
