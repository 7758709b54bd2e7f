"""Gradient Harmonizing Mechanism losses GHM-C and GHM-R (Li, Liu & Wang, "Gradient Harmonized
Single-stage Detector", AAAI 2019), with mmdetection's conventions (``GHMC``, ``GHMR``).

Each element gets a gradient norm ``g`` in [0, 1] (constant for the gradient):

* GHM-C: ``g = |sigmoid(x) - t|``, the norm of binary cross-entropy's gradient in the logit;
* GHM-R: ``g = |d| / sqrt(d^2 + mu^2)`` with ``d = pred - target``, the norm of the gradient of the
  Authentic Smooth L1 loss ``ASL1(d) = sqrt(d^2 + mu^2) - mu``.

``[0, 1]`` is cut into ``bins`` equal bins (mmdetection's float32 edges ``k / bins``; the last edge
is ``1 + 1e-6`` for GHM-C and ``1000`` for GHM-R). Over the valid elements (``label_weight > 0``),
``count_b`` is the number in bin ``b``, ``n`` the number of non-empty bins and ``total`` the number of
valid elements (GHM-C) or the sum of ``label_weight`` (GHM-R), at least 1. An element in bin ``b``
is weighted ``total / (n * density_b)``, where the density is ``count_b`` or, with momentum,
mmdetection's moving average ``acc_sum_b <- momentum acc_sum_b + (1 - momentum) count_b`` of the
non-empty bins (kept by the modules :class:`detloss.GHMC` / :class:`detloss.GHMR`); invalid
elements weigh 0. "mean" divides the weighted sum by ``total`` (``avg_factor``).

The histogram is a ``scatter_add`` of each element's bin (``torch.bucketize``), so nothing reads
tensor values on the host. The statistics of a step are one float64 vector ``(count_0, ...,
count_{bins-1}, total)`` (:func:`ghmc_statistics`, :func:`ghmr_statistics`): the modules sum it
over distributed ranks before using it, so that every rank weighs its elements as the
concatenated batch would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detloss._labels import dense_targets, label_mask
from detloss.checks import check_divisor, check_floating, check_tensor, compute_dtype
from detloss.reduction import weight_reduce_loss

__all__ = ["ghmc_loss", "ghmr_loss"]


def ghmc_last_edge() -> float:
    """GHM-C's last bin edge, mmdetection's ``1 + 1e-6``. Returned by a function: under
    torch.compile(dynamic=True) a float read from a module global is a graph input (a tensor made
    on every call), a literal is a constant."""
    return 1.0 + 1e-6


def ghmr_last_edge() -> float:
    """GHM-R's last bin edge, mmdetection's ``1000`` (as :func:`ghmc_last_edge`)."""
    return 1e3


def check_mu(mu: object) -> float:
    """GHM-R's ``mu``, in [1e-30, 1e30]."""
    return check_divisor(mu, "mu")


MAX_BINS = 1 << 20


def check_bins(bins: object) -> int:
    """``bins`` as an int in ``[1, MAX_BINS]``; ``TypeError`` / ``ValueError`` otherwise."""
    if isinstance(bins, bool) or not isinstance(bins, int):
        raise TypeError(f"bins must be an int, got {type(bins).__name__}")
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be in [1, {MAX_BINS}], got {bins}")
    return bins


def ghm_edges(bins: int, last_edge: float, device: torch.device | None = None) -> Tensor:
    """mmdetection's float32 bin edges ``k / bins`` (``k = 0..bins``), the last one replaced by
    ``last_edge`` (made on ``device``: no host-to-device copy)."""
    first = torch.arange(check_bins(bins), dtype=torch.float32, device=device) / bins
    return torch.cat([first, torch.full((1,), last_edge, dtype=torch.float32, device=device)])


def _classification_pair(
    pred: object, target: object, label_weight: object
) -> tuple[Tensor, Tensor, Tensor]:
    """GHM-C's logits, dense targets and element-wise label weights in the compute dtype.

    Integer targets ``(N,)`` on ``(N, C)`` logits are class indices (``C`` and above: background,
    an all-zero row; negative: ignored, a row of label weight 0) and a ``(N,)`` label weight then
    weighs whole rows (mmdetection's ``_expand_onehot_labels``).
    """
    x = check_floating(pred, "pred")
    t = check_tensor(target, "target")
    if t.dtype.is_complex:
        raise TypeError(f"target must be real (floating, bool or integer), got dtype {t.dtype}")
    indices = not (t.dtype.is_floating_point or t.dtype == torch.bool)
    if indices and (x.dim() != 2 or t.shape != x.shape[:1]):
        raise ValueError(
            "integer targets must be class indices of shape (N,) for pred of shape (N, C), "
            f"got target {tuple(t.shape)} and pred {tuple(x.shape)}"
        )
    if not indices and t.shape != x.shape:
        raise ValueError(
            f"floating targets must have pred's shape {tuple(x.shape)}, got {tuple(t.shape)}"
        )
    lw = None if label_weight is None else check_tensor(label_weight, "label_weight")
    floats = [v for v in (t, lw) if v is not None and v.dtype.is_floating_point]
    dtype = compute_dtype(x, *floats)
    if not indices:
        return x.to(dtype), t.to(dtype), _label_weight(lw, x, dtype)
    if lw is not None and lw.shape == x.shape[:1]:
        lw = lw.unsqueeze(1)
    weight = _label_weight(lw, x, dtype) * label_mask(t, x.shape, dtype)
    return x.to(dtype), dense_targets(t.long(), x).to(dtype), weight


