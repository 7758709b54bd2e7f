"""Element-wise regression losses: Smooth L1 (beta, sigma and Caffe forms), Huber, L1, L2, Balanced L1.

Every function takes ``pred`` and ``target`` of the same shape (no broadcasting), computes
float16/bfloat16 inputs in float32, and reduces through :func:`detloss.reduction.weight_reduce_loss`
(``weight``, ``reduction`` in {"none", "mean", "sum"}, ``avg_factor``). The element-wise values are
PyTorch's own kernels where it has them, differentiated by autograd.

Finite inputs give finite losses and gradients, except where the exact value exceeds the compute
dtype's range: the L2 loss of a residual above about 1.8e19 (float32), or Huber's and Balanced
L1's of a residual times a parameter beyond it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss.checks import check_number, prepare_pair
from detloss.reduction import check_weight, weight_reduce_loss

__all__ = [
    "balanced_l1_loss",
    "caffe_smooth_l1_loss",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "smooth_l1_loss",
]

SIGMA_RANGE: tuple[float, float] = (1e-150, 1e150)
"""Caffe's ``sigma``: beyond these ``beta = 1 / sigma^2`` is not a finite, non-zero float."""
BALANCED_L1_RATIO_RANGE: tuple[float, float] = (1e-30, 80.0)
"""Balanced L1's ``gamma / alpha``: ``b = exp(gamma / alpha) - 1`` and ``1 / b`` stay finite and
non-zero in float32."""
BALANCED_L1_SLOPE_MAX = 1e30
"""Balanced L1's largest ``alpha / b``: the gradient passes through ``alpha / b * log(...)``."""
BALANCED_L1_BETA_RANGE: tuple[float, float] = (1e-30, 1e30)


def resolve_beta(beta: float | None, sigma: float | None) -> float:
    """The Smooth L1 ``beta`` from either parameterisation: ``beta`` or Caffe's ``sigma`` (beta = 1/sigma^2).

    Neither given means beta = 1.0; both given is an error. ``beta >= 0``; ``sigma`` in
    :data:`SIGMA_RANGE`.
    """
    if beta is not None and sigma is not None:
        raise ValueError(
            f"give beta or sigma, not both (got beta={beta!r}, sigma={sigma!r}); beta = 1 / sigma**2"
        )
    if sigma is not None:
        low, high = SIGMA_RANGE
        inverse = 1.0 / check_number(sigma, "sigma", low=low, strict=False, high=high)
        return inverse * inverse
    if beta is None:
        return 1.0
    return check_number(beta, "beta", low=0.0, strict=False)


def _smooth_l1(pred: Tensor, target: Tensor, beta: float) -> Tensor:
    """Element-wise Smooth L1: PyTorch's kernel, whose ``0.5 x**2 / beta`` overflows at ``x**2``
    for ``beta`` above the square root of the dtype's largest number; there
    ``0.5 (x / sqrt(beta))**2``, whose value and gradient overflow only with the result."""
    if beta <= math.sqrt(torch.finfo(pred.dtype).max):
        # PyTorch's kernel computes plain L1 when beta == 0 (value and gradient).
        return F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    x = (pred - target).abs()
    scaled = x / math.sqrt(beta)
    return torch.where(x < beta, 0.5 * scaled * scaled, x - 0.5 * beta)


def check_balanced_l1(alpha: float, gamma: float, beta: float) -> tuple[float, float, float]:
    """Balanced L1's ``alpha, gamma > 0`` with ``gamma / alpha`` in :data:`BALANCED_L1_RATIO_RANGE`,
    ``alpha / b`` at most :data:`BALANCED_L1_SLOPE_MAX` and ``beta`` in
    :data:`BALANCED_L1_BETA_RANGE`; ``ValueError`` otherwise."""
    a = check_number(alpha, "alpha", low=0.0, strict=True)
    g = check_number(gamma, "gamma", low=0.0, strict=True)
    low, high = BALANCED_L1_BETA_RANGE
    b = check_number(beta, "beta", low=low, strict=False, high=high)
    low, high = BALANCED_L1_RATIO_RANGE
    if not low <= g / a <= high:
        raise ValueError(
            f"gamma / alpha must be in [{low:g}, {high:g}] (b = exp(gamma / alpha) - 1 and 1 / b "
            f"must be finite in float32), got gamma={gamma!r}, alpha={alpha!r}"
        )
    if a / math.expm1(g / a) > BALANCED_L1_SLOPE_MAX:
        raise ValueError(
            f"alpha / (exp(gamma / alpha) - 1) must be <= {BALANCED_L1_SLOPE_MAX:g} (roughly "
            f"alpha^2 / gamma for large alpha), got gamma={gamma!r}, alpha={alpha!r}"
        )
    return a, g, b


