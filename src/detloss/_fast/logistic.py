"""The logistic terms of the sigmoid losses on logits, and the logarithm behind their powers.

For logits ``x`` and targets ``t`` in ``[0, 1]`` (element-wise), every term comes from
``u = relu(x)``, ``v = relu(-x)`` (one of them is 0), ``A = exp(-v)``, ``B = exp(-u)`` (one of them
is 1, the other ``e = exp(-|x|) = A B`` exactly) and ``r = 1 / (1 + e) = exp(-log1p(e))``:

* ``s = sigmoid(x) = A r`` and ``s_ = sigmoid(-x) = B r``, exact down to subnormals;
* ``ce = t softplus(-x) + (1 - t) softplus(x) = (1 - t) u + t v + log1p(e)``, a sum of
  non-negative terms: no cancellation, so a confident correct logit keeps all its digits.

A power ``m**k`` of a probability ``m`` of these losses rounds ``m`` first: ``m`` rounds to 1 where
``1 - m`` is below half an ulp of 1 (from ``x = 17`` for ``m = sigmoid(x)`` in float32), and
``pow`` multiplies ``m``'s relative error by ``k``. Up to :func:`pow_is_accurate`'s ``k = 8`` that
keeps the losses' bound of ``5 + 2 k`` ulp; above, the power is ``exp(k log m)`` with ``log m``
from :func:`log_of_`, within a few ulp times ``1 + |k log m|`` (the conditioning of ``exp``;
``|k log m|`` is at most about 100 where the power is a normal number) for every exponent up to
the float range.
"""

from __future__ import annotations

import torch
from torch import Tensor


def logistic(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(-ce, s, s_)`` (module doc) in three fresh buffers (a fourth is alive inside)."""
    mn = torch.clamp_max(x, 0)  # -v
    nu = torch.sub(mn, x)  # -u, exact
    nc = torch.lerp(nu, mn, t)  # -((1 - t) u + t v); exact at t = 0 and t = 1
    b = nu.exp_()  # B
    a = mn.exp_()  # A
    r = torch.mul(a, b).log1p_()  # log1p(e), e = A B exactly (one factor is 1)
    nc.sub_(r)
    r.neg_().exp_()  # r = 1 / (1 + e)
    return nc, a.mul_(r), b.mul_(r)


def pow_is_accurate(k: float) -> bool:
    """Whether ``pow`` gives the power ``m**k`` within the losses' bound (module doc)."""
    return k <= 8


def log_of_(m: Tensor, p: Tensor) -> Tensor:
    """``log m`` for ``m`` in ``[0, 1]``, given ``p = 1 - m`` evaluated on its own: ``log(m)`` below
    ``m = 1/2``, ``log1p(-p)`` from there up (where ``m`` has rounded ``p`` away), each within a
    few ulp; into ``p``'s buffer (``m`` is overwritten too)."""
    small = torch.lt(m, 0.5)
    return torch.where(small, m.log_(), p.neg_().log1p_(), out=p)
