"""The sigmoid focal loss and its derivative, computed together in the forward pass.

For logits ``x`` and targets ``t`` in ``[0, 1]`` (element-wise, any shape)::

    loss = alpha_t * (1 - p_t)**gamma * ce(x, t)
    ce   = t * softplus(-x) + (1 - t) * softplus(x)
    1 - p_t = t * sigmoid(-x) + (1 - t) * sigmoid(x)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)        (1 without alpha)

Every term comes from ``u = relu(x)``, ``v = relu(-x)`` (one of them is 0),
``A = exp(-v)``, ``B = exp(-u)`` (one of them is 1, the other ``e = exp(-|x|) = A B`` exactly)
and ``r = 1 / (1 + e) = exp(-log1p(e))``:

* ``s = sigmoid(x) = A r`` and ``s_ = sigmoid(-x) = B r``, exact down to subnormals, so
  ``1 - p_t = t s_ + (1 - t) s`` is a sum of non-negative terms;
* ``ce = (1 - t) u + t v + log1p(e)``, a sum of non-negative terms: no cancellation anywhere, so
  a confident correct logit keeps all its digits.

With ``m = 1 - p_t`` and ``s - t = (1 - t) s - t s_ = m - 2 t s_``, the derivative is::

    d loss / dx = alpha_t * m**(gamma - 1) * (gamma (1 - 2t) s s_ ce + m (s - t))

The forward pass evaluates both in one go (they share every transcendental term) and saves the
derivative for backward, instead of the inputs; targets receive no gradient. Four buffers of the
logits' size (five for ``gamma`` other than 1 and 2, six below 1) are alive at the peak of the
forward pass; backward writes one, the product with the incoming gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from detloss._labels import alpha_weight


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
    # Four buffers of x's size, reused in place; each comment names what a buffer holds from
    # there on (nc: minus the cross-entropy, s: sigmoid(x), s_: sigmoid(-x), m: 1 - p_t).
    mn = torch.clamp_max(x, 0)  # -relu(-x)
    nu = torch.sub(mn, x)  # -relu(x), exact
    nc = torch.lerp(nu, mn, t)  # -((1 - t) relu(x) + t relu(-x)); exact at t = 0 and t = 1
    b = nu.exp_()  # B
    a = mn.exp_()  # A
    r = torch.mul(a, b).log1p_()  # log1p(e), e = A B exactly (one factor is 1)
    nc.sub_(r)
    r.neg_().exp_()  # r = 1 / (1 + e)
    s = a.mul_(r)
    s_ = b.mul_(r)
    m = torch.lerp(s, s_, t, out=r)  # t s_ + (1 - t) s
    del a, b, r
    # m**gamma for the loss; for gamma < 1 it also replaces m m**(gamma - 1) in the derivative
    m_pow = m.pow(gamma) if gamma < 1 else None
    derivative: Tensor | None = None
    if with_derivative:
        # (gamma (1 - 2t) s s_ ce + m (s - t)) m**(gamma - 1), with s - t = m - 2 t s_
        first = s.mul_(s_)
        second = torch.addcmul(m, s_, t, value=-2, out=s_)
        if m_pow is None:
            second.mul_(m)
        else:
            # m**(gamma - 1) goes into each term before the terms are formed (their product with
            # it would underflow first); it overflows for subnormal m, where from the smallest
            # normal m down the derivative (vanishing like m**(gamma + 1)) is below every subnormal.
            first.mul_(m.clamp_min(torch.finfo(m.dtype).tiny).pow_(gamma - 1))
            second.mul_(m_pow)
        first.mul_(nc).addcmul_(first, t, value=-2)  # -(1 - 2t) s s_ ce
        derivative = second.sub_(first, alpha=gamma)
        del first
        if gamma > 1:
            derivative.mul_(m if gamma == 2 else m.pow(gamma - 1))
    if m_pow is not None:
        factor = m_pow
    elif gamma == 2:
        nc.mul_(m)
        factor = m
    else:
        factor = m.pow_(gamma)
    # loss = -nc * factor, the sign riding on the last product (addcmul on a zero scalar)
    zero = torch.zeros((), dtype=nc.dtype)  # a CPU scalar, valid with a tensor on any device
    return torch.addcmul(zero, nc, factor, value=-1, out=nc), derivative


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
