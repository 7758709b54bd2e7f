"""Input checks and the compute dtype shared by every loss, its module and a user's own loss.

Checks look only at shapes, dtypes and Python parameters, never at tensor values (except
:func:`check_label_values`, which reads them and is called only on request), so they cost no
host-device synchronisation and trace cleanly under ``torch.compile(fullgraph=True)``. A bad
argument raises ``TypeError`` or ``ValueError`` naming it, what was given and what is accepted.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_HALF = (torch.float16, torch.bfloat16)
LARGEST: float = 1e30
"""The largest magnitude of a Python-number parameter: float32 represents it, so no parameter is
infinite inside a float32 computation (where inf * 0 is NaN)."""
SMALLEST: float = 1e-30
"""The smallest parameter that divides or is a logarithm's argument: float32 represents it (it
does not round to 0)."""


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype a loss computes in: the promoted dtype, with float16/bfloat16/integers -> float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype in _HALF or not dtype.is_floating_point:
        return torch.float32
    return dtype


def check_tensor(value: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(value: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a floating-point tensor."""
    t = check_tensor(value, name)
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    return t


def check_label_tensor(value: object, name: str = "labels") -> Tensor:
    """Class labels: a tensor of any integer dtype, returned as int64 (what indexing needs)."""
    t = check_tensor(value, name)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class indices, got dtype {t.dtype}")
    return t.long()


def check_label_values(labels: Tensor, allowed: Tensor, rule: str) -> None:
    """``ValueError`` naming the first label outside ``allowed`` (a mask; reads values: a host
    synchronisation, hence opt-in)."""
    if not bool(allowed.all()):
        bad = (~allowed).nonzero()[0]
        raise ValueError(
            f"labels must be {rule}; label {int(labels[tuple(bad)])} at index {tuple(bad.tolist())}"
        )


def check_same_shape(pred: Tensor, target: Tensor) -> None:
    """Raise ``ValueError`` when the shapes differ (detloss never broadcasts pred against target)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got pred {tuple(pred.shape)} "
            f"and target {tuple(target.shape)}"
        )


def prepare_pair(pred: object, target: object) -> tuple[Tensor, Tensor]:
    """Check a (pred, target) pair of equal shapes and cast both to the compute dtype."""
    pred_t = check_floating(pred, "pred")
    target_t = check_tensor(target, "target")
    if target_t.dtype.is_complex:
        raise TypeError(f"target must be a real tensor, got dtype {target_t.dtype}")
    check_same_shape(pred_t, target_t)
    dtype = compute_dtype(pred_t, target_t)
    return pred_t.to(dtype), target_t.to(dtype)


def check_factor(value: object, name: str) -> float:
    """A parameter that multiplies or is an exponent: a number in ``[0, LARGEST]``."""
    return check_number(value, name, low=0.0, strict=False, high=LARGEST)


def check_exponent(value: object, name: str) -> float:
    """An exponent (``gamma``, ``beta``): 0 or a number in ``[SMALLEST, LARGEST]``. float32
    represents each: a smaller positive exponent rounds to 0 there, where ``0**0`` is 1, not 0."""
    try:
        number = check_number(value, name, low=0.0, strict=False, high=LARGEST)
    except ValueError:
        number = math.nan
    if number == 0 or SMALLEST <= number <= LARGEST:
        return number
    raise ValueError(
        f"{name} must be 0 or a finite number in [{SMALLEST:g}, {LARGEST:g}], got {value!r}"
    )


def check_divisor(value: object, name: str) -> float:
    """A parameter that divides: a number in ``[SMALLEST, LARGEST]``."""
    return check_number(value, name, low=SMALLEST, strict=False, high=LARGEST)


def check_number(
    value: object, name: str, *, low: float, strict: bool, high: float = math.inf
) -> float:
    """Return ``value`` as a float after checking ``value > low`` (``strict``) or ``value >= low``,
    and ``value <= high`` when ``high`` is finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        number = math.inf
    # Comparisons only (NaN fails both): math.isfinite cannot trace a symbolic float.
    ok = (number > low if strict else number >= low) and number < math.inf and number <= high
    if not ok:
        bound = ">" if strict else ">="
        upper = f" and <= {high:g}" if high < math.inf else ""
        raise ValueError(f"{name} must be a finite number {bound} {low:g}{upper}, got {value!r}")
    return number