def _label_weight(label_weight: Tensor | None, x: Tensor, dtype: torch.dtype) -> Tensor:
    if label_weight is None:
        return torch.ones_like(x, dtype=dtype)
    try:
        return label_weight.to(dtype).expand(x.shape)
    except RuntimeError:
        raise ValueError(
            f"label_weight of shape {tuple(label_weight.shape)} cannot broadcast to pred's "
            f"shape {tuple(x.shape)}"
        ) from None


def _classification_norm(x: Tensor, t: Tensor) -> Tensor:
    return (x.detach().sigmoid() - t).abs()


def _regression_norm(d: Tensor, mu: float) -> Tensor:
    d = d.detach()
    return d.abs() / torch.hypot(d, d.new_full((), mu))


def _bin_index(g: Tensor, valid: Tensor, edges: Tensor) -> Tensor:
    """Each element's bin in ``[0, bins)``, or ``bins`` for an invalid element or one outside the
    edges (bin ``b`` holds ``edges[b] <= g < edges[b + 1]``, as mmdetection's comparisons)."""
    bins = edges.numel() - 1
    index = torch.bucketize(g, edges.to(g.dtype), right=True) - 1
    return torch.where(valid & (index >= 0), index, bins)


def _statistics(index: Tensor, label_weight: Tensor, bins: int, count_total: bool) -> Tensor:
    """The histogram of the bin indices (``bins`` counts) and the total, as float64."""
    flat = index.reshape(-1)
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=index.device)
    counts = counts.scatter_add(0, flat, torch.ones_like(flat))
    total = (label_weight > 0).sum() if count_total else label_weight.sum(dtype=torch.float64)
    return torch.cat([counts[:-1].to(torch.float64), total.to(torch.float64).reshape(1)])


