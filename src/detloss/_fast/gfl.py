"""The varifocal and quality focal losses with their derivatives, computed in the forward pass.

For logits ``x`` and soft targets ``q`` in ``[0, 1]`` (element-wise), with ``s = sigmoid(x)``,
``s_ = sigmoid(-x)`` and ``ce = q softplus(-x) + (1 - q) softplus(x)``::

    varifocal:  F = w_q on positives, alpha s**gamma on negatives (q = 0 there; w_q = q, or 1
                without iou_weighted); loss = F ce,  d/dx = F ((s - q) + gamma [negative] s_ ce)
    quality:    d = s - q;  loss = |d|**beta ce,
                d/dx = sign(d) |d|**(beta - 1) (d**2 + beta s s_ ce)

(where q = 0, ``ce = softplus(x)``, whose derivative is ``s``). The logistic terms come from
:func:`detloss._fast.logistic.logistic` and ``s - q = (1 - q) s - q s_``, all without cancellation
(``s - q`` cancels only at its own zero). Above exponent 8 a power ``m**k`` is ``exp(k log m)``,
``log m`` from ``m`` and ``1 - m`` (:func:`detloss._fast.logistic.log_of_`): ``1 - s = s_``, and
``1 - |d| = min(q + s_, (1 - q) + s)``, whose smaller sum has no cancellation where ``|d| >= 1/2``.
The derivative stays finite for every finite logit: ``s_ ce`` is 0 where ``ce`` is huge, where
autograd of the formula multiplies the huge ``ce`` by the focal factor's derivative first (above
the float32 range at ``|x| ~ 3e38``) and then by 0. Four buffers of the logits' size are alive at
the peak (five for the quality focal loss with a gradient); the forward pass saves the derivative
for backward; targets receive no gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from detloss._fast.logistic import log_of_, logistic, pow_is_accurate


def _prob_error(s: Tensor, s_: Tensor, q: Tensor, out: Tensor) -> Tensor:
    """``s - q = (1 - q) s - q s_`` into ``out`` (it cancels only at its own zero)."""
    return torch.lerp(s, s_, q, out=out).addcmul_(s_, q, value=-2)


def varifocal_terms(
    x: Tensor,
    q: Tensor,
    positive: Tensor,
    alpha: float,
    gamma: float,
    iou_weighted: bool,
    with_derivative: bool,
) -> tuple[Tensor, Tensor | None]:
    """The element-wise varifocal loss and, if asked, its derivative in ``x`` (module doc);
    ``positive`` is a bool mask that broadcasts to ``x``, and ``q`` is 0 off it."""
    nc, s, s_ = logistic(x, q)
    core: Tensor | None = None
    if with_derivative:
        # (s - q) + gamma [negative] s_ ce; on a negative q = 0, ce is softplus(x), and s_ ce is
        # 0 (not inf * 0) where ce is huge
        core = _prob_error(s, s_, q, out=torch.empty_like(s))
        core.addcmul_(s_.masked_fill_(positive, 0), nc, value=-gamma)
    # F: alpha s**gamma on negatives, w_q on positives (q itself, as q = 0 off them); s**gamma is
    # read only on negatives, where s_ is still sigmoid(-x)
    focal = s.pow_(gamma) if pow_is_accurate(gamma) else log_of_(s, s_).mul_(gamma).exp_()
    focal.mul_(alpha).masked_fill_(positive, 0)
    focal.add_(q if iou_weighted else positive)
    derivative = None if core is None else core.mul_(focal)
    return nc.mul_(focal).neg_(), derivative


def quality_focal_terms(
    x: Tensor, q: Tensor, beta: float, with_derivative: bool
) -> tuple[Tensor, Tensor | None]:
    """The element-wise quality focal loss and, if asked, its derivative in ``x`` (module doc)."""
    nc, s, s_ = logistic(x, q)
    # for beta - 1 above 8, |d|**(beta - 1) is exp((beta - 1) log|d|), log|d| from |d| and
    # 1 - |d| = min(1 - d, 1 + d) = min(q + s_, (1 - q) + s) (no cancellation where |d| >= 1/2)
    complement = None
    if not pow_is_accurate(beta - 1):
        complement = torch.add(s_, q)
        torch.minimum(complement, torch.rsub(q, 1).add_(s), out=complement)
    ss_ = torch.mul(s, s_) if with_derivative else None
    d = _prob_error(s, s_, q, out=s)
    size = torch.abs(d, out=s_)
    del s, s_
    power: Tensor | None = None
    if complement is not None:
        slope = log_of_(size, complement).mul_(beta - 1).exp_()  # |d|**(beta - 1)
        del size  # overwritten
    else:
        # loss = |d|**beta ce; where |d|**(beta - 1) is clamped (beta < 1) the loss takes the
        # power itself: the clamp would change it below the smallest normal |d|
        if beta < 1:
            power = size.pow(beta)
            size.clamp_min_(torch.finfo(size.dtype).tiny)
        slope = size.pow_(beta - 1)  # |d|**(beta - 1)
    derivative: Tensor | None = None
    if ss_ is not None:
        # sign(d) |d|**(beta - 1) (d**2 + beta s s_ ce): at d = 0 the sign is 0, the limit
        core = ss_.mul_(nc).mul_(-beta).addcmul_(d, d)
        derivative = core.mul_(torch.copysign(slope, d) if beta > 1 else slope * torch.sign(d))
    if power is not None:
        return nc.mul_(power).neg_(), derivative
    return nc.mul_(slope).mul_(d).abs_(), derivative  # |ce |d|**(beta - 1) d| = ce |d|**beta


class Varifocal(torch.autograd.Function):
    """``apply(x, q, positive, alpha, gamma, iou_weighted)``: the element-wise varifocal loss
    (:func:`varifocal_terms`)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        q: Tensor,
        positive: Tensor,
        alpha: float,
        gamma: float,
        iou_weighted: bool,
    ) -> Tensor:
        loss, derivative = varifocal_terms(
            x, q, positive, alpha, gamma, iou_weighted, ctx.needs_input_grad[0]
        )
        ctx.save_for_backward(derivative)  # None without a gradient
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        (derivative,) = ctx.saved_tensors
        return torch.mul(derivative, grad), None, None, None, None, None


class QualityFocal(torch.autograd.Function):
    """``apply(x, q, beta)``: the element-wise quality focal loss (rows are summed outside)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, q: Tensor, beta: float) -> Tensor:
        loss, derivative = quality_focal_terms(x, q, beta, ctx.needs_input_grad[0])
        ctx.save_for_backward(derivative)  # None without a gradient
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (derivative,) = ctx.saved_tensors
        return torch.mul(derivative, grad), None, None
