"""The gradient-in-forward mechanism (detloss.analytic) against ordinary autograd.

The analytic path runs when only ``pred`` needs a gradient; making ``target`` require one forces
the value-only path under autograd, so the two gradients of ``pred`` can be compared directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

import detloss
from detloss.reduction import AVG_FACTOR_EPS

LOSSES: list[tuple[str, Callable[..., Tensor], dict[str, Any]]] = [
    ("smooth_l1", detloss.smooth_l1_loss, {"beta": 0.5}),
    ("smooth_l1_beta0", detloss.smooth_l1_loss, {"beta": 0.0}),
    ("huber", detloss.huber_loss, {"delta": 2.0}),
    ("l1", detloss.l1_loss, {}),
    ("mse", detloss.mse_loss, {}),
    ("balanced_l1", detloss.balanced_l1_loss, {}),
    ("balanced_l1_beta2", detloss.balanced_l1_loss, {"beta": 2.0}),
]
IDS = [name for name, _, _ in LOSSES]

# (reduction, extra kwargs) pairs covering every scale of the reduction.
REDUCTIONS: list[tuple[str, dict[str, Any]]] = [
    ("none", {}),
    ("sum", {}),
    ("mean", {}),
    ("mean", {"avg_factor": 7.0}),
    ("mean", {"avg_factor": torch.tensor(5.0, dtype=torch.float64)}),
]


def _inputs(n: int = 64, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred = (torch.randn(n, 4, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    target = torch.randn(n, 4, generator=g, dtype=torch.float64)
    target[:4] = pred.detach()[:4]  # zero residuals: the kinks of L1 and Smooth L1 at 0
    weight = torch.rand(n, 4, generator=g, dtype=torch.float64)
    return pred, target, weight


def takes_the_analytic_path(loss: Tensor) -> bool:
    """Whether ``loss`` comes from the analytic Function (directly, or through "mean"'s division)."""
    top = loss.grad_fn
    nodes = [] if top is None else [top, *(node for node, _ in top.next_functions)]
    return any("GradientInForward" in type(node).__name__ for node in nodes)


def _pred_grad(loss: Tensor, pred: Tensor, grad_output: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(loss, pred, grad_output)
    return grad


@pytest.mark.parametrize(("name", "fn", "params"), LOSSES, ids=IDS)
@pytest.mark.parametrize(("reduction", "extra"), REDUCTIONS)
@pytest.mark.parametrize("weighting", ["none", "full", "row"])
def test_analytic_gradient_equals_autograd(
    name: str,
    fn: Callable[..., Tensor],
    params: dict[str, Any],
    reduction: str,
    extra: dict[str, Any],
    weighting: str,
) -> None:
    pred, target, weight = _inputs()
    kwargs: dict[str, Any] = {**params, **extra, "reduction": reduction}
    if weighting != "none":
        kwargs["weight"] = weight if weighting == "full" else weight[:, :1]
    analytic = fn(pred, target, **kwargs)
    reference = fn(pred, target.clone().requires_grad_(True), **kwargs)  # forces autograd
    assert takes_the_analytic_path(analytic)
    assert not takes_the_analytic_path(reference)
    torch.testing.assert_close(analytic, reference, rtol=1e-12, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    grad_output = torch.rand(analytic.shape, generator=g, dtype=torch.float64) + 0.5
    torch.testing.assert_close(
        _pred_grad(analytic, pred, grad_output),
        _pred_grad(reference, pred, grad_output),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize(("name", "fn", "params"), LOSSES, ids=IDS)
def test_target_and_weight_that_require_grad_get_exact_gradients(
    name: str, fn: Callable[..., Tensor], params: dict[str, Any]
) -> None:
    pred, target, weight = _inputs()
    target.requires_grad_(True)
    weight.requires_grad_(True)
    fn(pred, target, **params, weight=weight, avg_factor=3.0).backward()
    assert pred.grad is not None
    assert target.grad is not None
    assert weight.grad is not None
    # Every loss here is a function of pred - target: the two gradients are opposite.
    torch.testing.assert_close(target.grad, -pred.grad)
    # d/dw of sum(loss * w) / (3 + eps) is loss / (3 + eps).
    elementwise = fn(pred.detach(), target.detach(), **params, reduction="none")
    torch.testing.assert_close(weight.grad, elementwise / (3.0 + AVG_FACTOR_EPS))


@pytest.mark.parametrize(("name", "fn", "params"), LOSSES, ids=IDS)
def test_backward_twice_with_retain_graph_accumulates(
    name: str, fn: Callable[..., Tensor], params: dict[str, Any]
) -> None:
    pred, target, weight = _inputs()
    loss = fn(pred, target, **params, weight=weight)
    loss.backward(retain_graph=True)
    assert pred.grad is not None
    once = pred.grad.clone()
    loss.backward()
    torch.testing.assert_close(pred.grad, 2 * once)


@pytest.mark.parametrize(("name", "fn", "params"), LOSSES, ids=IDS)
def test_without_grad_the_value_is_the_same_and_untracked(
    name: str, fn: Callable[..., Tensor], params: dict[str, Any]
) -> None:
    pred, target, weight = _inputs()
    tracked = fn(pred, target, **params, weight=weight)
    with torch.no_grad():
        untracked = fn(pred, target, **params, weight=weight)
    assert untracked.grad_fn is None
    assert torch.equal(tracked.detach(), untracked)


def test_inputs_are_not_modified() -> None:
    pred, target, weight = _inputs()
    copies = [t.detach().clone() for t in (pred, target, weight)]
    for _, fn, params in LOSSES:
        fn(pred, target, **params, weight=weight).backward()
    for original, copy in zip((pred, target, weight), copies, strict=True):
        assert torch.equal(original.detach(), copy)


@pytest.mark.parametrize(("name", "fn", "params"), LOSSES, ids=IDS)
def test_avg_factor_with_sum_is_an_error(
    name: str, fn: Callable[..., Tensor], params: dict[str, Any]
) -> None:
    pred, target, _ = _inputs()
    with pytest.raises(ValueError, match='avg_factor cannot be used with reduction="sum"'):
        fn(pred, target, **params, reduction="sum", avg_factor=2.0)


NATIVE: list[tuple[str, Callable[..., Tensor], Callable[..., Tensor], dict[str, Any]]] = [
    ("smooth_l1", detloss.smooth_l1_loss, torch.nn.functional.smooth_l1_loss, {"beta": 0.5}),
    ("huber", detloss.huber_loss, torch.nn.functional.huber_loss, {"delta": 2.0}),
    ("mse", detloss.mse_loss, torch.nn.functional.mse_loss, {}),
]


@pytest.mark.parametrize(("name", "fn", "native", "params"), NATIVE, ids=[n[0] for n in NATIVE])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighting", ["none", "full", "row"])
def test_kernel_gradient_is_native_autograds_bit_for_bit(
    name: str,
    fn: Callable[..., Tensor],
    native: Callable[..., Tensor],
    params: dict[str, Any],
    dtype: torch.dtype,
    weighting: str,
) -> None:
    """Smooth L1, Huber and L2 compute ``weight * d loss / d pred`` with PyTorch's own backward
    kernel, so a weighted sum's gradient is exactly that of ``(F.<loss>(...) * weight).sum()``."""
    pred, target, weight = (t.detach().to(dtype) for t in _inputs(n=1000))
    w = None if weighting == "none" else weight if weighting == "full" else weight[:, :1]
    ours = pred.clone().requires_grad_(True)
    fn(ours, target, **params, weight=w, reduction="sum").backward()
    theirs = pred.clone().requires_grad_(True)
    value = native(theirs, target, reduction="none", **params)
    (value if w is None else value * w).sum().backward()
    assert ours.grad is not None
    assert theirs.grad is not None
    assert torch.equal(ours.grad, theirs.grad)
