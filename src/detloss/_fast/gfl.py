"""The varifocal and quality focal losses with their derivatives, computed in the forward pass.

For logits ``x`` and soft targets ``q`` in ``[0, 1]`` (element-wise), with ``s = sigmoid(x)``,
``s' = sigmoid(-x)``, ``sp = softplus(x)`` and ``ce = q softplus(-x) + (1 - q) softplus(x)``::

    varifocal:  F = w_q (q > 0) or alpha s**gamma (q = 0),  w_q = q or 1 (iou_weighted)
                loss = F ce,   d/dx = F ((s - q) + gamma [q = 0] s' sp)
    quality:    d = s - q
                loss = |d|**beta ce,   d/dx = |d|**beta d + beta sign(d) |d|**(beta - 1) s s' ce

The logistic terms come from ``u = relu(x)``, ``v = relu(-x)``, ``A = exp(-v)``, ``B = exp(-u)``,
``e = A B = exp(-|x|)`` and ``r = 1 / (1 + e) = exp(-log1p(e))``: ``s = A r``, ``s' = B r``,
``s s' = e r**2``, ``sp = u + log1p(e)``, ``ce = (1 - q) u + q v + log1p(e)`` and
``s - q = r ((1 - q) A - q B)``, every one without cancellation (``s - q`` cancels only at its zero).
The derivative stays finite for every finite logit: each product that autograd would form on the
way (``ce`` times the derivative of the focal factor, above the float32 range at ``|x| ~ 3e38``)
is replaced by its limit. The forward pass saves the derivative for backward; targets receive no
gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def varifocal_terms(
    x: Tensor,
    q: Tensor,
    alpha: float,
    gamma: float,
    iou_weighted: bool,
    with_derivative: bool,
) -> tuple[Tensor, Tensor | None]:
    """The element-wise varifocal loss and, if asked, its derivative in ``x`` (module doc)."""
    u = torch.clamp_min(x, 0)
    v = torch.sub(u, x)
    ce = torch.lerp(u, v, q)  # exact at q = 0 and q = 1
    b = torch.neg(u).exp_()  # B
    a = v.neg_().exp_()  # A
    log1p_e = torch.mul(a, b).log1p_()
    ce.add_(log1p_e)
    sp = u.add_(log1p_e)  # softplus(x)
    r = log1p_e.neg_().exp_()
    focal = torch.mul(a, r).pow_(gamma).mul_(alpha)  # alpha s**gamma, at most alpha
    positive = torch.heaviside(q, torch.zeros((), dtype=q.dtype, device=q.device))
    weight = q if iou_weighted else torch.ones((), dtype=q.dtype, device=q.device)
    focal = torch.lerp(focal, weight, positive, out=focal)  # F; both ends finite: exact choice
    derivative: Tensor | None = None
    if with_derivative:
        d = torch.lerp(a, b, q, out=a).addcmul_(b, q, value=-2)  # (1 - q) A - q B
        # gamma [q = 0] s' sp / r = gamma (1 - [q > 0]) B sp: 0 where B or sp underflows
        tail = b.mul_(sp).mul_(gamma)
        d.add_(tail.addcmul_(tail, positive, value=-1))
        derivative = d.mul_(r).mul_(focal)
    return ce.mul_(focal), derivative


def quality_focal_terms(
    x: Tensor, q: Tensor, beta: float, with_derivative: bool
) -> tuple[Tensor, Tensor | None]:
    """The element-wise quality focal loss and, if asked, its derivative in ``x`` (module doc)."""
    u = torch.clamp_min(x, 0)
    ce = torch.lerp(u, torch.sub(u, x), q)  # exact at q = 0 and q = 1
    a = torch.clamp_max(x, 0).exp_()  # A
    b = u.neg_().exp_()  # B
    e = torch.mul(a, b)
    r = torch.log1p(e)
    ce.add_(r)
    r.neg_().exp_()
    d = torch.lerp(a, b, q, out=a).addcmul_(b, q, value=-2).mul_(r)  # s - q
    del u, b
    size = d.abs()
    power = size.pow(beta)
    if not with_derivative:
        return ce.mul_(power), None
    # beta sign(d) |d|**(beta - 1) s s' ce, with s s' = e r**2
    if beta > 1:
        slope = size.pow_(beta - 1).copysign_(d)  # 0 at d = 0, whatever the sign of the zero
    else:
        # |d|**(beta - 1) is infinite at d = 0 for beta < 1, where sign(d) = 0: the limit is 0
        # (and autograd's subgradient for beta = 1); clamped, the product is that 0
        size.clamp_min_(torch.finfo(size.dtype).tiny).pow_(beta - 1)
        slope = size.mul_(torch.sign(d))
    derivative = e.mul_(r).mul_(r).mul_(ce).mul_(slope).mul_(beta).addcmul_(power, d)
    return ce.mul_(power), derivative


class Varifocal(torch.autograd.Function):
    """``apply(x, q, alpha, gamma, iou_weighted)``: the element-wise varifocal loss."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, q: Tensor, alpha: float, gamma: float, iou_weighted: bool
    ) -> Tensor:
        loss, derivative = varifocal_terms(
            x, q, alpha, gamma, iou_weighted, ctx.needs_input_grad[0]
        )
        ctx.save_for_backward(derivative)  # None without a gradient
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        (derivative,) = ctx.saved_tensors
        return torch.mul(derivative, grad), None, None, None, None


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