def smooth_l1_loss(
    pred: Tensor,
    target: Tensor,
    beta: float | None = None,
    *,
    sigma: float | None = None,
    l1_below: float = 0.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Smooth L1 loss (Girshick, Fast R-CNN, ICCV 2015).

    With ``x = pred - target``::

        loss(x) = 0.5 * x**2 / beta      if |x| < beta
                  |x| - 0.5 * beta       otherwise

    Args:
        pred, target: tensors of the same shape ``(*)``; ``pred`` floating point.
        beta: the quadratic zone's half-width, ``beta >= 0`` (default 1.0). ``beta == 0`` is exactly
            L1 with finite gradients (a ``torch.where`` formulation divides by zero in the unused
            branch and sends NaN into the gradient, PyTorch issue 96813; fvcore avoids it the same
            way, by computing L1 below ``beta < 1e-5``).
        sigma: Caffe / py-faster-rcnn parameterisation, in [1e-150, 1e150]; ``beta = 1 / sigma**2``.
            Give ``beta`` or ``sigma``, not both.
        l1_below: ``>= 0``; a ``beta`` below it is taken as 0 (exact L1). Default 0: only
            ``beta == 0`` is L1. fvcore's ``smooth_l1_loss`` is ``l1_below=1e-5``.
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    Conventions: PyTorch ``F.smooth_l1_loss(beta=b)``, fvcore ``smooth_l1_loss(beta=b)`` and
    mmdetection ``SmoothL1Loss(beta=b)`` are ``beta=b``; py-faster-rcnn's RPN ``sigma=3`` and its
    detection head ``sigma=1``; torchvision's RPN and RoI heads use ``beta=1/9`` with ``"sum"``
    divided by the number of sampled anchors/RoIs; detectron2's default ``SMOOTH_L1_BETA`` is 0 (L1).
    Huber's ``delta`` form is ``delta * smooth_l1_loss(beta=delta)`` (:func:`huber_loss`).
    """
    beta = resolve_beta(beta, sigma)
    if beta < check_number(l1_below, "l1_below", low=0.0, strict=False):
        beta = 0.0
    pred, target = prepare_pair(pred, target)
    return weight_reduce_loss(_smooth_l1(pred, target, beta), weight, reduction, avg_factor)


def huber_loss(
    pred: Tensor,
    target: Tensor,
    delta: float = 1.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Huber loss (Huber, 1964), ``delta > 0``.

    With ``x = pred - target``::

        loss(x) = 0.5 * x**2                  if |x| < delta
                  delta * (|x| - 0.5 * delta)  otherwise

    which is ``delta * smooth_l1_loss(beta=delta)``; equal to PyTorch's ``F.huber_loss(delta=delta)``.
    Its gradient is ``x`` clipped to ``[-delta, delta]`` (Smooth L1's is clipped to ``[-1, 1]``).
    """
    delta = check_number(delta, "delta", low=0.0, strict=True)
    pred, target = prepare_pair(pred, target)
    loss = F.huber_loss(pred, target, reduction="none", delta=delta)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def l1_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """L1 loss ``|pred - target|``; ``smooth_l1_loss(beta=0)``. Equal to PyTorch's ``F.l1_loss``."""
    pred, target = prepare_pair(pred, target)
    loss = F.l1_loss(pred, target, reduction="none")
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def mse_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """L2 loss ``(pred - target)**2`` (no 1/2 factor), equal to PyTorch's ``F.mse_loss``."""
    pred, target = prepare_pair(pred, target)
    loss = F.mse_loss(pred, target, reduction="none")
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def balanced_l1_loss(
    pred: Tensor,
    target: Tensor,
    alpha: float = 0.5,
    gamma: float = 1.5,
    beta: float = 1.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Balanced L1 loss (Pang et al., Libra R-CNN, CVPR 2019).

    With ``x = |pred - target|`` and ``b = exp(gamma / alpha) - 1``::

        loss(x) = alpha / b * (b*x + 1) * log(b*x/beta + 1) - alpha*x   if x < beta
                  gamma*x + gamma/b - alpha*beta                       otherwise

    The constant ``gamma/b - alpha*beta`` makes the two pieces meet at ``x = beta``. With the paper's
    ``beta = 1`` the gradient is ``alpha * log(b*x + 1)`` inside (promoting small, inlier residuals)
    and ``gamma`` outside. Parameters: ``alpha > 0``, ``gamma > 0``, ``gamma / alpha`` in
    [1e-30, 80] (so that ``b`` and ``1 / b`` are finite in float32; the default is 3),
    ``alpha / b <= 1e30`` (about ``alpha <= 1e15 sqrt(gamma)``), ``beta`` in [1e-30, 1e30]; defaults and formula as the paper and mmdetection's ``BalancedL1Loss`` (whose
    formula, for ``beta != 1``, is slightly negative near ``x = 0``; detloss reproduces it rather
    than changing the numbers).
    """
    alpha, gamma, beta = check_balanced_l1(alpha, gamma, beta)
    b = math.expm1(gamma / alpha)

    pred, target = prepare_pair(pred, target)
    x = (pred - target).abs()
    # alpha / b (b x + 1) log(b x / beta + 1) - alpha x, written without b * x, on x clamped to
    # the branch's own range (beta) so that the unused branch of large x overflows nowhere
    near = x.clamp(max=beta)
    inner = alpha * (near + 1 / b) * torch.log1p(near * (b / beta)) - alpha * near
    loss = torch.where(x < beta, inner, gamma * x + (gamma / b - alpha * beta))
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def caffe_smooth_l1_loss(
    pred: Tensor,
    target: Tensor,
    inside_weight: Tensor,
    outside_weight: Tensor,
    sigma: float = 1.0,
    dim: tuple[int, ...] = (1,),
    *,
    reduction: str = "mean",
) -> Tensor:
    """Smooth L1 as the Caffe ``SmoothL1Loss`` layer of py-faster-rcnn (Ren et al., NeurIPS 2015).

    ::

        d    = inside_weight * (pred - target)
        f(d) = 0.5 * sigma**2 * d**2       if |d| < 1 / sigma**2
               |d| - 0.5 / sigma**2        otherwise
        loss = mean over the remaining dims of  sum over ``dim`` of  outside_weight * f(d)

    ``f`` is :func:`smooth_l1_loss` with ``beta = 1/sigma**2``. In py-faster-rcnn the inside
    weight is 1 on positive anchors' coordinates and 0 elsewhere, the outside weight
    ``1 / number of labelled anchors``; the RPN used ``sigma=3``, the detection head ``sigma=1``.
    The layer divides the total by the batch size N: for RPN deltas of shape (N, 4A, H, W) that is
    ``dim=(1, 2, 3)``; for (R, 4) deltas the default ``dim=(1,)``.

    Args:
        pred, target: tensors of the same shape.
        inside_weight, outside_weight: tensors that broadcast to ``pred``'s shape.
        sigma: in [1e-150, 1e150].
        dim: the dimensions summed before the mean over the rest.
        reduction: "mean" (the layer's semantics), "sum", or "none" (the per-row sums).
    """
    beta = resolve_beta(None, sigma)
    pred, target = prepare_pair(pred, target)
    inside = check_weight(inside_weight, pred.shape, "inside_weight").to(pred.dtype)
    outside = check_weight(outside_weight, pred.shape, "outside_weight").to(pred.dtype)
    f = _smooth_l1(inside * pred, inside * target, beta)
    per_row = (outside * f).sum(dim=dim)
    return weight_reduce_loss(per_row, reduction=reduction)
