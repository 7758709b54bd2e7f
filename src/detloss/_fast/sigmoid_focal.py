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
logits' size (six for ``gamma`` other than 1 and 2) are alive at the peak of the forward pass;
backward writes one, the product with the incoming gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from detloss._logistic import alpha_weight


def sigmoid_focal_terms(
    x: Tensor, t: Tensor, alpha: float | None, gamma: float, with_derivative: bool
) -> tuple[Tensor, Tensor | None]:
    """The element-wise loss and, if asked, its derivative in ``x`` (see the module doc).

    ``x`` and ``t`` have the same shape and floating dtype; ``gamma > 0``; ``alpha`` in
    ``[0, 1]`` or None.
    """
    loss, derivative = _terms_without_alpha(x, t, gamma, with_derivative)
    if alpha is not None:
        # after the helper's buffers are freed: alpha_t adds none to the peak
        alpha_t = alpha_weight(t, alpha)
        loss.mul_(alpha_t)
        if derivative is not None:
            derivative.mul_(alpha_t)
    return loss, derivative


def _terms_without_alpha(
    x: Tensor, t: Tensor, gamma: float, with_derivative: bool
) -> tuple[Tensor, Tensor | None]:
    # Buffers are reused in place; each comment names what a buffer holds from there on.
    u = torch.clamp_min(x, 0)  # relu(x)
    v = torch.sub(u, x)  # relu(-x), exact
    ce = torch.lerp(u, v, t)  # (1 - t) u + t v; lerp is exact at t = 0 and t = 1
    b = u.neg_().exp_()  # B
    a = v.neg_().exp_()  # A
    m = torch.lerp(a, b, t)  # M
    e = a.mul_(b)  # e = A B: one factor is exactly 1
    log1p_e = torch.log1p(e) if with_derivative else e.log1p_()
    ce.add_(log1p_e)
    # m_pow = M**gamma for the loss; for gamma < 1, M**(gamma - 1) is multiplied into the
    # derivative's terms before they are formed (their product with it would underflow first).
    m_pow = m.pow(gamma) if gamma < 1 else None
    bracket: Tensor | None = None
    if with_derivative:
        d = torch.addcmul(m, b, t, value=-2, out=b)  # D = M - 2 t B
        if m_pow is None:
            d.mul_(m)
        else:
            # M**(gamma - 1) overflows for subnormal M: there the derivative (which vanishes
            # like M**(gamma + 1)) is below the smallest subnormal with M at the smallest normal.
            e.mul_(m.clamp_min(torch.finfo(m.dtype).tiny).pow_(gamma - 1))
            d.mul_(m_pow)
        bracket = e.mul_(ce).mul_(gamma)
        # gamma (1 - 2t) e ce + M D, times M**(gamma - 1) for gamma < 1
        bracket.addcmul_(bracket, t, value=-2).add_(d)
    w = torch.mul(log1p_e, -gamma, out=b).exp_()  # r**gamma = exp(-gamma log1p(e))
    if m_pow is not None:
        value_factors, derivative_factors = [w, m_pow], [w]
    elif gamma == 1:
        value_factors, derivative_factors = [w, m], [w]
    elif gamma == 2:
        value_factors, derivative_factors = [w, m, m], [w, m]
    else:
        w.mul_(m.pow(gamma - 1))  # M**(gamma - 1) <= 1
        value_factors, derivative_factors = [w, m], [w]
    loss = _product_(ce, value_factors)
    if bracket is None:
        return loss, None
    r = log1p_e.neg_().exp_()  # r = 1 / (1 + e)
    return loss, _product_(bracket, [*derivative_factors, r])


def _product_(target: Tensor, factors: list[Tensor]) -> Tensor:
    """``target *= prod(factors)`` in place."""
    for factor in factors:
        target.mul_(factor)
    return target


class SigmoidFocal(torch.autograd.Function):
    """``apply(x, t, alpha, gamma)``: the element-wise sigmoid focal loss of :func:`sigmoid_focal_terms`
    (``x`` and dense targets ``t`` of one shape and floating dtype); ``t`` receives no gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, alpha: float | None, gamma: float) -> Tensor:
        loss, derivative = sigmoid_focal_terms(x, t, alpha, gamma, ctx.needs_input_grad[0])
        ctx.save_for_backward(derivative)  # None without a gradient
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (derivative,) = ctx.saved_tensors
        return torch.mul(derivative, grad), None, None, None
