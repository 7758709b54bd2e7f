"""Adversarial inputs and the invariant the property suite asserts (``tests/test_properties.py``).

The invariant: finite inputs give a finite loss and finite gradients, in every dtype, unless the
exact value is not representable in the result's dtype. "Exact" is the same computation in
float64 on the same (upcast) inputs: a float16/bfloat16/float32 result may be infinite only where
that reference is at least half the dtype's largest number (inf, or NaN where an infinite
intermediate meets a zero); where an element of the loss, weighted or not, or the weighted
elements' sum is beyond the dtype's range, the reduced value may be infinite or NaN (inf * a zero
weight), whatever ``avg_factor`` would divide it by; gradients are held to the invariant where
the loss is below the largest number over :data:`GRADIENT_HEADROOM`, for
upstream factors (weight over ``avg_factor``) up to :data:`UPSTREAM_LIMIT`, and may overflow
within :data:`GRADIENT_HEADROOM` of the largest number. float64 inputs, whose
magnitudes here
stay within 1e-30..1e30, must always give finite results.

The budget: :data:`EXAMPLES` examples per test; ``DETLOSS_DEEP=1`` raises it twenty-fold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import Tensor

DEEP = os.environ.get("DETLOSS_DEEP", "") not in ("", "0")
EXAMPLES = 400 if DEEP else 20
SUITE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Decimal exponents of the magnitudes drawn per dtype: 1e-30..1e30, for float16 its own range
# (6e-8..65504) with room for the recipes' values up to about 10; the deep run goes to the limits
# of float32 and float64 (a value too large for the dtype is scaled back to fit).
EXPONENTS = {torch.float16: (-7.0, 3.5)}
if DEEP:
    EXPONENTS |= {torch.float64: (-300.0, 300.0)}
_DEFAULT_EXPONENTS = (-37.0, 38.0) if DEEP else (-30.0, 30.0)


def magnitudes(dtype: torch.dtype) -> st.SearchStrategy[float]:
    low, high = EXPONENTS.get(dtype, _DEFAULT_EXPONENTS)
    return st.one_of(
        st.sampled_from([10.0**low, 1.0, 10.0**high]),
        st.floats(low, high).map(lambda e: 10.0**e),
    )


# Extreme parameter values: every finite double from the smallest subnormal to the largest. A
# loss must work with each or reject it up front with an error naming the parameter.
_EDGES = [5e-324, 1e-300, 1e-45, 1e-38, 1e-30, 1e-7, 1e7, 1e30, 1e38, 1e300, 1.7e308]
positive = st.one_of(st.sampled_from(_EDGES), st.floats(-323, 308).map(lambda e: 10.0**e))
nonnegative = st.one_of(st.just(0.0), positive)
real = st.one_of(nonnegative, positive.map(lambda v: -v))
fraction = st.sampled_from([0.0, 1e-300, 1e-30, 1e-7, 0.5, 1 - 1e-7, 1.0])
at_least_one = st.one_of(st.just(1.0), positive.map(lambda v: 1.0 + v))
BOX = {"eps": positive, "relative_eps": st.booleans()}


@dataclass
class Call:
    """One call: positional tensors, keyword arguments, which inputs are differentiated, and the
    names of the parameters drawn at extreme values (an error naming one of them is a clean
    rejection)."""

    inputs: list[Tensor]
    kwargs: dict[str, Any]
    grad_args: Sequence[int]
    extreme: list[str] = field(default_factory=list)


def degenerate(data: st.DataObject, inputs: list[Tensor]) -> list[Tensor]:
    """Make the floating inputs degenerate without leaving their domains: zeros, ties (a column
    copied onto another: zero-size boxes), reversed last dimensions (inverted boxes), identical
    prediction and target."""
    out = [t.clone() for t in inputs]
    floating = [i for i, t in enumerate(out) if t.dtype.is_floating_point and t.numel()]
    for _ in range(data.draw(st.integers(0, 3), label="degenerate transforms")):
        if not floating:
            break
        i = data.draw(st.sampled_from(floating), label="input")
        t = out[i]
        kind = data.draw(st.sampled_from(["zero", "tie", "reverse", "same"]), label="transform")
        if kind == "zero":
            mask = torch.rand(t.shape, generator=torch.Generator().manual_seed(i)) < 0.5
            out[i] = t.masked_fill(mask, 0.0)
        elif kind == "tie" and t.dim() > 0 and t.shape[-1] > 1:
            a, b = data.draw(st.permutations(range(t.shape[-1])), label="columns")[:2]
            out[i][..., b] = t[..., a]
        elif kind == "reverse" and t.dim() > 0:
            out[i] = t.flip(-1)
        elif kind == "same" and i != 0 and out[0].shape == t.shape and 0 in floating:
            out[0] = t.clone()
    return out


def scale(
    data: st.DataObject, inputs: list[Tensor], positions: Sequence[int], dtype: torch.dtype
) -> list[Tensor]:
    """Multiply the inputs at ``positions`` by magnitudes (one, or one per row)."""
    out = list(inputs)
    for i in positions:
        t = out[i]
        if not t.dtype.is_floating_point:
            continue
        if t.dim() > 0 and t.shape[0] > 1 and data.draw(st.booleans(), label="per row"):
            rows = [data.draw(magnitudes(dtype), label="row magnitude") for _ in range(t.shape[0])]
            factor = torch.tensor(rows, dtype=torch.float64).view(-1, *(1,) * (t.dim() - 1))
        else:
            factor = torch.tensor(data.draw(magnitudes(dtype), label="magnitude"))
        out[i] = t * factor
    return out


def in_dtype(inputs: Sequence[Tensor], dtype: torch.dtype) -> list[Tensor]:
    """The floating inputs in ``dtype``, scaled down where they would not be finite there."""
    room = torch.finfo(dtype).max / 8
    out = []
    for t in inputs:
        if t.dtype.is_floating_point:
            largest = float(t.abs().max()) if t.numel() else 0.0
            t = (t * (room / largest) if largest > room else t).to(dtype)
        out.append(t)
    return out


def weight_for(data: st.DataObject, shape: torch.Size, per_coordinate: bool) -> Tensor | None:
    """None, or a weight of the element-wise loss's shape, of its shape with the last size 1, a
    0-dim weight, or (box losses) one per coordinate; magnitudes 1e-30..1e30, some exact zeros."""
    kinds = (
        ["none", "full", "scalar"]
        + (["last1"] if shape else [])
        + (["coordinate"] if per_coordinate else [])
    )
    kind = data.draw(st.sampled_from(kinds), label="weight")
    if kind == "none":
        return None
    w_shape = {
        "full": tuple(shape),
        "scalar": (),
        "last1": (*shape[:-1], 1),
        "coordinate": (*shape, 4),
    }[kind]
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="weight dtype")
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="weight seed"))
    w = torch.rand(w_shape, generator=g, dtype=torch.float64)
    w = w * data.draw(magnitudes(torch.float32))
    if data.draw(st.booleans(), label="zeros in the weight"):
        w = w.masked_fill(torch.rand(w_shape, generator=g) < 0.3, 0.0)
    return w.to(dtype)


def avg_factor_for(data: st.DataObject) -> float | Tensor | None:
    """None, 0, a number 1e-30..1e30, or a 0-dim / one-element tensor of it."""
    kind = data.draw(st.sampled_from(["none", "zero", "number", "tensor", "vector"]), label="avg")
    if kind == "none":
        return None
    if kind == "zero":
        return 0.0
    value = data.draw(magnitudes(torch.float32), label="avg_factor")
    if kind == "number":
        return value
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="avg_factor dtype")
    t = torch.tensor(value, dtype=dtype)
    return t if kind == "tensor" else t.reshape(1)


def extreme_parameters(
    data: st.DataObject, table: Mapping[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """A subset of ``table``'s parameters at drawn values."""
    if not table:
        return {}
    names = data.draw(st.lists(st.sampled_from(sorted(table)), unique=True), label="parameters")
    return {name: data.draw(table[name], label=name) for name in names}


