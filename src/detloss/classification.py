"""Classification losses: cross-entropy (softmax and sigmoid), the focal family, GFL's QFL and DFL.

Every function takes raw logits (never probabilities), computes float16/bfloat16 logits in float32
(and returns a float32 loss), and reduces through :func:`detloss.reduction.weight_reduce_loss`
(``weight``, ``reduction`` in {"none", "mean", "sum"}, ``avg_factor``).

The focal losses are memory-light: each is a custom autograd function that keeps only its inputs
(logits and targets) for backward and recomputes the analytic gradient from them, where autograd
would store several logits-sized intermediates (the sigmoid, the cross-entropy, the modulating
factor). Their targets receive no gradient. The sigmoid focal loss also runs eagerly in blocks of
rows (:func:`_blockwise`), so that its temporaries stay small and in the cache, and its fused path
takes the logistic terms from one exponential (:func:`_logistic`).

Label formats shared by the sigmoid losses (logits of shape ``(N, C)``):

* a floating tensor of the logits' shape: one-hot or soft targets in ``[0, 1]``;
* int64 class indices of shape ``(N,)``; the value ``C`` (and any value outside ``[0, C)``) is
  background, i.e. an all-zero target row (mmdetection's convention).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from detloss._checks import check_floating, check_number, check_tensor, compute_dtype
from detloss.reduction import weight_reduce_loss

# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _check_alpha(alpha: float | None) -> float | None:
    """Focal ``alpha`` in [0, 1]; ``None`` or a negative number (fvcore's -1) means no weighting."""
    if alpha is None:
        return None
    value = check_number(alpha, "alpha", low=float("-inf"), strict=True)
    if value < 0:
        return None
    if value > 1:
        raise ValueError(f"alpha must be in [0, 1] (or None / negative for none), got {alpha!r}")
    return value


def _check_gamma(gamma: float, name: str = "gamma") -> float:
    return check_number(gamma, name, low=0.0, strict=False)


def _check_sigmoid_targets(logits: object, targets: object) -> tuple[Tensor, Tensor]:
    """Check logits and targets in one of the two sigmoid label formats (see the module doc)."""
    x = check_floating(logits, "logits")
    t = check_tensor(targets, "targets")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        if t.shape != x.shape:
            raise ValueError(
                f"floating targets must have the logits' shape {tuple(x.shape)}, "
                f"got {tuple(t.shape)}"
            )
    elif x.dim() != 2 or t.shape != x.shape[:1]:
        raise ValueError(
            "integer targets must be class indices of shape (N,) for logits of shape (N, C), "
            f"got targets {tuple(t.shape)} and logits {tuple(x.shape)}"
        )
    return x, t


def _dense_targets(targets: Tensor, x: Tensor) -> Tensor:
    """Targets as a tensor of ``x``'s shape and dtype (class indices become one-hot rows)."""
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        return targets.to(x.dtype)
    classes = torch.arange(x.shape[1], device=x.device)
    return (targets.unsqueeze(1) == classes).to(x.dtype)


def _row_weight(weight: Tensor | None, logits: Tensor) -> Tensor | None:
    """mmdetection's rule: a 1-D weight of length N on (N, C) logits weights whole rows."""
    row = weight is not None and logits.dim() == 2 and weight.dim() == 1
    if row and weight is not None and weight.shape[0] == logits.shape[0]:
        return weight.unsqueeze(1)
    return weight


def _mul_alpha_t_deferred_(values: Tensor, t: Tensor, alpha: float | None) -> float:
    """``values *= alpha_t / s`` in place for ``alpha_t = alpha t + (1 - alpha)(1 - t)``; returns ``s``.

    ``alpha_t = (1 - alpha)(1 + c t)`` with ``c = (2 alpha - 1) / (1 - alpha)`` (alpha = 1: ``t``; no
    alpha: 1), so alpha = 1 zeroes negatives and alpha = 0 positives exactly. The constant ``s``
    (``1 - alpha``, or 1) is left to a product the caller computes anyway (:func:`_scaled_product`):
    one pass over the values instead of two.
    """
    if alpha is None:
        return 1.0
    if alpha == 1:
        values.mul_(t)
        return 1.0
    values.addcmul_(values, t, value=(2 * alpha - 1) / (1 - alpha))
    return 1 - alpha


def _mul_alpha_t_(values: Tensor, t: Tensor, alpha: float) -> Tensor:
    """``values *= alpha t + (1 - alpha)(1 - t)`` in place, without a logits-sized temporary."""
    scale = _mul_alpha_t_deferred_(values, t, alpha)
    return values if scale == 1 else values.mul_(scale)


def _scaled_product(a: Tensor, b: Tensor, scale: float, out: Tensor | None = None) -> Tensor:
    """``scale * a * b`` in one pass (``addcmul`` on a zero scalar), into ``out`` if given."""
    if scale == 1:
        return torch.mul(a, b, out=out)
    return torch.addcmul(a.new_zeros(()), a, b, value=scale, out=out)


def _pow_m1(base: Tensor, exponent: float, out: Tensor | None = None) -> Tensor:
    """``base ** (exponent - 1)`` for ``base >= 0``, with 0 where a negative power would be inf.

    Used only in analytic gradients where it multiplies a factor that vanishes at least as fast as
    ``base`` (so 0 is the limit), which autograd would evaluate as ``inf * 0 = NaN``.
    """
    if exponent >= 1:
        return torch.pow(base, exponent - 1, out=out)
    safe = torch.where(base > 0, base, 1.0).pow_(exponent - 1)
    return torch.mul(safe, base > 0, out=out)


def _apply(function: type[torch.autograd.Function], *args: Any) -> Tensor:
    """``function.apply(*args)`` with a type (``Function.apply`` is untyped)."""
    return cast(Tensor, function.apply(*args))  # type: ignore[no-untyped-call]


def _to_compute(logits: Tensor, *others: Tensor) -> torch.dtype:
    floats = [t for t in others if t.dtype.is_floating_point]
    return compute_dtype(logits, *floats)


# ---------------------------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------------------------


def _class_weight(class_weight: Tensor | Sequence[float] | None, x: Tensor) -> Tensor | None:
    if class_weight is None:
        return None
    w = torch.as_tensor(class_weight, dtype=x.dtype)
    if w.shape != (x.shape[1],):
        raise ValueError(
            f"class_weight must have shape ({x.shape[1]},) (one per class), got {tuple(w.shape)}"
        )
    # A list becomes a CPU tensor: as_tensor(..., device="cuda") would wait for the copy.
    return w.to(x.device, non_blocking=True)


def cross_entropy(
    logits: Tensor,
    labels: Tensor,
    *,
    class_weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    avg_non_ignore: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Softmax cross-entropy on logits (mmdetection's ``cross_entropy``).

    ``loss_i = -class_weight[y_i] * log softmax(logits_i)[y_i]`` (with label smoothing ``eps``:
    ``(1 - eps) * that + eps / C * sum_c -class_weight[c] * log softmax(logits_i)[c]``); labels equal
    to ``ignore_index`` give 0.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        labels: int64 class indices, ``(N,)`` or ``(N, d1, ...)``.
        class_weight: ``(C,)`` per-class weights (PyTorch's ``weight``).
        ignore_index: label value that contributes nothing (default -100, as PyTorch).
        label_smoothing: ``eps`` in ``[0, 1]``.
        avg_non_ignore: "mean" divides by the number of non-ignored labels instead of all labels.
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    "mean" is ``sum / number of labels`` (mmdetection), not PyTorch's weighted mean, which divides
    by ``sum(class_weight[y_i])`` over non-ignored labels: get that one as
    ``cross_entropy(..., reduction="sum") / class_weight[labels[labels != ignore_index]].sum()``.
    """
    x = check_floating(logits, "logits")
    y = check_tensor(labels, "labels")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
    if x.dim() < 2 or y.shape != x.shape[:1] + x.shape[2:]:
        raise ValueError(
            f"logits (N, C, *) and labels (N, *) do not match: logits {tuple(x.shape)}, "
            f"labels {tuple(y.shape)}"
        )
    smoothing = check_number(label_smoothing, "label_smoothing", low=0.0, strict=False)
    if smoothing > 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    x = x.to(compute_dtype(x))
    loss = F.cross_entropy(
        x,
        y,
        weight=_class_weight(class_weight, x),
        ignore_index=ignore_index,
        reduction="none",
        label_smoothing=smoothing,
    )
    if avg_non_ignore and reduction == "mean" and avg_factor is None:
        avg_factor = (y != ignore_index).sum().clamp_min(1).to(loss.dtype)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def binary_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    *,
    pos_weight: Tensor | None = None,
    class_weight: Tensor | Sequence[float] | None = None,
    ignore_index: int = -100,
    avg_non_ignore: bool = False,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Sigmoid (binary) cross-entropy on logits (mmdetection's ``binary_cross_entropy``).

    ``loss = -(pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x))) * class_weight``
    computed stably from the logits (PyTorch's ``binary_cross_entropy_with_logits``).

    Args:
        logits: ``(N, C)`` (or any shape with floating / binary integer targets of the same shape).
        targets: floating targets of the logits' shape; integer labels of the logits' shape
            (binary 0/1, negative values and ``ignore_index`` ignored, e.g. RPN labels with -1);
            or int64 class indices ``(N,)`` for ``(N, C)`` logits (``C`` = background, an all-zero
            row; ``ignore_index`` rows ignored).
        pos_weight: weight of the positive term, broadcast along the last dimension (PyTorch).
        class_weight: ``(C,)`` per-class weights.
        avg_non_ignore: "mean" divides by the number of non-ignored elements instead of all.
        weight: element-wise weight; a 1-D weight of length N on ``(N, C)`` logits weights rows.
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.
    """
    x = check_floating(logits, "logits")
    y = check_tensor(targets, "targets")
    valid: Tensor | None = None
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.shape == x.shape:
        if y.shape != x.shape:
            raise ValueError(
                f"targets must have the logits' shape {tuple(x.shape)}, got {tuple(y.shape)}"
            )
        if not (y.dtype.is_floating_point or y.dtype == torch.bool):
            valid = (y >= 0) & (y != ignore_index)
            y = y.clamp(0, 1).to(compute_dtype(x))
    else:
        x, y = _check_sigmoid_targets(x, y)
        valid = ((y >= 0) & (y != ignore_index)).unsqueeze(1)
    x = x.to(_to_compute(x, y))
    t = _dense_targets(y, x)
    pw = None if pos_weight is None else check_tensor(pos_weight, "pos_weight").to(x.dtype)
    loss = F.binary_cross_entropy_with_logits(
        x, t, weight=_class_weight(class_weight, x), pos_weight=pw, reduction="none"
    )
    weight = _row_weight(weight, x)
    if valid is not None:
        mask = valid.to(x.dtype).expand(loss.shape)
        weight = mask if weight is None else weight.to(x.dtype) * mask
        if avg_non_ignore and reduction == "mean" and avg_factor is None:
            avg_factor = mask.sum().clamp_min(1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


# ---------------------------------------------------------------------------------------------
# Sigmoid focal loss and FL*
# ---------------------------------------------------------------------------------------------


def _bce(x: Tensor, t: Tensor) -> Tensor:
    """``softplus(x) - x t``: binary cross-entropy on logits, stable for any finite ``x``."""
    return F.softplus(x).addcmul_(x, t, value=-1)


# The focal functions below write into as few fresh logits-sized buffers as they can (in-place
# ops): on the CPU every new 30 MB buffer costs more than the arithmetic done in it. Eagerly they
# also run block by block (:func:`_blockwise`), so that their temporaries stay in the cache.


def _blockwise(
    fn: Callable[..., Tensor], like: Tensor, dtype: torch.dtype, *inputs: Tensor | None
) -> Tensor:
    """``fn(*inputs, out)``: a ``dtype`` tensor of ``like``'s shape, evaluated on blocks of rows.

    ``fn`` is element-wise along the rows (dim 0) of ``like``; ``inputs`` are tensors with those
    rows, or ``None``; ``fn`` writes its result into ``out`` (a block of the output), or returns
    it when ``out`` is None. Eagerly, the blocks go through ``fn`` one after the other: besides the
    output, only one block's temporaries are ever alive, and they stay in the cache (on a CPU this
    roughly halves the time of the focal losses against whole-tensor passes). Under
    ``torch.compile`` the whole tensors go through ``fn`` at once, which inductor fuses into one
    loop.
    """
    blocks: list[slice] | None = None
    if blocks is None:
        return fn(*inputs, None).to(dtype)
    out = torch.empty(like.shape, dtype=dtype, device=like.device)
    for block in blocks:
        fn(*(None if i is None else i[block] for i in inputs), out[block])
    return out


def _logistic(x: Tensor, complement: bool = True) -> tuple[Tensor, Tensor | None, Tensor]:
    """``sigmoid(x)``, ``1 - sigmoid(x) = sigmoid(-x)`` and ``softplus(x)``, without cancellation.

    Eagerly these are PyTorch's kernels (the second one only if ``complement``); deriving them
    from shared terms would take more, and slower, passes (``exp`` and ``where`` are slower
    kernels than ``sigmoid``). Compiled, where the fused kernel is bound by its transcendentals,
    all three come from one ``e = exp(-|x|)``: ``sigmoid(|x|) = 1 / (1 + e)``,
    ``sigmoid(-|x|) = e / (1 + e)`` and ``softplus(x) = max(x, 0) + log1p(e)`` (with
    :func:`_log1p_unit`), where inductor would evaluate three exponentials and a ``log1p``.
    """
    if not False:
        q = torch.neg(x).sigmoid_() if complement else None
        return torch.sigmoid(x), q, F.softplus(x)
    e = torch.exp(-x.abs())
    big = torch.reciprocal(e + 1)
    small = e * big
    nonneg = x >= 0
    softplus = _log1p_unit(e) + x.clamp_min(0)
    return torch.where(nonneg, big, small), torch.where(nonneg, small, big), softplus


_ATANH_SERIES = (2 / 13, 2 / 11, 2 / 9, 2 / 7, 2 / 5, 2 / 3, 2.0)


def _log1p_unit(e: Tensor) -> Tensor:
    """``log1p(e)`` for ``e`` in ``[0, 1]``; float32 by a series, other dtypes by ``torch.log1p``.

    ``log1p(e) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...)`` with ``s = e / (2 + e) <= 1/3``:
    seven terms leave a truncation below ``(9/8) 9^-7 / 15 < 2^-25`` relative, and the float32
    result is within 4 * 2^-24 of the exact value (tested), against 1 * 2^-24 for ``torch.log1p``.
    It is 7 multiply-adds and a division; the CPU's vectorised ``log1p`` took about a third of
    the fused focal loss's time (100k x 80 forward + backward: 24 ms with it, 17-21 ms without).
    """
    if e.dtype != torch.float32:
        return torch.log1p(e)
    s = e / (e + 2)
    s2 = s * s
    series = torch.full_like(s2, _ATANH_SERIES[0])
    for coefficient in _ATANH_SERIES[1:]:
        series = series * s2 + coefficient
    return series * s


def _sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, out: Tensor | None, *, alpha: float | None, gamma: float
) -> Tensor:
    """``alpha_t (1 - p_t)^gamma BCE(x, t)`` element-wise, into ``out`` if given."""
    x = logits.to(_to_compute(logits, targets))
    t = _dense_targets(targets, x)
    if gamma == 0:
        loss = _bce(x, t)
        if alpha is not None:
            _mul_alpha_t_(loss, t, alpha)
        return loss if out is None else out.copy_(loss)
    p, q, softplus = _logistic(x, complement=False)
    loss = softplus.addcmul_(x, t, value=-1)
    # 1 - p_t = (1 - p) t + p (1 - t); eagerly from p alone (one sigmoid less) as p + t - 2pt
    m = p.addcmul_(p, t, value=-2).add_(t) if q is None else q.sub_(p).mul_(t).add_(p)
    factor = m.square_() if gamma == 2 else m.pow_(gamma)
    scale = _mul_alpha_t_deferred_(factor, t, alpha)
    return _scaled_product(loss, factor, scale, out)


def _sigmoid_focal_grad(
    logits: Tensor,
    targets: Tensor,
    grad: Tensor,
    out: Tensor | None,
    *,
    alpha: float | None,
    gamma: float,
) -> Tensor:
    """``grad * d/dx`` of :func:`_sigmoid_focal_loss` (see :class:`_SigmoidFocal`)."""
    x = logits.to(_to_compute(logits, targets))
    t = _dense_targets(targets, x)
    p, q, softplus = _logistic(x, complement=gamma != 0)
    if q is None:
        g = p.sub_(t)
    else:
        # second = ce p (1 - p) (1 - 2t), g = (p - t) m + gamma second, d/dx = alpha_t m^(gamma-1) g
        second = softplus.addcmul_(x, t, value=-1)
        second.addcmul_(second, t, value=-2).mul_(p).mul_(q)
        # m = 1 - p_t = p + t (q - p); not torch.lerp, which inductor compiles with a select
        m = torch.addcmul(p, q.sub_(p), t, out=q)
        g = p.sub_(t).mul_(m).add_(second, alpha=gamma)
        if gamma != 1:
            factor = m if gamma == 2 else _pow_m1(m, gamma, out=m)
            scale = _mul_alpha_t_deferred_(factor, t, alpha)
            return torch.mul(_scaled_product(g, factor, scale, out=g), grad, out=out)
    if alpha is not None:
        _mul_alpha_t_(g, t, alpha)
    # not _scaled_product: addcmul is not vectorised when grad is an expanded scalar (sum, mean)
    return torch.mul(g, grad, out=out)


class _SigmoidFocal(torch.autograd.Function):
    """``alpha_t (1 - p_t)^gamma BCE(x, t)``; backward keeps only the logits and targets.

    With ``p = sigmoid(x)``, ``m = 1 - p_t = p + t - 2pt`` and ``ce = BCE(x, t)``::

        d/dx = alpha_t * ((p - t) m^gamma + gamma ce m^(gamma-1) p (1 - p) (1 - 2t))
             = alpha_t * m^(gamma-1) * ((p - t) m + gamma ce p (1 - p) (1 - 2t))

    ``m >= min(p, 1 - p) >= p (1 - p)``, so the second term vanishes where ``m = 0`` for any
    ``gamma > 0`` (:func:`_pow_m1` gives that limit instead of ``inf * 0``). ``a.addcmul_(a, t, c)``
    (``a *= 1 + c t``) applies the target-dependent factors in place; eagerly, each operation is one
    pass over a block, and the factored form takes 11 of them besides the logistic terms (16 before).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: Tensor, targets: Tensor, alpha: float | None, gamma: float
    ) -> Tensor:
        ctx.save_for_backward(logits, targets)
        ctx.alpha, ctx.gamma = alpha, gamma  # type: ignore[attr-defined]
        loss = functools.partial(_sigmoid_focal_loss, alpha=alpha, gamma=gamma)
        return _blockwise(loss, logits, _to_compute(logits, targets), logits, targets)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        logits, targets = ctx.saved_tensors
        gradient = functools.partial(_sigmoid_focal_grad, alpha=ctx.alpha, gamma=ctx.gamma)
        return _blockwise(gradient, logits, logits.dtype, logits, targets, grad), None, None, None


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Sigmoid focal loss (Lin et al., Focal Loss for Dense Object Detection, ICCV 2017).

    With ``p = sigmoid(x)``, ``p_t = p t + (1 - p)(1 - t)``, ``alpha_t = alpha t + (1 - alpha)(1 - t)``::

        loss = -alpha_t * (1 - p_t)**gamma * log(p_t)      (BCE on logits for soft t)

    Args:
        logits: ``(N, C)`` (any shape with floating targets).
        targets: one-hot / soft float targets of the logits' shape, or int64 class indices ``(N,)``
            with ``C`` = background (see the module doc).
        alpha: in ``[0, 1]``; ``None`` or negative (fvcore's -1) = no alpha weighting. ``alpha=1``
            zeroes the negatives' terms exactly, ``alpha=0`` the positives'.
        gamma: ``>= 0``; ``gamma=0, alpha=None`` is :func:`binary_cross_entropy`.
        weight: element-wise; a 1-D weight of length N on ``(N, C)`` logits weights rows.
        reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`. "mean" divides by
            all ``N*C`` elements, as fvcore and torchvision (mmcv's CUDA op divides by N); dense
            heads pass ``avg_factor`` = number of positives.

    Conventions: torchvision ``sigmoid_focal_loss`` and mmdetection ``FocalLoss`` default to
    ``alpha=0.25, gamma=2`` (as here); fvcore's default ``alpha=-1`` is ``alpha=None``.
    """
    x, t = _check_sigmoid_targets(logits, targets)
    loss = _apply(_SigmoidFocal, x, t, _check_alpha(alpha), _check_gamma(gamma))
    return weight_reduce_loss(loss, _row_weight(weight, x), reduction, avg_factor)


class _SigmoidFocalStar(torch.autograd.Function):
    """``alpha_t softplus(z) / gamma`` with ``z = gamma x (1 - 2t)``; d/dx = ``alpha_t (1-2t) sigmoid(z)``."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: Tensor, targets: Tensor, alpha: float | None, gamma: float
    ) -> Tensor:
        ctx.save_for_backward(logits, targets)
        ctx.alpha, ctx.gamma = alpha, gamma  # type: ignore[attr-defined]
        x = logits.to(_to_compute(logits, targets))
        t = _dense_targets(targets, x)
        loss = F.softplus(_focal_star_z(x, t, gamma)).div_(gamma)
        if alpha is not None:
            _mul_alpha_t_(loss, t, alpha)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        logits, targets = ctx.saved_tensors
        alpha, gamma = ctx.alpha, ctx.gamma
        x = logits.to(_to_compute(logits, targets))
        t = _dense_targets(targets, x)
        g = _focal_star_z(x, t, gamma).sigmoid_()
        g.addcmul_(g, t, value=-2)  # * (1 - 2t)
        if alpha is not None:
            _mul_alpha_t_(g, t, alpha)
        return g.mul_(grad).to(logits.dtype), None, None, None


def _focal_star_z(x: Tensor, t: Tensor, gamma: float) -> Tensor:
    """``gamma x (1 - 2t)`` in one fresh buffer."""
    z = torch.mul(x, t)
    return z.mul_(-2).add_(x).mul_(gamma)


def sigmoid_focal_loss_star(
    logits: Tensor,
    targets: Tensor,
    alpha: float | None = None,
    gamma: float = 1.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """FL* (Lin et al. 2017, appendix): ``loss = -alpha_t * log(sigmoid(gamma * x * (2t - 1))) / gamma``.

    ``gamma > 0``; ``alpha`` as :func:`sigmoid_focal_loss`. Defaults are fvcore's
    ``sigmoid_focal_loss_star`` (``alpha=-1`` = ``None``, ``gamma=1``); labels, weight and reduction
    as :func:`sigmoid_focal_loss`.
    """
    x, t = _check_sigmoid_targets(logits, targets)
    gamma = check_number(gamma, "gamma", low=0.0, strict=True)
    loss = _apply(_SigmoidFocalStar, x, t, _check_alpha(alpha), gamma)
    return weight_reduce_loss(loss, _row_weight(weight, x), reduction, avg_factor)


# ---------------------------------------------------------------------------------------------
# Softmax focal loss
# ---------------------------------------------------------------------------------------------


def _check_class_logits(logits: object, labels: object) -> tuple[Tensor, Tensor]:
    x = check_floating(logits, "logits")
    y = check_tensor(labels, "labels")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(
            "logits must be (N, C) and labels (N,), got logits "
            f"{tuple(x.shape)} and labels {tuple(y.shape)}"
        )
    return x, y


class _SoftmaxFocal(torch.autograd.Function):
    """Row loss ``-alpha (1 - p_t)^gamma log p_t`` of a softmax; backward keeps logits and labels.

    With ``l = log p_t``: ``d/dx_j = (onehot_j - p_j) * alpha (gamma (1-p_t)^(gamma-1) p_t l - (1-p_t)^gamma)``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: Tensor, labels: Tensor, alpha: float, gamma: float
    ) -> Tensor:
        ctx.save_for_backward(logits, labels)
        ctx.alpha, ctx.gamma = alpha, gamma  # type: ignore[attr-defined]
        log_pt = torch.log_softmax(logits.to(compute_dtype(logits)), 1)
        log_pt = log_pt.gather(1, labels.unsqueeze(1)).squeeze(1)
        # 1 - p_t as -expm1(log p_t): exact where p_t is close to 1.
        return (-alpha) * (-torch.expm1(log_pt)).pow(gamma) * log_pt

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        logits, labels = ctx.saved_tensors
        alpha, gamma = ctx.alpha, ctx.gamma
        log_p = torch.log_softmax(logits.to(compute_dtype(logits)), 1)
        index = labels.unsqueeze(1)
        log_pt = log_p.gather(1, index).squeeze(1)
        m = -torch.expm1(log_pt)
        row = gamma * _pow_m1(m, gamma) * log_pt.exp() * log_pt - m.pow(gamma)
        row = (alpha * row * grad).unsqueeze(1)
        g = log_p.exp_().mul_(-row).scatter_add_(1, index, row)
        return g.to(logits.dtype), None, None, None


def softmax_focal_loss(
    logits: Tensor,
    labels: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    *,
    class_weight: Tensor | Sequence[float] | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Softmax focal loss (mmcv's ``softmax_focal_loss``), one value per row.

    With ``p = softmax(logits_i)`` and ``p_t = p[y_i]``::

        loss_i = -alpha * class_weight[y_i] * (1 - p_t)**gamma * log(p_t)

    Args:
        logits: ``(N, C)``; labels: int64 ``(N,)`` in ``[0, C)`` (the background is a class here).
        alpha: scalar in ``[0, 1]`` (mmcv default 0.25); gamma: ``>= 0``.
        class_weight: ``(C,)`` per-class weights (mmcv's ``weight`` argument).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`; "mean"
            divides by N, as mmcv.
    """
    x, y = _check_class_logits(logits, labels)
    a = _check_alpha(alpha)
    if a is None:
        raise ValueError(f"alpha must be in [0, 1] for the softmax focal loss, got {alpha!r}")
    loss = _apply(_SoftmaxFocal, x, y, a, _check_gamma(gamma))
    cw = _class_weight(class_weight, x)
    if cw is not None:
        loss = loss * cw.to(loss.dtype)[y]
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


# ---------------------------------------------------------------------------------------------
# Varifocal loss and GFL's quality / distribution focal losses
# ---------------------------------------------------------------------------------------------


class _Varifocal(torch.autograd.Function):
    """VFL: ``q BCE(x, q)`` where ``q > 0``, ``alpha p^gamma softplus(x)`` where ``q <= 0``.

    Gradients: ``q (p - q)`` (or ``p - q`` without IoU weighting) and
    ``alpha p^gamma (gamma (1 - p) softplus(x) + p)``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        targets: Tensor,
        alpha: float,
        gamma: float,
        iou_weighted: bool,
    ) -> Tensor:
        ctx.save_for_backward(logits, targets)
        ctx.params = (alpha, gamma, iou_weighted)  # type: ignore[attr-defined]
        x = logits.to(_to_compute(logits, targets))
        q = targets.to(x.dtype)
        softplus = F.softplus(x)
        positive = torch.addcmul(softplus, x, q, value=-1)
        if iou_weighted:
            positive.mul_(q)
        negative = softplus.mul_(torch.sigmoid(x).pow_(gamma)).mul_(alpha)
        return torch.where(q > 0, positive, negative)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        logits, targets = ctx.saved_tensors
        alpha, gamma, iou_weighted = ctx.params
        x = logits.to(_to_compute(logits, targets))
        q = targets.to(x.dtype)
        p = torch.sigmoid(x)
        positive = p - q
        if iou_weighted:
            positive.mul_(q)
        negative = F.softplus(x).mul_(1 - p).mul_(gamma).add_(p).mul_(p.pow(gamma)).mul_(alpha)
        g = torch.where(q > 0, positive, negative).mul_(grad)
        return g.to(logits.dtype), None, None, None, None


def varifocal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Varifocal loss (Zhang et al., VarifocalNet, CVPR 2021), as mmdetection's ``varifocal_loss``.

    With ``p = sigmoid(x)`` and the IoU-aware target ``q`` (IoU with the ground truth for the
    positive class, 0 elsewhere)::

        loss = -q (q log p + (1 - q) log(1 - p))     if q > 0   (factor q only if iou_weighted)
               -alpha p**gamma log(1 - p)            if q == 0

    Args:
        logits, targets: ``(N, C)`` of the same shape; targets in ``[0, 1]``.
        alpha: ``>= 0`` (default 0.75); gamma: ``>= 0`` (default 2).
        iou_weighted: weight positives by ``q`` (mmdetection's default True).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.

    As in mmdetection, the negatives' focal factor ``p**gamma`` is differentiated (not detached).
    """
    x = check_floating(logits, "logits")
    q = check_floating(targets, "targets")
    if q.shape != x.shape:
        raise ValueError(
            f"targets must have the logits' shape {tuple(x.shape)}, got {tuple(q.shape)}"
        )
    a = check_number(alpha, "alpha", low=0.0, strict=False)
    loss = _apply(_Varifocal, x, q, a, _check_gamma(gamma), bool(iou_weighted))
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


class _QualityFocal(torch.autograd.Function):
    """QFL element-wise: ``|p - q|^beta BCE(x, q)``; backward keeps logits and targets.

    With ``d = p - q``: ``d/dx = |d|^beta d + beta sign(d) |d|^(beta-1) p (1 - p) BCE(x, q)``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: Tensor, labels: Tensor, scores: Tensor | None, beta: float
    ) -> Tensor:
        ctx.save_for_backward(logits, labels, scores)  # type: ignore[arg-type]  # None allowed
        ctx.beta = beta  # type: ignore[attr-defined]
        x, q = _quality_targets(logits, labels, scores)
        return _bce(x, q).mul_((torch.sigmoid(x) - q).abs_().pow_(beta))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        logits, labels, scores = ctx.saved_tensors
        beta = ctx.beta
        x, q = _quality_targets(logits, labels, scores)
        p = torch.sigmoid(x)
        d = p - q
        abs_d = d.abs()
        second = _bce(x, q).mul_(p.mul(1 - p)).mul_(_pow_m1(abs_d, beta)).mul_(d.sign()).mul_(beta)
        g = d.mul_(abs_d.pow_(beta)).add_(second).mul_(grad)
        return g.to(logits.dtype), None, None, None


def _quality_targets(
    logits: Tensor, labels: Tensor, scores: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Compute-dtype logits and the dense soft target (score at the label's class, 0 elsewhere)."""
    if scores is None:
        x = logits.to(_to_compute(logits, labels))
        return x, labels.to(x.dtype)
    x = logits.to(_to_compute(logits, scores))
    return x, _dense_targets(labels, x).mul_(scores.to(x.dtype).unsqueeze(1))


def quality_focal_loss(
    logits: Tensor,
    targets: Tensor,
    scores: Tensor | None = None,
    beta: float = 2.0,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Quality focal loss (Li et al., Generalized Focal Loss, NeurIPS 2020), one value per row.

    With ``p = sigmoid(x)`` and the soft target ``q`` (the IoU score at the ground-truth class, 0
    elsewhere)::

        loss_i = sum_c |q_ic - p_ic|**beta * BCE(x_ic, q_ic)

    Args:
        logits: ``(N, C)``.
        targets: either the dense soft targets ``(N, C)`` (then ``scores`` is None), or int64 class
            indices ``(N,)`` with ``C`` = background, together with ``scores`` ``(N,)``: mmdetection's
            ``(label, score)`` tuple.
        beta: ``>= 0`` (default 2).
        weight, reduction, avg_factor: on the ``(N,)`` row losses; see
            :func:`detloss.reduction.weight_reduce_loss`.

    As mmdetection's ``quality_focal_loss``, the factor ``|q - p|**beta`` is differentiated.
    """
    x, t = _check_sigmoid_targets(logits, targets)
    if scores is None:
        if not t.dtype.is_floating_point:
            raise TypeError("class-index targets need scores (N,); dense targets must be floating")
    else:
        s = check_floating(scores, "scores")
        if t.dtype.is_floating_point or s.shape != t.shape:
            raise ValueError(
                "scores (N,) go with int64 class indices (N,), got targets "
                f"{tuple(t.shape)} {t.dtype} and scores {tuple(s.shape)}"
            )
    b = _check_gamma(beta, "beta")
    loss = _apply(_QualityFocal, x, t, scores, b).sum(dim=-1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


class _DistributionFocal(torch.autograd.Function):
    """DFL: ``-(w_l log S_l + w_r log S_r)``; ``d/dx = softmax(x) - (w_l e_l + w_r e_r)``."""

    @staticmethod
    def forward(ctx: FunctionCtx, logits: Tensor, targets: Tensor) -> Tensor:
        ctx.save_for_backward(logits, targets)
        log_p = torch.log_softmax(logits.to(_to_compute(logits, targets)), 1)
        left, right, w_left, w_right = _dfl_bins(targets, log_p)
        lp_left = log_p.gather(1, left).squeeze(1)
        lp_right = log_p.gather(1, right).squeeze(1)
        return -(w_left * lp_left + w_right * lp_right)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        logits, targets = ctx.saved_tensors
        p = torch.softmax(logits.to(_to_compute(logits, targets)), 1)
        left, right, w_left, w_right = _dfl_bins(targets, p)
        p.scatter_add_(1, left, -w_left.unsqueeze(1)).scatter_add_(1, right, -w_right.unsqueeze(1))
        return p.mul_(grad.unsqueeze(1)).to(logits.dtype), None


def _dfl_bins(targets: Tensor, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The two bins around each target and their weights (targets clamped to ``[0, n]``)."""
    n = like.shape[1] - 1
    y = targets.to(like.dtype).clamp(0, n)
    left = y.floor().clamp_max(n - 1)
    w_right = y - left
    left_index = left.long().unsqueeze(1)
    return left_index, left_index + 1, 1 - w_right, w_right


def distribution_focal_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Distribution focal loss (Li et al., Generalized Focal Loss, NeurIPS 2020), one value per row.

    For a continuous target ``y`` between the bins ``l = floor(y)`` and ``r = l + 1``, with
    ``S = softmax(logits)`` over the ``n + 1`` bins::

        loss = -((r - y) log S_l + (y - l) log S_r)

    Args:
        logits: ``(N, n + 1)`` bin logits (mmdetection: ``reg_max + 1``).
        targets: ``(N,)`` floating distances in ``[0, n]`` (values outside are clamped; ``y = n``
            puts all mass on the last bin, where mmdetection would index past it).
        weight, reduction, avg_factor: see :func:`detloss.reduction.weight_reduce_loss`.
    """
    x = check_floating(logits, "logits")
    y = check_floating(targets, "targets")
    if x.dim() != 2 or x.shape[1] < 2 or y.shape != x.shape[:1]:
        raise ValueError(
            "logits must be (N, n + 1) with n >= 1 and targets (N,), got logits "
            f"{tuple(x.shape)} and targets {tuple(y.shape)}"
        )
    loss = _apply(_DistributionFocal, x, y)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)
