"""The focal losses: conventions (fvcore, torchvision, mmcv), precision, and the hand-written
derivative of the sigmoid focal loss against autograd of its formula."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import sigmoid_focal_loss as fvcore_focal
from fvcore.nn import sigmoid_focal_loss_star as fvcore_focal_star
from hypothesis import given
from hypothesis import strategies as st

import detloss
from detloss._fast.sigmoid_focal import SigmoidFocal
from detloss._fast.softmax import SoftmaxFocal
from tests import formulas
from tests.formulas import recording_saved_tensors
from tests.logistic_reference import (
    alpha_t64,
    bce64,
    focal64,
    log64,
    mp_elementwise,
    mp_focal,
    one_minus_pt64,
    power64,
    pt64,
    softplus64,
    ulp_error,
)


def focal_ulp(gamma: float) -> float:
    """Bound on the error of the float32 sigmoid focal loss, in ulp of the exact value: the power
    amplifies the rounding of 1 - p_t by gamma (measured: 4.5 at gamma <= 1, 6.8 at 2, 10 at 3)."""
    return 5 + 2 * gamma


EXTREMES = [-3e38, -1e4, -100.0, -88.9, -30.0, -0.0, 0.0, 1e-3, 30.0, 88.9, 100.0, 1e4, 3e38]
TARGETS = [0.0, 1.0, 0.5, 0.3, 0.999]
PARAMS = [(0.25, 2.0), (None, 0.5), (0.25, 1.0), (0.75, 3.0), (0.5, 0.1), (1.0, 2.0), (0.0, 2.0)]


def _random(n: int = 40, c: int = 6, seed: int = 0, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, c + 1, (n,), generator=g)  # c = background
    one_hot = F.one_hot(labels, c + 1)[:, :c].double()
    return logits, labels, one_hot


def _grid(targets: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits from -100 to 100 in steps of 0.01 (and the extremes), against each target."""
    x = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor(EXTREMES)])
    return x.repeat(len(targets)), torch.tensor(targets).repeat_interleave(x.numel())


def _value_and_grad(fn: Callable[..., torch.Tensor], x: torch.Tensor, *args, **kwargs):
    x = x.detach().requires_grad_(True)
    loss = fn(x, *args, reduction="none", **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss, grad


# --- conventions ------------------------------------------------------------------------------


@given(
    alpha=st.one_of(st.none(), st.floats(0.0, 1.0)),
    gamma=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]),
    seed=st.integers(0, 2**16),
    soft=st.booleans(),
)
def test_sigmoid_focal_matches_fvcore(
    alpha: float | None, gamma: float, seed: int, soft: bool
) -> None:
    # fvcore computes in float32 whatever the input dtype.
    logits, _, one_hot = (t.float() for t in _random(seed=seed))
    targets = torch.rand_like(logits) if soft else one_hot
    fv_alpha = -1.0 if alpha is None else alpha
    x = logits.clone().requires_grad_(True)
    ref_x = logits.clone().requires_grad_(True)
    ours = detloss.sigmoid_focal_loss(x, targets, alpha, gamma, reduction="none")
    ref = fvcore_focal(ref_x, targets, fv_alpha, gamma, reduction="none")
    torch.testing.assert_close(ours, ref)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad)
    star = detloss.sigmoid_focal_loss_star(logits, targets, alpha, gamma + 0.5, reduction="sum")
    torch.testing.assert_close(
        star, fvcore_focal_star(logits, targets, fv_alpha, gamma + 0.5, reduction="sum")
    )