def run(fn: Callable[..., Tensor], call: Call) -> tuple[Tensor, list[Tensor]]:
    """The loss (detached) and the gradients of its sum with respect to ``call.grad_args``."""
    inputs = [
        t.detach().clone().requires_grad_(i in call.grad_args) for i, t in enumerate(call.inputs)
    ]
    loss = fn(*inputs, **call.kwargs)
    diff = [inputs[i] for i in call.grad_args]
    grads = torch.autograd.grad(loss.sum(), diff, allow_unused=True) if loss.requires_grad else []
    return loss.detach(), [
        torch.zeros_like(x) if g is None else g for x, g in zip(diff, grads, strict=False)
    ]


def to_float64(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dtype.is_floating_point:
        return value.double()
    return value


UPSTREAM_LIMIT = 1e20
"""The largest upstream factor (largest weight over ``avg_factor``) under which gradients are held
to the invariant: autograd multiplies it into each partial derivative before summing them, so
beyond it an intermediate may overflow although the exact gradient is representable."""
GRADIENT_HEADROOM = 1e4
"""A gradient within this factor of the dtype's largest number may overflow in an intermediate
product (the upstream factor times a partial derivative), before a later factor shrinks it."""


def upstream_factor(call: Call) -> float:
    """The largest weight over ``avg_factor`` (or the number of elements for "mean")."""
    weight = call.kwargs.get("weight")
    largest = 1.0 if weight is None else float(weight.abs().max()) if weight.numel() else 0.0
    if call.kwargs.get("reduction") != "mean":
        return largest
    factor = call.kwargs.get("avg_factor")
    divisor = 1.0 if factor is None else float(factor) + torch.finfo(torch.float32).eps
    return largest / divisor


def check_call(fn: Callable[..., Tensor], call: Call) -> None:
    """Assert the invariant for one call (a clean rejection of an extreme parameter passes)."""
    try:
        loss, grads = run(fn, call)
    except (ValueError, TypeError) as err:
        if any(name in str(err) for name in call.extreme):
            return
        raise
    reference: tuple[Tensor, list[Tensor]] | None = None

    def exact() -> tuple[Tensor, list[Tensor]]:
        nonlocal reference
        if reference is None:
            wide = Call(
                [to_float64(t) for t in call.inputs],
                {k: to_float64(v) for k, v in call.kwargs.items()},
                call.grad_args,
            )
            reference = run(fn, wide)
        return reference

    finite = bool(torch.isfinite(loss).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
    if finite or ("reduction" in call.kwargs and _an_element_overflows(fn, call, loss.dtype)):
        return
    if not bool(torch.isfinite(loss).all()):
        assert_unrepresentable(loss, exact()[0], "loss", call)
        return  # the loss itself overflows: so may its gradients
    near_the_top = loss.abs().max() >= torch.finfo(loss.dtype).max / GRADIENT_HEADROOM
    if upstream_factor(call) > UPSTREAM_LIMIT or bool(near_the_top):
        return
    for k, grad in enumerate(grads):
        if not bool(torch.isfinite(grad).all()):
            assert_unrepresentable(
                grad, exact()[1][k], f"gradient {k}", call, GRADIENT_HEADROOM, rows=True
            )


def _an_element_overflows(fn: Callable[..., Tensor], call: Call, dtype: torch.dtype) -> bool:
    """Whether an unweighted element of the loss, a weighted one or their sum is beyond
    ``dtype``'s range: then the weighted loss is infinite (NaN where inf meets a zero weight) and
    so is its reduction, before ``avg_factor`` divides it."""
    if dtype == torch.float64:
        return False
    kwargs = {k: to_float64(v) for k, v in call.kwargs.items() if k != "avg_factor"}
    inputs = [to_float64(t) for t in call.inputs]
    weighted = fn(*inputs, **{**kwargs, "reduction": "none"})
    plain = fn(
        *inputs,
        **{**kwargs, "reduction": "none", **({"weight": None} if "weight" in kwargs else {})},
    )
    limit = torch.finfo(dtype).max / 2
    return bool(weighted.abs().sum() >= limit) or bool((plain.abs() >= limit).any())


def assert_unrepresentable(
    got: Tensor,
    exact: Tensor,
    what: str,
    call: Call,
    headroom: float = 2.0,
    rows: bool = False,
) -> None:
    """Where ``got`` is not finite, the exact value must be beyond ``got``'s dtype's largest
    number over ``headroom`` (or not finite itself). With ``rows``, one such value excuses its
    whole row (last dimension): a gradient of a row's other elements sums overflowing partial
    derivatives (a cxcywh box's centre gets those of x1 and x2: inf - inf)."""
    bad = ~torch.isfinite(got)
    limit = torch.finfo(got.dtype).max / headroom if got.dtype != torch.float64 else float("inf")
    ok = ~torch.isfinite(exact) | (exact.abs() >= limit)
    if rows and ok.dim() > 0:
        ok = ok | ok.any(-1, keepdim=True)
    if not bool(ok[bad].all()):
        raise AssertionError(
            f"{what} is not finite where the exact value is {exact[bad & ~ok][:4].tolist()} "
            f"(got {got[bad & ~ok][:4].tolist()}); call: {describe(call)}"
        )


def describe(call: Call) -> str:
    tensors = [
        f"{tuple(t.shape)} {t.dtype} |max| {t.abs().max().item() if t.numel() else 0:.3g}"
        for t in call.inputs
    ]
    kwargs = {
        k: (f"tensor {tuple(v.shape)} {v.dtype}" if isinstance(v, Tensor) else v)
        for k, v in call.kwargs.items()
    }
    return f"inputs {tensors}, kwargs {kwargs}"