def _harmonising_weight(
    index: Tensor, statistics: Tensor, density: Tensor | None, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Each element's weight ``total / (n * density_b)`` (0 if invalid) and ``total``."""
    counts = statistics[:-1].to(index.device)
    total = statistics[-1].to(device=index.device, dtype=dtype).clamp_min(1)
    filled = counts > 0
    n = filled.sum().to(dtype)
    d = counts if density is None else density.to(index.device)
    per_bin = torch.where(filled, total / torch.where(filled, n * d.to(dtype), 1), 0)
    return F.pad(per_bin, (0, 1))[index], total


def _check_statistics(statistics: Tensor | None, density: Tensor | None, bins: int) -> None:
    if statistics is not None and check_tensor(statistics, "statistics").shape != (bins + 1,):
        raise ValueError(
            f"statistics must have shape ({bins + 1},) (the bin counts and the total), "
            f"got {tuple(statistics.shape)}"
        )
    if density is not None and check_tensor(density, "density").shape != (bins,):
        raise ValueError(f"density must have shape ({bins},), got {tuple(density.shape)}")


def _reduce(
    loss: Tensor,
    weights: Tensor,
    total: Tensor,
    reduction: str,
    avg_factor: float | Tensor | None,
) -> Tensor:
    """One reduction; "mean" divides by ``avg_factor``, by default ``total`` (mmdetection's "sum"
    raises, since it passes ``avg_factor=total`` for every reduction: here it is the plain sum)."""
    if reduction == "mean" and avg_factor is None:
        avg_factor = total
    return weight_reduce_loss(loss, weights, reduction, avg_factor)


def ghmc_statistics(
    pred: Tensor, target: Tensor, label_weight: Tensor | None = None, bins: int = 10
) -> Tensor:
    """One step's GHM-C statistics: float64 ``(count_0, ..., count_{bins-1}, total)``, where
    ``total`` is the number of valid elements (not clamped: sum over ranks first)."""
    x, t, lw = _classification_pair(pred, target, label_weight)
    index = _bin_index(
        _classification_norm(x, t), lw > 0, ghm_edges(bins, ghmc_last_edge(), x.device)
    )
    return _statistics(index, lw, bins, True)


def ghmr_statistics(
    pred: Tensor,
    target: Tensor,
    label_weight: Tensor | None = None,
    bins: int = 10,
    mu: float = 0.02,
) -> Tensor:
    """One step's GHM-R statistics: float64 ``(count_0, ..., count_{bins-1}, total)``, where
    ``total`` is the sum of ``label_weight`` (not clamped: sum over ranks first)."""
    m = check_mu(mu)
    p, t, lw = _regression_pair(pred, target, label_weight)
    index = _bin_index(
        _regression_norm(p - t, m), lw > 0, ghm_edges(bins, ghmr_last_edge(), p.device)
    )
    return _statistics(index, lw, bins, False)


def ghmc_loss(
    pred: Tensor,
    target: Tensor,
    label_weight: Tensor | None = None,
    bins: int = 10,
    *,
    statistics: Tensor | None = None,
    density: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """GHM-C: binary cross-entropy on logits, each element weighted by its gradient density.

    ``loss = BCE(x, t) * total / (n * density_b)`` (see the module doc); mmdetection's ``GHMC``
    with ``momentum=0`` when ``statistics`` and ``density`` are left at their defaults.

    Args:
        pred: logits ``(N, C)`` (any shape with floating targets).
        target: targets in [0, 1] of ``pred``'s shape, or integer class indices ``(N,)`` (``C``
            and above: background rows; negative: ignored, as ``label_weight`` 0).
        label_weight: elements with ``label_weight > 0`` are valid (the value is not a weight, as in
            mmdetection); broadcasts to ``pred``, or ``(N,)`` with class indices. Default: all.
        bins: number of gradient-norm bins (``>= 1``).
        statistics: the step's :func:`ghmc_statistics` (summed over ranks by the module); default
            this batch's.
        density: ``(bins,)`` per-bin density (the module's moving average); default the counts.
        reduction: "none", "mean" or "sum".
        avg_factor: "mean" divides by it; default ``total``.

    Returns:
        The weighted element-wise loss (pred's shape) for "none", a scalar otherwise.
    """
    check_bins(bins)
    _check_statistics(statistics, density, bins)
    x, t, lw = _classification_pair(pred, target, label_weight)
    index = _bin_index(
        _classification_norm(x, t), lw > 0, ghm_edges(bins, ghmc_last_edge(), x.device)
    )
    stats = _statistics(index, lw, bins, True) if statistics is None else statistics
    weights, total = _harmonising_weight(index, stats, density, x.dtype)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    return _reduce(loss, weights, total, reduction, avg_factor)


def _regression_pair(
    pred: object, target: object, label_weight: object
) -> tuple[Tensor, Tensor, Tensor]:
    p = check_floating(pred, "pred")
    t = check_tensor(target, "target")
    if t.shape != p.shape:
        raise ValueError(
            f"pred and target must have the same shape, got pred {tuple(p.shape)} "
            f"and target {tuple(t.shape)}"
        )
    lw = None if label_weight is None else check_tensor(label_weight, "label_weight")
    floats = [v for v in (t, lw) if v is not None and v.dtype.is_floating_point]
    dtype = compute_dtype(p, *floats)
    return p.to(dtype), t.to(dtype), _label_weight(lw, p, dtype)


def ghmr_loss(
    pred: Tensor,
    target: Tensor,
    label_weight: Tensor | None = None,
    mu: float = 0.02,
    bins: int = 10,
    *,
    statistics: Tensor | None = None,
    density: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """GHM-R: the Authentic Smooth L1 loss, each element weighted by its gradient density.

    ``loss = (sqrt(d^2 + mu^2) - mu) * total / (n * density_b)`` with ``d = pred - target`` (see
    the module doc); mmdetection's ``GHMR`` with ``momentum=0`` when ``statistics`` and ``density``
    are left at their defaults.

    Args:
        pred: box regression outputs, e.g. ``(N, 4)`` deltas.
        target: regression targets of the same shape.
        label_weight: elements with ``label_weight > 0`` are valid and ``total`` is its sum
            (mmdetection); broadcasts to ``pred``. Default: all ones.
        mu: ASL1's smoothing (in [1e-30, 1e30], default 0.02).
        bins: number of gradient-norm bins (``>= 1``).
        statistics: the step's :func:`ghmr_statistics` (summed over ranks by the module); default
            this batch's.
        density: ``(bins,)`` per-bin density (the module's moving average); default the counts.
        reduction: "none", "mean" or "sum".
        avg_factor: "mean" divides by it; default ``total``.

    Returns:
        The weighted element-wise loss (pred's shape) for "none", a scalar otherwise.
    """
    m = check_mu(mu)
    check_bins(bins)
    _check_statistics(statistics, density, bins)
    p, t, lw = _regression_pair(pred, target, label_weight)
    d = p - t
    index = _bin_index(_regression_norm(d, m), lw > 0, ghm_edges(bins, ghmr_last_edge(), p.device))
    stats = _statistics(index, lw, bins, False) if statistics is None else statistics
    weights, total = _harmonising_weight(index, stats, density, p.dtype)
    loss = torch.hypot(d, d.new_full((), m)) - m  # sqrt(d^2 + mu^2) - mu without squaring d
    return _reduce(loss, weights, total, reduction, avg_factor)