def test_fvcore_defaults_are_alpha_none_mean_over_all_elements() -> None:
    logits, _, targets = (t.float() for t in _random())
    torch.testing.assert_close(
        detloss.sigmoid_focal_loss(logits, targets, alpha=None),
        fvcore_focal(logits, targets, reduction="mean"),
    )
    torch.testing.assert_close(
        detloss.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="sum"),
        fvcore_focal(logits, targets, alpha=0.25, gamma=2.0, reduction="sum"),
    )
    torch.testing.assert_close(
        detloss.sigmoid_focal_loss_star(logits, targets),
        fvcore_focal_star(logits, targets, reduction="mean"),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gamma_0_without_alpha_is_pytorch_bce_element_for_element(dtype: torch.dtype) -> None:
    # fvcore's and torchvision's tests: the focal loss at gamma = 0 is the cross-entropy.
    x, t = _grid(TARGETS)
    x, t = x.to(dtype), t.to(dtype)
    ours, grad = _value_and_grad(detloss.sigmoid_focal_loss, x, t, alpha=None, gamma=0.0)
    ref, ref_grad = _value_and_grad(F.binary_cross_entropy_with_logits, x, t)
    assert torch.equal(ours, ref)
    assert torch.equal(grad, ref_grad)
    logits, labels, one_hot = _random()
    torch.testing.assert_close(
        detloss.sigmoid_focal_loss(logits, labels, None, 0.0),
        F.binary_cross_entropy_with_logits(logits, one_hot),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("fn", [detloss.sigmoid_focal_loss, detloss.sigmoid_focal_loss_star])
def test_alpha_one_zeroes_negatives_and_alpha_zero_zeroes_positives(
    fn: Callable[..., torch.Tensor],
) -> None:
    logits, _, targets = _random()
    for alpha, zeroed in ((1.0, targets == 0), (0.0, targets == 1)):
        x = logits.clone().requires_grad_(True)
        loss = fn(x, targets, alpha, 2.0, reduction="none")
        loss.sum().backward()
        assert x.grad is not None
        assert (loss[zeroed] == 0).all()
        assert (x.grad[zeroed] == 0).all()
        assert (loss[~zeroed] > 0).all()


def test_class_index_labels_equal_one_hot_with_background_c() -> None:
    logits, labels, one_hot = _random()
    assert (labels == 6).any()
    for fn in (detloss.sigmoid_focal_loss, detloss.sigmoid_focal_loss_star):
        torch.testing.assert_close(fn(logits, labels), fn(logits, one_hot), rtol=0, atol=0)


def _mmcv_softmax_focal(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    log_pt = x.log_softmax(1).gather(1, y[:, None]).squeeze(1)
    return -0.25 * (1 - log_pt.exp()).pow(gamma) * log_pt


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_softmax_focal_matches_mmcv_definition(gamma: float) -> None:
    logits, labels, _ = _random()
    labels = labels % 6
    ours, grad = _value_and_grad(detloss.softmax_focal_loss, logits, labels, gamma=gamma)
    x = logits.clone().requires_grad_(True)
    ref = _mmcv_softmax_focal(x, labels, gamma)
    (ref_grad,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad, ref_grad)
    weights = torch.linspace(0.5, 3.0, 6, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.softmax_focal_loss(
            logits, labels, gamma=gamma, class_weight=weights, reduction="none"
        ),
        ours * weights[labels],
    )


# --- precision ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "gamma"), PARAMS)
def test_sigmoid_focal_is_within_a_few_ulp_of_the_exact_value(
    alpha: float | None, gamma: float
) -> None:
    x, t = _grid(TARGETS)
    loss = detloss.sigmoid_focal_loss(x, t, alpha, gamma, reduction="none")
    assert torch.isfinite(loss).all()
    error = ulp_error(loss, focal64(x, t, alpha, gamma), torch.float32)
    assert error.max() <= focal_ulp(gamma), (error.max(), x[error.argmax()], t[error.argmax()])


@given(
    logits=st.lists(
        st.one_of(
            st.floats(-100, 100, width=32),
            st.sampled_from(EXTREMES),
            st.floats(width=32, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=32,
    ),
    targets=st.lists(
        st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1, width=32)),
        min_size=32,
        max_size=32,
    ),
    # float32 parameters: the loss of float32 logits computes with alpha and gamma rounded to
    # float32 (PyTorch's scalars of a float32 operation), which the exact value would not see
    # (gamma = 3.1 at x = -20 changes the loss by 28 ulp, alpha = 1e-45 by 100%)
    alpha=st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0, 1, width=32)),
    gamma=st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.0]), st.floats(2**-7, 5.0, width=32)),
)
def test_sigmoid_focal_precision_property(
    logits: list[float], targets: list[float], alpha: float | None, gamma: float
) -> None:
    x = torch.tensor(logits)
    t = torch.tensor(targets[: len(logits)])
    loss, grad = _value_and_grad(detloss.sigmoid_focal_loss, x, t, alpha=alpha, gamma=gamma)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    exact = focal64(x, t, alpha, gamma)
    error = ulp_error(loss, exact, torch.float32)
    assert error.max() <= focal_ulp(gamma), (error.max(), x[error.argmax()], t[error.argmax()])
    # Never above the exact cross-entropy (PyTorch's BCE loses digits at t = 0, x << 0).
    ceiling = alpha_t64(t, alpha) * bce64(x, t)
    assert (loss.double() <= ceiling * (1 + focal_ulp(gamma) * 2**-24) + 2**-149).all()


