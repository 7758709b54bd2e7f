"""The logistic terms of the sigmoid losses, written so that no digit is lost to cancellation.

For logits ``x`` and soft targets ``t`` in ``[0, 1]``:

* :func:`softplus` is ``log(1 + exp(z))``, within a few units in the last place (ulp) of the exact
  value for every finite ``z`` (PyTorch's kernel with its linear branch moved to ``z > 40``,
  where ``exp(-z)`` is below half an ulp of ``z`` even in float64);
* :func:`binary_cross_entropy` is ``t softplus(-x) + (1 - t) softplus(x)``, a sum of non-negative
  terms (``softplus(x) - x t``, its textbook form, cancels for confident correct logits);
* :func:`prob_error` is ``sigmoid(x) - t`` as ``(1 - t) sigmoid(x) - t sigmoid(-x)``: no
  ``1 - sigmoid`` is formed, so hard targets keep full relative precision.

All are plain formulas differentiated by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SOFTPLUS_LINEAR = 40.0


def softplus(z: Tensor, beta: float = 1.0) -> Tensor:
    """``log(1 + exp(beta z)) / beta`` (derivative ``sigmoid(beta z)``); ``z`` itself where
    ``beta z > 40``, so that a huge ``z`` never overflows."""
    return F.softplus(z, beta=beta, threshold=SOFTPLUS_LINEAR)


def binary_cross_entropy(x: Tensor, t: Tensor) -> Tensor:
    """``-t log sigmoid(x) - (1 - t) log sigmoid(-x)`` element-wise, for any soft ``t``."""
    return t * softplus(-x) + (1 - t) * softplus(x)


def alpha_weight(t: Tensor, alpha: float) -> Tensor:
    """``alpha t + (1 - alpha)(1 - t)``, exactly ``alpha`` at ``t = 1`` and ``1 - alpha`` at 0.

    ``lerp`` keeps both ends exact and never cancels in between (``(2 alpha - 1) t + 1 - alpha``
    loses the digits of a small ``alpha`` at ``t = 1``).
    """
    if alpha == 1:
        return t
    ends = [torch.full((), value, dtype=t.dtype, device=t.device) for value in (1 - alpha, alpha)]
    return torch.lerp(ends[0], ends[1], t)


def prob_error(x: Tensor, t: Tensor) -> Tensor:
    """``sigmoid(x) - t`` without forming ``1 - sigmoid(x)`` (exact at ``t`` = 0 and 1)."""
    return (1 - t) * torch.sigmoid(x) - t * torch.sigmoid(-x)
