"""Exact references for the precision tests of the sigmoid losses.

For float32 inputs the exact value of a formula is its float64 evaluation written without
cancellation (float64 carries 29 more bits than the result needs). For float64 inputs it is
mpmath at 50 significant digits. Errors are measured in units in the last place (ulp) of the
result's dtype at the exact value (the subnormal spacing below the smallest normal).
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath  # type: ignore[import-untyped]
import torch
from torch import Tensor

mpmath.mp.dps = 50


def softplus64(z: Tensor) -> Tensor:
    """``log(1 + exp(z))`` in float64, as ``relu(z) + log1p(exp(-|z|))`` (no cancellation)."""
    z = z.double()
    return z.clamp_min(0) + torch.log1p(torch.exp(-z.abs()))


def sigmoid64(z: Tensor) -> Tensor:
    """``1 / (1 + exp(-z))`` in float64, exact down to the smallest float64 subnormals."""
    z = z.double()
    e = torch.exp(-z.abs())
    return torch.where(z >= 0, 1 / (1 + e), e / (1 + e))


def bce64(x: Tensor, t: Tensor) -> Tensor:
    """``t softplus(-x) + (1 - t) softplus(x)`` in float64."""
    t = t.double()
    return t * softplus64(-x) + (1 - t) * softplus64(x)


def one_minus_pt64(x: Tensor, t: Tensor) -> Tensor:
    """``t sigmoid(-x) + (1 - t) sigmoid(x)`` in float64."""
    t = t.double()
    return t * sigmoid64(-x) + (1 - t) * sigmoid64(x)


def alpha_t64(t: Tensor, alpha: float | None) -> Tensor | float:
    if alpha is None:
        return 1.0
    t = t.double()
    return alpha * t + (1 - alpha) * (1 - t)


def pt64(x: Tensor, t: Tensor) -> Tensor:
    """``p_t = t sigmoid(x) + (1 - t) sigmoid(-x)`` in float64."""
    t = t.double()
    return t * sigmoid64(x) + (1 - t) * sigmoid64(-x)


def log64(m: Tensor, p: Tensor) -> Tensor:
    """``log m`` in float64 for ``m`` in ``[0, 1]``, given ``p = 1 - m`` evaluated on its own:
    ``log1p(-p)`` from ``m = 1/2`` up (where ``m`` rounds a small ``p`` away)."""
    small = m < 0.5
    return torch.where(small, torch.log(m), torch.log1p(-torch.where(small, 0.0, p)))


def power64(m: Tensor, p: Tensor, k: float) -> Tensor:
    """``m**k`` in float64 as ``exp(k log m)`` (:func:`log64`), for every exponent."""
    return torch.ones_like(m) if k == 0 else torch.exp(k * log64(m, p))


def focal64(x: Tensor, t: Tensor, alpha: float | None, gamma: float) -> Tensor:
    power = power64(one_minus_pt64(x, t), pt64(x, t), gamma)
    return alpha_t64(t, alpha) * power * bce64(x, t)


def ulp_error(got: Tensor, exact: Tensor, dtype: torch.dtype) -> Tensor:
    """``|got - exact|`` in units of ``dtype``'s spacing at ``exact`` (float64 result)."""
    rounded = exact.to(dtype).abs()
    spacing = torch.nextafter(rounded, torch.full_like(rounded, float("inf"))) - rounded
    spacing = spacing.double().clamp_min(
        torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    )
    return (got.double() - exact).abs() / spacing


# --- mpmath, element by element (for float64 inputs) -------------------------------------------


def _mp_softplus(z: mpmath.mpf) -> mpmath.mpf:
    return mpmath.log1p(mpmath.exp(z)) if z < 0 else z + mpmath.log1p(mpmath.exp(-z))


def _mp_sigmoid(z: mpmath.mpf) -> mpmath.mpf:
    return 1 / (1 + mpmath.exp(-z))


def mp_focal(x: float, t: float, alpha: float | None, gamma: float) -> float:
    """The sigmoid focal loss of one float64 element, exactly rounded."""
    xm, tm = mpmath.mpf(x), mpmath.mpf(t)
    ce = tm * _mp_softplus(-xm) + (1 - tm) * _mp_softplus(xm)
    m = tm * _mp_sigmoid(-xm) + (1 - tm) * _mp_sigmoid(xm)
    a = 1 if alpha is None else alpha * tm + (1 - alpha) * (1 - tm)
    return float(a * m ** mpmath.mpf(gamma) * ce)


def mp_elementwise(fn: Callable[..., float], *tensors: Tensor, **kwargs: object) -> Tensor:
    """``fn`` over the elements of float64 tensors of one shape."""
    flat = [t.double().flatten().tolist() for t in tensors]
    out = [fn(*values, **kwargs) for values in zip(*flat, strict=True)]
    return torch.tensor(out, dtype=torch.float64).view(tensors[0].shape)