@pytest.mark.parametrize(("alpha", "gamma"), PARAMS)
def test_sigmoid_focal_gradient_is_accurate(alpha: float | None, gamma: float) -> None:
    x, t = _grid(TARGETS)
    _, grad = _value_and_grad(detloss.sigmoid_focal_loss, x, t, alpha=alpha, gamma=gamma)
    assert torch.isfinite(grad).all()
    _, exact = _value_and_grad(
        lambda x, t, reduction: formulas.sigmoid_focal(x, t, alpha, gamma), x.double(), t.double()
    )
    hard = (t == 0) | (t == 1)
    finite = torch.isfinite(exact)
    # Hard targets: in ulp of the exact derivative (subnormals included). Soft targets cross zero
    # at x = logit(t), where the derivative's two terms cancel: there the error is ulp of 1.
    assert ulp_error(grad, exact, torch.float32)[hard & finite].max() <= 16
    error = (grad.double() - exact).abs()
    assert (error <= 16 * 2**-24 * exact.abs() + 2**-21)[~hard & finite].all()


def _log_m64(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``log(1 - p_t)`` in float64."""
    return log64(one_minus_pt64(x, t), pt64(x, t))


@pytest.mark.parametrize("gamma", [10.0, 1e3, 1e6, 1e12, 1e30])
def test_sigmoid_focal_large_gamma_is_accurate(gamma: float) -> None:
    # m**gamma is exp(gamma log(m)) with log(m) = log1p(-p_t) from p_t itself where m >= 1/2:
    # exp turns the few ulp of its argument into a few ulp times |y| = |gamma log(m)|, at most
    # about 100 where the factor is a normal number (m, rounded to 1 where p_t < 2^-25, would
    # make the factor 1 for every gamma).
    x, t = _grid(TARGETS)
    y = (gamma * _log_m64(x, t)).abs()
    loss, grad = _value_and_grad(detloss.sigmoid_focal_loss, x, t, alpha=0.25, gamma=gamma)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    # A factor below the smallest normal number has lost digits: its product with a huge
    # cross-entropy (soft targets at |x| ~ 1e38) keeps only those.
    factor = power64(one_minus_pt64(x, t), pt64(x, t), gamma)
    normal = factor >= torch.finfo(torch.float32).tiny
    assert (factor[(t == 0) & (x > 17)] > 1e-3).any()  # where the rounded m is 1
    error = ulp_error(loss.detach(), focal64(x, t, 0.25, gamma), torch.float32)
    assert (error <= 4 * (1 + y))[normal].all(), (error[normal] / (1 + y[normal])).max()
    _, exact = _value_and_grad(
        lambda x, t, reduction: formulas.sigmoid_focal(x, t, 0.25, gamma), x.double(), t.double()
    )
    hard = ((t == 0) | (t == 1)) & normal & (exact.abs() >= torch.finfo(torch.float32).tiny)
    assert (ulp_error(grad, exact, torch.float32) <= 10 * (1 + y))[hard].all()
    soft = ~((t == 0) | (t == 1)) & normal
    bound = 10 * (1 + y) * 2**-24 * exact.abs() + 2**-21
    assert ((grad.double() - exact).abs() <= bound)[soft].all()


def test_sigmoid_focal_float64_is_within_a_few_ulp_of_mpmath() -> None:
    x = torch.cat([torch.linspace(-40, 40, 81, dtype=torch.float64), torch.tensor([-700.0, 700.0])])
    x = x.repeat(3)
    t = torch.tensor([0.0, 1.0, 0.3], dtype=torch.float64).repeat_interleave(x.numel() // 3)
    for alpha, gamma in ((0.25, 2.0), (None, 0.5), (0.75, 3.0)):
        loss = detloss.sigmoid_focal_loss(x, t, alpha, gamma, reduction="none")
        exact = mp_elementwise(mp_focal, x, t, alpha=alpha, gamma=gamma)
        assert ulp_error(loss, exact, torch.float64).max() <= focal_ulp(gamma)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_focal_star_hard_targets_are_exact_for_power_of_two_gamma(gamma: float) -> None:
    x, t = _grid([0.0, 1.0])
    loss = detloss.sigmoid_focal_loss_star(x, t, 0.25, gamma, reduction="none")
    assert torch.isfinite(loss).all()
    z = x.double() * (1 - 2 * t.double()) * gamma
    exact = alpha_t64(t, 0.25) * softplus64(z) / gamma
    assert ulp_error(loss, exact, torch.float32).max() <= focal_ulp(1.0)


def test_float16_sum_over_16m_elements_is_float32_accurate() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2**17, 128, generator=g).half()
    targets = (torch.rand(2**17, 128, generator=g) < 0.05).half()
    loss = detloss.sigmoid_focal_loss(logits, targets, reduction="sum")
    reference = detloss.sigmoid_focal_loss(logits.double(), targets.double(), reduction="sum")
    assert loss.dtype == torch.float32
    assert abs(loss.double().item() - reference.item()) <= 1e-5 * reference.item()


# --- the hand-written derivative against autograd of the same formula ---------------------------

DEGENERATE_LOGITS = [-1e4, -100.0, -20.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 20.0, 100.0, 1e4]


@pytest.mark.parametrize("alpha", [None, 0.0, 0.25, 1.0])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 10.5, 1e6])
def test_fast_sigmoid_focal_equals_autograd_of_its_formula(
    alpha: float | None, gamma: float
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.tensor(DEGENERATE_LOGITS, dtype=torch.float64),
            torch.randn(40, generator=g, dtype=torch.float64) * 5,
        ]
    )
    x = x.repeat(4)
    t = torch.cat(
        [
            torch.zeros(x.numel() // 4),
            torch.ones(x.numel() // 4),
            torch.full((x.numel() // 4,), 0.5),
            torch.rand(x.numel() // 4, generator=g),
        ]
    ).double()
    upstream = torch.rand(x.shape, generator=g, dtype=torch.float64) + 0.5
    fast_x = x.clone().requires_grad_(True)
    fast = SigmoidFocal.apply(fast_x, t, alpha, gamma)
    (fast_grad,) = torch.autograd.grad((fast * upstream).sum(), fast_x)
    ref_x = x.clone().requires_grad_(True)
    ref = formulas.sigmoid_focal(ref_x, t, alpha, gamma)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), ref_x)
    # exp(gamma log(m)) multiplies the rounding of its argument by |gamma log(m)| (inf at m = 0)
    conditioning = 1 + (gamma * _log_m64(x, t)).abs().clamp_max(1e300)
    # (float64 subnormals, from gamma = 1e6: an absolute 1e-300)
    assert ((fast - ref).abs() <= 1e-13 * conditioning * ref.abs() + 1e-300).all()
    assert torch.isfinite(fast_grad).all()
    # autograd's m**gamma has an infinite derivative at m = 0 for gamma < 1 (the limit is 0)
    finite = torch.isfinite(ref_grad)
    assert finite.sum() >= x.numel() - 8
    # soft targets: the derivative crosses zero, where its two terms cancel
    hard = (t == 0) | (t == 1)
    atol = torch.full_like(x, 1e-14).masked_fill_(hard, 1e-300)
    bound = 1e-12 * conditioning * ref_grad.abs() + atol
    assert ((fast_grad - ref_grad).abs() <= bound)[finite].all()
    assert (fast_grad[~finite] == 0).all()


def _degenerate_rows(c: int = 5) -> torch.Tensor:
    """Float64 logits ``(48, c)``: random rows and rows of huge, equal and dominating logits."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, c, generator=g, dtype=torch.float64) * 3
    x[0] = torch.tensor([1e4, -1e4, 0.0, 100.0, -100.0])
    x[1] = torch.tensor([-1e4, 1e4, -1e4, -1e4, -1e4])
    x[2] = 0.0
    x[3] = torch.tensor([100.0, -100.0, 0.0, 0.0, 0.0])
    x[4] = torch.tensor([30.0, 0.0, 0.0, 0.0, 0.0])
    return x


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
def test_fast_softmax_focal_equals_autograd_of_its_formula(gamma: float) -> None:
    x = _degenerate_rows()
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (48,), generator=g)
    labels[:5] = torch.tensor([1, 1, 2, 0, 0])  # p_t = 0, p_t = 1 (exactly), ties, p_t ~ 1
    upstream = torch.rand(48, generator=g, dtype=torch.float64) + 0.5
    fast_x = x.clone().requires_grad_(True)
    fast = SoftmaxFocal.apply(fast_x, labels, 0.25, gamma)
    (fast_grad,) = torch.autograd.grad((fast * upstream).sum(), fast_x)
    ref_x = x.clone().requires_grad_(True)
    ref = formulas.softmax_focal(ref_x, labels, 0.25, gamma)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), ref_x)
    torch.testing.assert_close(fast, ref, rtol=1e-13, atol=1e-300)
    assert torch.isfinite(fast_grad).all()
    # (1 - p_t)**gamma has an infinite derivative at p_t = 1 for gamma < 1 (the limit is 0)
    finite = torch.isfinite(ref_grad).all(dim=1)
    assert finite.sum() >= 46
    torch.testing.assert_close(fast_grad[finite], ref_grad[finite], rtol=1e-12, atol=1e-14)
    assert (fast_grad[~finite] == 0).all()


