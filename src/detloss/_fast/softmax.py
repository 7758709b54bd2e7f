"""Softmax losses over rows that hold one logits-sized tensor: their log-softmax, which becomes
the gradient.

Autograd of ``log_softmax`` keeps the log-softmax (the logits' size) for backward, then writes the
gradient of the log-softmax (from the scatter of the picked entries) and the gradient of the
logits: three logits-sized tensors. The Functions here hold one: the forward pass saves its
log-softmax (``save_for_backward``, so saved-tensor hooks such as offloading apply to it) and
backward turns it into the gradient in place (``exp2(log_p log2(e))`` is the CPU's fast
exponential; its rounding is that of ``log_p`` itself). A second backward through the same graph
(``retain_graph=True``) recomputes the log-softmax from the logits.

* :class:`SoftmaxCrossEntropy`: PyTorch's ``F.cross_entropy(x, y, weight, ignore_index,
  reduction="none")`` (its forward kernels, the same values), ``loss_i = -w[y_i] log p_i[y_i]``
  with ``p_i = softmax(x_i)`` (0 for an ignored row); ``d loss_i / d x_i = w[y_i] (p_i - onehot(y_i))``.
* :class:`SoftmaxFocal`: ``loss_i = -alpha (1 - p_t)**gamma log p_t`` with ``p_t = p_i[y_i]``
  and ``(1 - p_t)**gamma`` from ``log p_t`` (:func:`_power_of_one_minus`: accurate for every
  ``gamma`` up to 1e30);
  ``d loss_i / d x_ij = (onehot_j - p_ij) * alpha (gamma (1 - p_t)**(gamma - 1) p_t log p_t
  - (1 - p_t)**gamma)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


def _power_of_one_minus(log_p: Tensor, exponent: float, *, floor: bool = False) -> Tensor:
    """``(1 - p)**exponent`` from ``log p``, accurate for every exponent up to 1e30.

    Where ``p < 1/2``, ``1 - p`` is close to 1 and rounding it would leave ``(1 - p)**gamma`` with
    no correct digit once ``gamma p`` is large (``gamma = 1e10``, ``p = 1e-8``: 1 in float32
    instead of ``e^-100``): there it is ``exp(exponent log1p(-p))``, whose error is that of one
    exponential. Elsewhere ``m = 1 - p = -expm1(log p)`` is exact to rounding and ``m**exponent``
    keeps it (``floor``: ``m`` at least the smallest normal number, for a negative exponent).
    """
    near_one = log_p < -math.log(2)
    log_m = torch.log1p(torch.exp(log_p).neg_())
    m = torch.expm1(log_p).neg_()
    if floor:
        m = m.clamp_min_(torch.finfo(m.dtype).tiny)
    return torch.where(near_one, log_m.mul_(exponent).exp_(), m.pow_(exponent))


def _saved_log_softmax(ctx: Any) -> tuple[Tensor, ...]:
    """``ctx.saved_tensors``, the last (the log-softmax) ready to be overwritten: backward turns it
    into the gradient in place. It is written through ``.data``, an alias with its own version
    counter, so that a second backward through a retained graph can still unpack the saved
    tensors; that one, like one where the log-softmax was not saved, recomputes it from the
    logits (the first saved tensor)."""
    *saved, log_p = ctx.saved_tensors
    spent = log_p is None or ctx.log_p_spent
    ctx.log_p_spent = True
    return *saved, torch.log_softmax(saved[0], 1) if spent else log_p.data


class SoftmaxCrossEntropy(torch.autograd.Function):
    """``apply(x, labels, class_weight, ignore_index)``: ``F.cross_entropy`` per row of ``x``
    ``(N, C)`` (labels int64 ``(N,)``, ``class_weight`` ``(C,)`` or None), PyTorch's forward
    kernels and values. Only ``x`` receives a gradient.

    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, labels: Tensor, class_weight: Tensor | None, ignore_index: int
    ) -> Tensor:
        log_p = torch.log_softmax(x, 1)
        ctx.save_for_backward(x, labels, class_weight, log_p if ctx.needs_input_grad[0] else None)
        ctx.ignore_index, ctx.log_p_spent = ignore_index, False
        return F.nll_loss(log_p, labels, class_weight, ignore_index=ignore_index, reduction="none")

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        _, labels, class_weight, log_p = _saved_log_softmax(ctx)
        valid = labels != ctx.ignore_index
        index = torch.where(valid, labels, 0).unsqueeze(1)
        scale = grad * valid if class_weight is None else grad * class_weight[index[:, 0]] * valid
        scale = scale.unsqueeze(1)
        gradient = log_p.mul_(1 / math.log(2)).exp2_().mul_(scale)  # softmax(x) * scale
        return gradient.scatter_add_(1, index, scale.neg_()), None, None, None


class SoftmaxFocal(torch.autograd.Function):
    """``apply(x, labels, alpha, gamma)``: the softmax focal loss of each row of ``x`` ``(N, C)``
    at its label (int64 ``(N,)`` in ``[0, C)``). Only ``x`` receives a gradient; the log-softmax
    is saved and turned into the gradient as in :class:`SoftmaxCrossEntropy`."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, labels: Tensor, alpha: float, gamma: float) -> Tensor:
        log_p = torch.log_softmax(x, 1)
        index = labels.unsqueeze(1)
        log_pt = log_p.gather(1, index).squeeze(1)
        ctx.save_for_backward(x, labels, log_pt, log_p if ctx.needs_input_grad[0] else None)
        ctx.alpha, ctx.gamma, ctx.log_p_spent = alpha, gamma, False
        # A logit spread beyond the float range makes log p_t = -inf (x_y - max overflows) where
        # the loss itself is finite: there half of log p_t is x_y/2 - max/2, exact, since the
        # -log(sum exp(x - max))/2 that log p_t also holds is at most log(C)/2, below half an ulp
        # of a number beyond 1.7e38. Elsewhere log_pt/2 is exact, and so is the product with
        # -2 alpha: the same value, bit for bit.
        half = x.gather(1, index).squeeze(1).mul(0.5).sub_(x.amax(1).mul(0.5))
        half_log_pt = torch.where(torch.isinf(log_pt), half, log_pt * 0.5)
        return _power_of_one_minus(log_pt, gamma).mul_(half_log_pt).mul_(-2 * alpha)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        _, labels, log_pt, log_p = _saved_log_softmax(ctx)
        alpha, gamma = ctx.alpha, ctx.gamma
        index = labels.unsqueeze(1)
        # clamped: p_t log p_t is 0, not 0 * -inf, where a huge logit spread gives log p_t = -inf
        log_pt = log_pt.unsqueeze(1).clamp_min(torch.finfo(log_p.dtype).min)
        # m**(gamma - 1) is infinite at m = 1 - p_t = 0 for gamma < 1, where p_t log p_t = 0
        # (the limit of the product is 0): with m at least the smallest number, it is that 0.
        slope = _power_of_one_minus(log_pt, gamma - 1, floor=gamma < 1)
        row = slope.mul_(log_pt.exp()).mul_(log_pt).mul_(gamma)
        row = row.sub_(_power_of_one_minus(log_pt, gamma))
        row.mul_(grad.unsqueeze(1)).mul_(alpha)
        gradient = log_p.mul_(1 / math.log(2)).exp2_().mul_(row.neg())  # -softmax(x) * row
        return gradient.scatter_add_(1, index, row), None, None, None
