"""Softmax cross-entropy on ``(N, C)`` logits that keeps no logits-sized tensor for backward.

With ``p = softmax(x_i)`` and the row weight ``w_i`` (``class_weight[y_i]``, 0 for an ignored
row)::

    loss_i = -w_i * log p[y_i]            d loss_i / d x_i = w_i * (p - onehot(y_i))

Autograd of ``F.cross_entropy`` keeps the log-softmax (the logits' size) for backward and then
writes the gradient of the log-softmax and the gradient of the logits. Here forward keeps the
logits (already alive), the labels and ``w`` (``(N,)``), and backward writes ``softmax(x)``
straight into the gradient, scales its rows and subtracts the scaled one-hot in place: one
logits-sized buffer in each pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable


class SoftmaxCrossEntropy(torch.autograd.Function):
    """``apply(x, index, row_weight)``: ``-row_weight * log_softmax(x, 1)[index]`` per row.

    ``x`` is ``(N, C)`` floating, ``index`` int64 ``(N,)`` in ``[0, C)``, ``row_weight`` ``(N,)``
    of ``x``'s dtype (0 for rows that contribute nothing). Only ``x`` receives a gradient.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, index: Tensor, row_weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, index, row_weight)
        log_p = torch.log_softmax(x, 1).gather(1, index.unsqueeze(1)).squeeze(1)
        return log_p.mul_(row_weight).neg_()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        x, index, row_weight = ctx.saved_tensors
        scale = torch.mul(grad, row_weight).unsqueeze(1)
        gradient = torch.softmax(x, 1).mul_(scale)
        return gradient.scatter_add_(1, index.unsqueeze(1), scale.neg()), None, None
