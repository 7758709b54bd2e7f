"""The Smooth L1 family: closed forms, framework equalities, properties and errors."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import smooth_l1_loss as fvcore_smooth_l1_loss
from hypothesis import given
from hypothesis import strategies as st

import detloss
from detloss.regression import resolve_beta

FUNCTIONS = [
    detloss.smooth_l1_loss,
    detloss.huber_loss,
    detloss.l1_loss,
    detloss.mse_loss,
    detloss.balanced_l1_loss,
]


def _random_pair(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g) * 3, torch.randn(n, 4, generator=g)


# --- closed forms -----------------------------------------------------------------------------


def test_smooth_l1_closed_form_on_both_sides_of_beta() -> None:
    beta = 1.0
    x = torch.tensor([0.0, 0.5, -0.25, 0.999, 1.0, 1.001, -2.0, 3.5], dtype=torch.float64)
    # 0.5 x^2 / beta inside (|x| < beta), |x| - 0.5 beta outside.
    expected = torch.tensor(
        [0.0, 0.125, 0.03125, 0.5 * 0.999**2, 0.5, 0.501, 1.5, 3.0], dtype=torch.float64
    )
    got = detloss.smooth_l1_loss(x, torch.zeros_like(x), beta, reduction="none")
    torch.testing.assert_close(got, expected)


def test_smooth_l1_with_small_beta_closed_form() -> None:
    beta = 1 / 9
    x = torch.tensor([0.05, -0.1, 0.2, -1.0], dtype=torch.float64)
    expected = torch.tensor(
        [0.5 * 0.05**2 * 9, 0.5 * 0.01 * 9, 0.2 - 0.5 / 9, 1.0 - 0.5 / 9], dtype=torch.float64
    )
    torch.testing.assert_close(detloss.smooth_l1_loss(x, 0 * x, beta, reduction="none"), expected)


def test_huber_closed_form() -> None:
    delta = 2.0
    x = torch.tensor([1.0, -1.5, 3.0, -4.0], dtype=torch.float64)
    # 0.5 x^2 inside, delta (|x| - 0.5 delta) outside.
    expected = torch.tensor([0.5, 1.125, 2.0 * 2.0, 2.0 * 3.0], dtype=torch.float64)
    torch.testing.assert_close(detloss.huber_loss(x, 0 * x, delta, reduction="none"), expected)


def _balanced_l1_reference(x: float, alpha: float, gamma: float, beta: float) -> float:
    b = math.exp(gamma / alpha) - 1
    if x < beta:
        return alpha / b * (b * x + 1) * math.log(b * x / beta + 1) - alpha * x
    return gamma * x + gamma / b - alpha * beta


@pytest.mark.parametrize(("alpha", "gamma", "beta"), [(0.5, 1.5, 1.0), (0.3, 2.0, 0.5)])
def test_balanced_l1_closed_form(alpha: float, gamma: float, beta: float) -> None:
    xs = [0.0, 0.1, 0.5 * beta, 0.99 * beta, beta, 1.5 * beta, 4.0]
    x = torch.tensor(xs, dtype=torch.float64)
    expected = torch.tensor([_balanced_l1_reference(v, alpha, gamma, beta) for v in xs])
    got = detloss.balanced_l1_loss(x, -x, alpha, gamma, beta, reduction="none")  # |x - (-x)| = 2x
    expected = torch.tensor(
        [_balanced_l1_reference(2 * v, alpha, gamma, beta) for v in xs], dtype=torch.float64
    )
    torch.testing.assert_close(got, expected)


def test_balanced_l1_gradient_is_alpha_log_inside_and_gamma_outside() -> None:
    alpha, gamma, beta = 0.5, 1.5, 1.0
    b = math.exp(gamma / alpha) - 1
    x = torch.tensor([0.3, 2.0], dtype=torch.float64, requires_grad=True)
    detloss.balanced_l1_loss(x, torch.zeros_like(x), reduction="sum").backward()
    assert x.grad is not None
    torch.testing.assert_close(
        x.grad, torch.tensor([alpha * math.log(b * 0.3 / beta + 1), gamma], dtype=torch.float64)
    )


# --- equality with PyTorch and fvcore -----------------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 1 / 9, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_smooth_l1_equals_pytorch(beta: float, reduction: str) -> None:
    pred, target = _random_pair()
    torch.testing.assert_close(
        detloss.smooth_l1_loss(pred, target, beta, reduction=reduction),
        F.smooth_l1_loss(pred, target, beta=beta, reduction=reduction),
    )


@pytest.mark.parametrize("beta", [0.0, 1 / 9, 1.0, 3.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_smooth_l1_equals_fvcore(beta: float, reduction: str) -> None:
    pred, target = _random_pair(seed=1)
    torch.testing.assert_close(
        detloss.smooth_l1_loss(pred, target, beta, reduction=reduction),
        fvcore_smooth_l1_loss(pred, target, beta, reduction=reduction),
    )


@pytest.mark.parametrize("delta", [0.1, 1.0, 2.5])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_huber_equals_pytorch_and_delta_times_smooth_l1(delta: float, reduction: str) -> None:
    pred, target = _random_pair(seed=2)
    got = detloss.huber_loss(pred, target, delta, reduction=reduction)
    torch.testing.assert_close(got, F.huber_loss(pred, target, delta=delta, reduction=reduction))
    torch.testing.assert_close(
        got, delta * detloss.smooth_l1_loss(pred, target, delta, reduction=reduction)
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_l1_and_mse_equal_pytorch(reduction: str) -> None:
    pred, target = _random_pair(seed=3)
    torch.testing.assert_close(
        detloss.l1_loss(pred, target, reduction=reduction),
        F.l1_loss(pred, target, reduction=reduction),
    )
    torch.testing.assert_close(
        detloss.mse_loss(pred, target, reduction=reduction),
        F.mse_loss(pred, target, reduction=reduction),
    )


def test_beta_zero_is_l1_with_finite_sign_gradient() -> None:
    pred, target = _random_pair(seed=4)
    pred.requires_grad_(True)
    loss = detloss.smooth_l1_loss(pred, target, 0.0, reduction="sum")
    torch.testing.assert_close(loss, (pred - target).abs().sum())
    loss.backward()
    assert pred.grad is not None
    assert torch.equal(pred.grad, torch.sign(pred - target).detach())


def test_beta_zero_gradient_at_zero_residual_is_finite() -> None:
    pred = torch.zeros(3, requires_grad=True)
    detloss.smooth_l1_loss(pred, torch.zeros(3), 0.0).backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("beta", [1e-3, 0.5, 1.0])
def test_gradcheck_at_the_kink(beta: float) -> None:
    # Points just inside and outside |x| = beta, on both signs; gradcheck's step is 1e-6.
    x = torch.tensor([beta - 1e-3, beta + 1e-3, -beta + 1e-3, -beta - 1e-3], dtype=torch.float64)
    pred = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: detloss.smooth_l1_loss(p, torch.zeros_like(p), beta, reduction="none"), (pred,)
    )


# --- sigma form, caffe layer --------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_sigma_is_beta_one_over_sigma_squared(sigma: float) -> None:
    pred, target = _random_pair(seed=5)
    torch.testing.assert_close(
        detloss.smooth_l1_loss(pred, target, sigma=sigma),
        detloss.smooth_l1_loss(pred, target, 1 / sigma**2),
    )


def _caffe_reference(
    pred: torch.Tensor, target: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor, sigma: float
) -> torch.Tensor:
    # The layer: d = w_in (pred - target); f = 0.5 sigma^2 d^2 if |d| < 1/sigma^2 else |d| - 0.5/sigma^2;
    # loss = sum(w_out f) / N with N the batch (first) dimension.
    d = w_in * (pred - target)
    s2 = sigma**2
    f = torch.where(d.abs() < 1 / s2, 0.5 * s2 * d**2, d.abs() - 0.5 / s2)
    return (w_out * f).sum() / pred.shape[0]


def test_caffe_smooth_l1_matches_the_layer_on_rpn_shaped_deltas() -> None:
    g = torch.Generator().manual_seed(6)
    n, a, h, w = 2, 9, 5, 7
    pred = torch.randn(n, 4 * a, h, w, generator=g, dtype=torch.float64)
    target = torch.randn(n, 4 * a, h, w, generator=g, dtype=torch.float64)
    w_in = (torch.rand(n, 4 * a, h, w, generator=g) < 0.1).double()
    w_out = torch.full_like(pred, 1 / 256)
    got = detloss.caffe_smooth_l1_loss(pred, target, w_in, w_out, sigma=3.0, dim=(1, 2, 3))
    torch.testing.assert_close(got, _caffe_reference(pred, target, w_in, w_out, 3.0))


def test_caffe_smooth_l1_with_unit_weights_is_sum_over_dim_mean_over_rows() -> None:
    pred, target = _random_pair(seed=7)
    ones = torch.ones(1)
    torch.testing.assert_close(
        detloss.caffe_smooth_l1_loss(pred, target, ones, ones, sigma=1.0),
        detloss.smooth_l1_loss(pred, target, 1.0, reduction="sum") / pred.shape[0],
    )
    per_row = detloss.caffe_smooth_l1_loss(pred, target, ones, ones, reduction="none")
    assert per_row.shape == (pred.shape[0],)


def test_caffe_weight_that_cannot_broadcast_names_its_shape() -> None:
    pred, target = _random_pair(10)
    with pytest.raises(ValueError, match=r"outside_weight of shape \(3,\)"):
        detloss.caffe_smooth_l1_loss(pred, target, torch.ones(1), torch.ones(3))


# --- properties ---------------------------------------------------------------------------------

residuals = st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=16)
betas = st.floats(0.0, 10.0)


@given(xs=residuals, beta=betas)
def test_smooth_l1_is_nonnegative_zero_at_equality_with_gradient_at_most_one(
    xs: list[float], beta: float
) -> None:
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    loss = detloss.smooth_l1_loss(x, torch.zeros_like(x), beta, reduction="none")
    assert (loss >= 0).all()
    loss.sum().backward()
    assert x.grad is not None
    assert (x.grad.abs() <= 1).all()
    same = detloss.smooth_l1_loss(x.detach(), x.detach(), beta, reduction="none")
    assert torch.equal(same, torch.zeros_like(same))


@given(beta=st.floats(1e-3, 10.0))
def test_smooth_l1_is_continuous_at_beta(beta: float) -> None:
    x = torch.tensor([beta * (1 - 1e-9), beta, beta * (1 + 1e-9)], dtype=torch.float64)
    loss = detloss.smooth_l1_loss(x, torch.zeros_like(x), beta, reduction="none")
    torch.testing.assert_close(loss, torch.full_like(loss, 0.5 * beta), atol=1e-8, rtol=1e-8)


@given(xs=residuals, sigma=st.floats(0.05, 20.0))
def test_sigma_form_equals_beta_form(xs: list[float], sigma: float) -> None:
    x = torch.tensor(xs, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.smooth_l1_loss(x, 0 * x, sigma=sigma, reduction="none"),
        detloss.smooth_l1_loss(x, 0 * x, 1 / sigma**2, reduction="none"),
    )


@given(alpha=st.floats(0.05, 2.0), gamma=st.floats(0.1, 3.0), beta=st.floats(0.01, 5.0))
def test_balanced_l1_is_continuous_at_beta(alpha: float, gamma: float, beta: float) -> None:
    x = torch.tensor([0.0, beta * (1 - 1e-9), beta], dtype=torch.float64)
    loss = detloss.balanced_l1_loss(x, 0 * x, alpha, gamma, beta, reduction="none")
    assert loss[0] == 0
    torch.testing.assert_close(loss[1], loss[2], atol=1e-7, rtol=1e-7)


@given(
    xs=st.lists(st.floats(0, 1e4), min_size=1, max_size=16),
    alpha=st.floats(0.05, 2.0),
    gamma=st.floats(0.1, 3.0),
)
def test_balanced_l1_with_the_papers_beta_is_nonnegative(
    xs: list[float], alpha: float, gamma: float
) -> None:
    # With beta = 1 the inner gradient is alpha * log(b x + 1) >= 0; for beta != 1 mmdetection's
    # formula (which detloss reproduces) dips below zero near x = 0.
    x = torch.tensor(xs, dtype=torch.float64)
    loss = detloss.balanced_l1_loss(x, 0 * x, alpha, gamma, 1.0, reduction="none")
    assert (loss >= -1e-12).all()  # the two terms cancel for tiny x: allow rounding below 0


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_extreme_finite_inputs_give_finite_losses_and_gradients(fn) -> None:
    # Residuals up to 2e18: the largest for which every loss here (MSE's x**2 included) is
    # representable in float32; a subnormal and an exact zero residual too.
    pred = torch.tensor([1e18, -1e18, 1e-40, 0.0, 1e4], requires_grad=True)
    target = torch.tensor([-1e18, 1e18, 0.0, 0.0, -1e4])
    loss = fn(pred, target, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss)
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()


# --- dtypes and errors --------------------------------------------------------------------------


def test_float16_prediction_with_float32_target_computes_in_float32() -> None:
    pred, target = _random_pair(seed=8)
    half = pred.half()
    got = detloss.smooth_l1_loss(half, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, F.smooth_l1_loss(half.float(), target))


def test_integer_target_is_accepted() -> None:
    pred = torch.tensor([0.5, 2.0, -1.0])
    target = torch.tensor([0, 1, -3])
    torch.testing.assert_close(detloss.l1_loss(pred, target), torch.tensor((0.5 + 1.0 + 2.0) / 3))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_shape_mismatch_names_both_shapes(fn) -> None:
    with pytest.raises(ValueError, match=r"pred \(4, 4\) and target \(4, 1\)"):
        fn(torch.zeros(4, 4), torch.zeros(4, 1))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_non_floating_pred_is_a_type_error(fn) -> None:
    with pytest.raises(
        TypeError, match="pred must be a floating-point tensor, got dtype torch.int64"
    ):
        fn(torch.zeros(4, dtype=torch.int64), torch.zeros(4))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_non_tensor_target_is_a_type_error(fn) -> None:
    with pytest.raises(TypeError, match="target must be a torch.Tensor, got list"):
        fn(torch.zeros(2), [0.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": -0.1}, "beta must be a finite number >= 0, got -0.1"),
        ({"beta": math.nan}, "beta must be a finite number >= 0"),
        ({"beta": math.inf}, "beta must be a finite number >= 0"),
        ({"sigma": 0.0}, "sigma must be a finite number >= 1e-150 and <= 1e+150, got 0.0"),
        ({"sigma": -3.0}, "sigma must be a finite number >= 1e-150 and <= 1e+150"),
        ({"sigma": 1e-200}, "sigma must be a finite number >= 1e-150 and <= 1e+150"),
        ({"sigma": 1e200}, "sigma must be a finite number >= 1e-150 and <= 1e+150"),
        ({"beta": 1.0, "sigma": 1.0}, "give beta or sigma, not both"),
    ],
)
def test_invalid_smooth_l1_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        detloss.smooth_l1_loss(torch.zeros(2), torch.zeros(2), **kwargs)


def test_beta_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="beta must be a real number, got str"):
        resolve_beta("1", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fn", "kwargs", "message"),
    [
        (detloss.huber_loss, {"delta": 0.0}, "delta must be a finite number > 0"),
        (detloss.balanced_l1_loss, {"beta": 0.0}, "beta must be a finite number >= 1e-30"),
        (detloss.balanced_l1_loss, {"alpha": 1e-3}, r"gamma / alpha must be in \[1e-30, 80\]"),
        (detloss.balanced_l1_loss, {"alpha": 1e31}, r"gamma / alpha must be in \[1e-30, 80\]"),
        (detloss.balanced_l1_loss, {"alpha": 1e16}, r"alpha / \(exp\(gamma / alpha\) - 1\)"),
        (detloss.balanced_l1_loss, {"alpha": -1.0}, "alpha must be a finite number > 0"),
        (detloss.balanced_l1_loss, {"gamma": 0.0}, "gamma must be a finite number > 0"),
    ],
)
def test_invalid_parameters(fn, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn(torch.zeros(2), torch.zeros(2), **kwargs)
