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


def softplus(z: Tensor) -> Tensor:
    """``log(1 + exp(z))`` (derivative ``sigmoid(z)``)."""
    return F.softplus(z, threshold=SOFTPLUS_LINEAR)


def binary_cross_entropy(x: Tensor, t: Tensor) -> Tensor:
    """``-t log sigmoid(x) - (1 - t) log sigmoid(-x)`` element-wise, for any soft ``t``."""
    return t * softplus(-x) + (1 - t) * softplus(x)


def prob_error(x: Tensor, t: Tensor) -> Tensor:
    """``sigmoid(x) - t`` without forming ``1 - sigmoid(x)`` (exact at ``t`` = 0 and 1)."""
    return (1 - t) * torch.sigmoid(x) - t * torch.sigmoid(-x)
