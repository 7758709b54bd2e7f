"""The logistic terms of the sigmoid losses on logits, and the logarithm behind their powers.

For logits ``x`` and targets ``t`` in ``[0, 1]`` (element-wise), every term comes from
``u = relu(x)``, ``v = relu(-x)`` (one of them is 0), ``e = exp(-|x|)`` and
``r = 1 / (1 + e)``:

* ``s = sigmoid(x)`` and ``s_ = sigmoid(-x)`` are ``r`` and ``e r`` (``r`` the larger, ``x``'s sign
  deciding), exact down to subnormals;
* ``ce = t softplus(-x) + (1 - t) softplus(x) = (1 - t) u + t v + log1p(e)``, a sum of
  non-negative terms: no cancellation, so a confident correct logit keeps all its digits.

A power ``m**k`` of a probability ``m`` of these losses rounds ``m`` first: ``m`` rounds to 1 where
``1 - m`` is below half an ulp of 1 (from ``x = 17`` for ``m = sigmoid(x)`` in float32), and
``pow`` multiplies ``m``'s relative error by ``k``. Up to :func:`pow_is_accurate`'s ``k = 8`` that
keeps the losses' bound of ``5 + 2 k`` ulp; above, the power is ``exp(k log m)`` with ``log m``
from :func:`log_of`, within a few ulp times ``1 + |k log m|`` (the conditioning of ``exp``;
``|k log m|`` is at most about 100 where the power is a normal number) for every exponent up to
the float range.
"""

from __future__ import annotations

import torch
from torch import Tensor


def logistic(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(-ce, s, s_)`` (module doc) in three fresh buffers (a fourth is alive inside)."""
    mn = torch.clamp_max(x, 0)  # -v
    nu = torch.sub(mn, x)  # -u, exact (+0 for x <= 0)
    nc = torch.lerp(nu, mn, t)  # -((1 - t) u + t v); exact at t = 0 and t = 1
    e = torch.add(mn, nu, out=mn).exp_()  # exp(-|x|)
    r = torch.log1p(e)
    nc.sub_(r)
    r.neg_().exp_()  # r = 1 / (1 + e)
    # Of s and s_ the larger is r, the other e r (both r at x = 0): each is the larger of e r and
    # r signed as x (resp. -u), a selection without rounding.
    e.mul_(r)
    s_ = torch.maximum(e, torch.copysign(r, nu, out=nu), out=nu)
    s = torch.maximum(e, torch.copysign(r, x, out=r), out=r)
    return nc, s, s_


def pow_is_accurate(k: float) -> bool:
    """Whether ``pow`` gives the power ``m**k`` within the losses' bound (module doc)."""
    return k <= 8


def log_of_(m: Tensor, p: Tensor) -> Tensor:
    """``log m`` for ``m`` in ``[0, 1]``, given ``p = 1 - m`` evaluated on its own: ``log(m)`` below
    ``m = 1/2``, ``log1p(-p)`` from there up (where ``m`` has rounded ``p`` away), each within a
    few ulp; into ``p``'s buffer (``m`` is overwritten too)."""
    small = torch.lt(m, 0.5)
    return torch.where(small, m.log_(), p.neg_().log1p_(), out=p)