def test_fast_sigmoid_focal_saves_only_its_derivative() -> None:
    logits, _, one_hot = _random()
    x = logits.requires_grad_(True)
    saved: list[torch.Tensor] = []
    with recording_saved_tensors(saved):
        loss = detloss.sigmoid_focal_loss(x, one_hot, reduction="none")
    assert [tuple(t.shape) for t in saved] == [tuple(x.shape)]
    (grad,) = torch.autograd.grad(loss.sum(), x)
    torch.testing.assert_close(grad, saved[0])
    with torch.no_grad():
        detloss.sigmoid_focal_loss(x, one_hot)
    assert len(saved) == 1, "the derivative is computed only when the logits need a gradient"


def test_hand_computed_focal_values() -> None:
    zero = torch.zeros(1, 1)
    # x = 0: p = 1/2, BCE = ln 2, (1 - p_t)^2 = 1/4; alpha_t = 0.25 (t = 1) or 0.75 (t = 0).
    ln2 = math.log(2.0)
    pos = detloss.sigmoid_focal_loss(zero, torch.ones(1, 1))
    neg = detloss.sigmoid_focal_loss(zero, torch.zeros(1, 1))
    torch.testing.assert_close(pos, torch.tensor(0.25 * 0.25 * ln2))
    torch.testing.assert_close(neg, torch.tensor(0.75 * 0.25 * ln2))
    # FL* with gamma = 1 at x = 0: -log sigmoid(0) = ln 2.
    torch.testing.assert_close(detloss.sigmoid_focal_loss_star(zero, zero), torch.tensor(ln2))
    # Softmax over logits (0, ln 3): p = (1/4, 3/4).
    logits = torch.tensor([[0.0, math.log(3.0)]])
    expected = -0.25 * 0.25**2 * math.log(0.75)
    torch.testing.assert_close(
        detloss.softmax_focal_loss(logits, torch.tensor([1])), torch.tensor(expected)
    )
