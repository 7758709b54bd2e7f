"""The sigmoid focal loss and its derivative, computed together in the forward pass.

For logits ``x`` and targets ``t`` in ``[0, 1]`` (element-wise, any shape)::

    loss = alpha_t * (1 - p_t)**gamma * ce(x, t)
    ce   = t * softplus(-x) + (1 - t) * softplus(x)
    1 - p_t = t * sigmoid(-x) + (1 - t) * sigmoid(x)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)        (1 without alpha)

The logistic terms ``s = sigmoid(x)``, ``s_ = sigmoid(-x)`` and ``ce`` come from
:func:`detloss._fast.logistic.logistic` without cancellation, so that ``1 - p_t = t s_ + (1 - t) s``
and ``p_t = t s + (1 - t) s_`` are sums of non-negative terms and a confident correct logit keeps
all its digits. Above ``gamma = 8`` the powers of ``m = 1 - p_t`` are ``exp(k log m)``, ``log m``
from ``m`` and ``p_t`` (:func:`detloss._fast.logistic.log_of_`): accurate where ``m`` has rounded
to 1.

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

from detloss._fast.logistic import log_of_, logistic, pow_is_accurate
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
    # Each comment names what a buffer holds from there on (nc: minus the cross-entropy,
    # s: sigmoid(x), s_: sigmoid(-x), m: 1 - p_t).
    nc, s, s_ = logistic(x, t)
    m = torch.lerp(s, s_, t)  # t s_ + (1 - t) s
    # above gamma = 8 the powers of m are exp(k log m), log m from m and p_t = t s + (1 - t) s_
    p = None if pow_is_accurate(gamma) else torch.lerp(s_, s, t)
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
    if p is not None:
        del s, s_
        log_m = log_of_(m, p)
        if derivative is not None:
            derivative.mul_(torch.mul(log_m, gamma - 1, out=m).exp_())  # m**(gamma - 1)
        return _loss(nc, log_m.mul_(gamma / 2).exp_()), derivative
    if derivative is not None and gamma > 1:
        derivative.mul_(m if gamma == 2 else m.pow(gamma - 1))
    if m_pow is not None or gamma == 1:
        return _negated_product(nc, m if m_pow is None else m_pow), derivative
    return _loss(nc, m if gamma == 2 else m.pow_(gamma / 2)), derivative


def _loss(nc: Tensor, half: Tensor) -> Tensor:
    """``-nc m**gamma`` as ``-(nc h) h`` from ``h = m**(gamma / 2)``, into ``nc``'s buffer: where
    ``m**gamma`` is below the smallest normal number (it has lost digits) a huge cross-entropy
    (a soft target at ``|x| ~ 1e38``) can still make the loss normal, and then ``h`` is (nearly)
    normal."""
    return _negated_product(nc.mul_(half), half)


def _negated_product(nc: Tensor, factor: Tensor) -> Tensor:
    """``-nc * factor`` into ``nc``'s buffer, the sign riding on the product (addcmul on a zero
    scalar)."""
    zero = torch.zeros((), dtype=nc.dtype)  # a CPU scalar, valid with a tensor on any device
    return torch.addcmul(zero, nc, factor, value=-1, out=nc)


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
