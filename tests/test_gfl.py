"""The varifocal, quality focal and distribution focal losses: mmdetection's definitions and
precision at extreme logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch._dynamo.testing import CompileCounter

import detloss
from detloss._fast.gfl import QualityFocal, Varifocal
from tests import formulas
from tests.formulas import recording_saved_tensors
from tests.logistic_reference import bce64, log64, power64, sigmoid64, softplus64, ulp_error

LN2 = math.log(2.0)


def gfl_ulp(exponent: float) -> float:
    """Bound on the error of the float32 varifocal and quality focal losses, in ulp of the exact
    value: the power amplifies the rounding of its base (measured: 5.3 at 2, 7.7 at 3)."""
    return 5 + 2 * exponent


EXTREMES = [-3e38, -1e4, -100.0, -88.9, -0.0, 0.0, 88.9, 100.0, 1e4, 3e38]


def _random(n: int = 40, c: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, c + 1, (n,), generator=g)  # c = background
    one_hot = F.one_hot(labels, c + 1)[:, :c].double()
    return logits, labels, one_hot


def _grid(targets: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, 1)`` logits from -100 to 100 in steps of 0.01 and the extremes, against each target."""
    x = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor(EXTREMES)])
    x, q = x.repeat(len(targets)), torch.tensor(targets).repeat_interleave(x.numel())
    return x.unsqueeze(1), q.unsqueeze(1)


# --- mmdetection's definitions, with plain autograd ---------------------------------------------


def _mmdet_varifocal(x: torch.Tensor, q: torch.Tensor, iou_weighted: bool) -> torch.Tensor:
    p = x.sigmoid()
    positive = (q > 0).double()
    focal = (q if iou_weighted else 1.0) * positive + 0.75 * (p - q).abs().pow(2.0) * (1 - positive)
    return F.binary_cross_entropy_with_logits(x, q, reduction="none") * focal


def _mmdet_quality(x: torch.Tensor, q: torch.Tensor, beta: float) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(x, q, reduction="none")
    return (bce * (x.sigmoid() - q).abs().pow(beta)).sum(dim=1)


def _mmdet_dfl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    left = y.long()
    return F.cross_entropy(x, left, reduction="none") * (left + 1 - y) + F.cross_entropy(
        x, left + 1, reduction="none"
    ) * (y - left)


@pytest.mark.parametrize("param", [0.5, 1.0, 2.0])
def test_gradients_match_the_mmdetection_definitions(param: float) -> None:
    logits, _, one_hot = _random()
    iou = one_hot * torch.rand(40, 1, dtype=torch.float64)
    distances = torch.rand(40, dtype=torch.float64) * 5
    checks = [
        (
            lambda x: detloss.varifocal_loss(x, iou, gamma=2.0, reduction="none"),
            lambda x: _mmdet_varifocal(x, iou, True),
        ),
        (
            lambda x: detloss.varifocal_loss(x, iou, iou_weighted=False, reduction="none"),
            lambda x: _mmdet_varifocal(x, iou, False),
        ),
        (
            lambda x: detloss.quality_focal_loss(x, iou, beta=param, reduction="none"),
            lambda x: _mmdet_quality(x, iou, param),
        ),
        (
            lambda x: detloss.distribution_focal_loss(x, distances, reduction="none"),
            lambda x: _mmdet_dfl(x, distances),
        ),
    ]
    for ours, reference in checks:
        x = logits.clone().requires_grad_(True)
        ref_x = logits.clone().requires_grad_(True)
        value, ref_value = ours(x), reference(ref_x)
        torch.testing.assert_close(value, ref_value)
        upstream = torch.rand_like(value)
        (value * upstream).sum().backward()
        (ref_value * upstream).sum().backward()
        torch.testing.assert_close(x.grad, ref_x.grad)


def test_hand_computed_values() -> None:
    # Varifocal at x = 0: q = 0.5 -> 0.5 * BCE(0, 0.5) = 0.5 ln 2; q = 0 -> 0.75 * 0.5^2 * ln 2.
    vfl = detloss.varifocal_loss(torch.zeros(1, 2), torch.tensor([[0.5, 0.0]]), reduction="none")
    torch.testing.assert_close(vfl, torch.tensor([[0.5 * LN2, 0.75 * 0.25 * LN2]]))
    # QFL at x = 0: q = 0.5 gives |0.5 - 0.5|^2 = 0; q = 0 gives 0.25 ln 2; row sum.
    qfl = detloss.quality_focal_loss(torch.zeros(1, 2), torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(qfl, torch.tensor(0.25 * LN2))
    # DFL over 3 equal bins: -(0.75 ln 1/3 + 0.25 ln 1/3) = ln 3 for y = 0.25.
    dfl = detloss.distribution_focal_loss(torch.zeros(1, 3), torch.tensor([0.25]))
    torch.testing.assert_close(dfl, torch.tensor(math.log(3.0)))


def test_quality_label_score_tuple_equals_dense_targets() -> None:
    logits, labels, one_hot = _random()
    scores = torch.rand(40, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.quality_focal_loss(logits, labels, scores, reduction="none"),
        detloss.quality_focal_loss(logits, one_hot * scores[:, None], reduction="none"),
        rtol=0,
        atol=0,
    )


def test_dfl_last_bin_and_clamping() -> None:
    logits, _, _ = _random()
    # y = n puts all mass on the last bin: the cross-entropy of bin n; beyond [0, n] is clamped.
    last = torch.full((40,), 5.0, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, last, reduction="none"),
        F.cross_entropy(logits, last.long(), reduction="none"),
    )
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, last + 3, reduction="none"),
        detloss.distribution_focal_loss(logits, last, reduction="none"),
    )
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, -last, reduction="none"),
        F.cross_entropy(logits, torch.zeros(40, dtype=torch.long), reduction="none"),
    )


def test_targets_receive_no_gradient() -> None:
    logits, labels, one_hot = _random()
    iou = (one_hot * 0.7).requires_grad_(True)
    soft = torch.rand(40, 6, dtype=torch.float64, requires_grad=True)
    scores = torch.rand(40, dtype=torch.float64, requires_grad=True)
    distances = (torch.rand(40, dtype=torch.float64) * 5).requires_grad_(True)
    losses = [
        detloss.varifocal_loss(logits, iou),
        detloss.quality_focal_loss(logits, iou),
        detloss.quality_focal_loss(logits, labels, scores),
        detloss.distribution_focal_loss(logits, distances),
        detloss.sigmoid_focal_loss(logits, soft),
        detloss.sigmoid_focal_loss(logits, soft, gamma=0.0),
        detloss.sigmoid_focal_loss_star(logits, soft),
    ]
    for loss in losses:
        assert not loss.requires_grad


# --- precision ---------------------------------------------------------------------------------


def _varifocal64(x: torch.Tensor, q: torch.Tensor, gamma: float, iou_weighted: bool):
    q64 = q.double()
    positive = (q64 if iou_weighted else 1.0) * bce64(x, q)
    power = power64(sigmoid64(x), sigmoid64(-x), gamma)
    return torch.where(q > 0, positive, 0.75 * power * softplus64(x))


def _prob_error64(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    q64 = q.double()
    return (1 - q64) * sigmoid64(x) - q64 * sigmoid64(-x)


def _size_and_complement64(x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``|d| = |p - q|`` and ``1 - |d| = min(q + sigmoid(-x), (1 - q) + sigmoid(x))``, float64."""
    q64 = q.double()
    complement = torch.minimum(q64 + sigmoid64(-x), (1 - q64) + sigmoid64(x))
    return _prob_error64(x, q).abs(), complement


def _quality64(x: torch.Tensor, q: torch.Tensor, beta: float) -> torch.Tensor:
    """The element-wise quality focal loss in float64."""
    return power64(*_size_and_complement64(x, q), beta) * bce64(x, q)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("iou_weighted", [True, False])
def test_varifocal_is_within_a_few_ulp_of_the_exact_value(gamma: float, iou_weighted: bool) -> None:
    x, q = _grid([0.0, 1.0, 0.5, 0.3, 0.999])
    x = x.requires_grad_(True)
    loss = detloss.varifocal_loss(x, q, 0.75, gamma, iou_weighted, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    exact = _varifocal64(x.detach(), q, gamma, iou_weighted)
    assert ulp_error(loss, exact, torch.float32).max() <= gfl_ulp(gamma)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 3.0])
def test_quality_focal_is_within_a_few_ulp_of_the_exact_value(beta: float) -> None:
    x, q = _grid([0.0, 1.0, 0.5, 0.3, 0.999])
    x = x.requires_grad_(True)
    loss = detloss.quality_focal_loss(x, q, beta=beta, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad[(q == 0) | (q == 1)]).all()
    d = _prob_error64(x.detach(), q).abs().squeeze(1)
    exact = _quality64(x.detach(), q, beta).squeeze(1)
    error = ulp_error(loss, exact, torch.float32)
    hard = ((q == 0) | (q == 1)).squeeze(1)
    assert error[hard].max() <= gfl_ulp(beta)
    # Soft targets: |p - q| cancels near p = q; its float32 inputs carry 2^-24 each, which the
    # power amplifies by beta / |p - q|.
    conditioning = beta * 2**-22 / d / 2**-24
    assert (error <= gfl_ulp(beta) + conditioning)[~hard].all()


@pytest.mark.parametrize("gamma", [10.0, 1e3, 1e6, 1e12, 1e30])
def test_varifocal_large_gamma_is_accurate(gamma: float) -> None:
    # sigmoid(x)**gamma is exp(gamma log1p(-sigmoid(-x))) for x >= 0 (sigmoid(x) rounds to 1
    # from x = 17): a few ulp times |y| = |gamma log sigmoid(x)|, the conditioning of exp.
    x, q = _grid([0.0, 1.0, 0.5])
    x = x.requires_grad_(True)
    loss = detloss.varifocal_loss(x, q, 0.75, gamma, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x = x.detach()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    y = (gamma * softplus64(-x)).abs()
    exact = _varifocal64(x, q, gamma, True)
    assert (exact[(q == 0) & (x > 17)] > 0).any()  # where the rounded sigmoid gave 1
    assert (ulp_error(loss.detach(), exact, torch.float32) <= 4 * (1 + y)).all()
    x64 = x.double().requires_grad_(True)
    (exact_grad,) = torch.autograd.grad(
        formulas.varifocal(x64, q.double(), 0.75, gamma, True).sum(), x64
    )
    # a factor below the smallest normal number has lost digits, which a large s_ ce multiplies
    tiny = torch.finfo(torch.float32).tiny
    normal = (q > 0) | (power64(sigmoid64(x), sigmoid64(-x), gamma) >= tiny)
    hard = ((q == 0) | (q == 1)) & normal & (exact_grad.abs() >= tiny)
    assert (ulp_error(grad, exact_grad, torch.float32) <= 10 * (1 + y))[hard].all()


@pytest.mark.parametrize("beta", [10.0, 1e3, 1e6, 1e12, 1e30])
def test_quality_focal_large_beta_is_accurate(beta: float) -> None:
    # |d|**beta is exp(beta log1p(-(1 - |d|))) from |d| = 1/2 up, 1 - |d| a sum without
    # cancellation (|d| rounds to 1 from |x| = 17 for q in {0, 1}): a few ulp times
    # |y| = |beta log|d||; for soft q, plus the conditioning of |p - q| near p = q.
    x, q = _grid([0.0, 1.0, 0.5, 0.3, 0.999])
    x = x.requires_grad_(True)
    loss = detloss.quality_focal_loss(x, q, beta=beta, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x, q, loss = x.detach(), q, loss.detach()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    size, complement = _size_and_complement64(x, q)
    y = (beta * log64(size, complement)).abs().squeeze(1)
    hard = ((q == 0) | (q == 1)).squeeze(1)
    exact = _quality64(x, q, beta).squeeze(1)
    assert (exact[hard & (x.abs() > 17).squeeze(1)] > 0).any()  # where the rounded |d| is 1
    error = ulp_error(loss, exact, torch.float32)
    assert (error <= 4 * (1 + y))[hard].all()
    # the float32 inputs of |p - q| carry 2^-24 each, which the power amplifies by beta / |p - q|
    conditioning = beta * 2**-22 / size.squeeze(1) / 2**-24
    assert (error <= 4 * (1 + y) + conditioning)[~hard].all()
    x64 = x.double().requires_grad_(True)
    (exact_grad,) = torch.autograd.grad(formulas.quality_focal(x64, q.double(), beta).sum(), x64)
    tiny = torch.finfo(torch.float32).tiny
    normal = power64(size, complement, beta) >= tiny
    hard = ((q == 0) | (q == 1)) & normal & (exact_grad.abs() >= tiny)
    assert (ulp_error(grad, exact_grad, torch.float32) <= 10 * (1 + y.unsqueeze(1)))[hard].all()


@given(
    logits=st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=16),
    hard=st.lists(st.booleans(), min_size=16, max_size=16),
    gamma=st.sampled_from([1.0, 2.0, 3.0]),
)
def test_varifocal_and_quality_precision_property(
    logits: list[float], hard: list[bool], gamma: float
) -> None:
    x = torch.tensor(logits).unsqueeze(1)
    q = torch.tensor([1.0 if h else 0.0 for h in hard[: len(logits)]]).unsqueeze(1)
    vfl = detloss.varifocal_loss(x, q, 0.75, gamma, reduction="none")
    assert ulp_error(vfl, _varifocal64(x, q, gamma, True), torch.float32).max() <= gfl_ulp(gamma)
    qfl = detloss.quality_focal_loss(x, q, beta=gamma, reduction="none")
    exact = _quality64(x, q, gamma).squeeze(1)
    assert ulp_error(qfl, exact, torch.float32).max() <= gfl_ulp(gamma)


# --- the hand-written derivatives against autograd of the same formulas ---------------------------

DEGENERATE_LOGITS = [-1e4, -100.0, -20.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 20.0, 100.0, 1e4]


def _degenerate_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (degenerate and random) against targets 0, 1, 0.5 and random, float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.tensor(DEGENERATE_LOGITS, dtype=torch.float64),
            torch.randn(40, generator=g, dtype=torch.float64) * 5,
        ]
    )
    n = x.numel()
    x = x.repeat(4)
    q = torch.cat(
        [torch.zeros(n), torch.ones(n), torch.full((n,), 0.5), torch.rand(n, generator=g)]
    ).double()
    upstream = torch.rand(x.shape, generator=g, dtype=torch.float64) + 0.5
    return x, q, upstream


def _compare(fast_fn, formula, x, q, upstream, conditioning) -> None:
    """``conditioning``: the factor by which the formula amplifies rounding (``exp(k log m)``
    multiplies that of its argument by ``|k log m|``)."""
    fast_x = x.clone().requires_grad_(True)
    fast = fast_fn(fast_x, q)
    (fast_grad,) = torch.autograd.grad((fast * upstream).sum(), fast_x)
    ref_x = x.clone().requires_grad_(True)
    ref = formula(ref_x, q)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), ref_x)
    # |s - q| cancels near s = q: its rounding differs between the two formulas
    hard = (q == 0) | (q == 1)
    atol = torch.full_like(x, 1e-15).masked_fill_(hard, 1e-300)  # 1e-300: float64 subnormals
    assert ((fast - ref).abs() <= 1e-13 * conditioning * ref.abs() + atol).all()
    assert torch.isfinite(fast_grad).all()
    # autograd's |d|**beta (s**gamma) has an infinite derivative at 0 for an exponent < 1, where
    # the limit is 0; elsewhere the two agree, and at the zero of a soft target's derivative to
    # an absolute 1e-14.
    finite = torch.isfinite(ref_grad)
    assert finite.sum() >= x.numel() - 8
    atol = torch.full_like(x, 1e-14).masked_fill_(hard, 1e-300)
    bound = 1e-12 * conditioning * ref_grad.abs() + atol
    assert ((fast_grad - ref_grad).abs() <= bound)[finite].all()
    assert (fast_grad[~finite] == 0).all()


EXPONENTS = [0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 10.5, 1e6]


@pytest.mark.parametrize("gamma", EXPONENTS)
@pytest.mark.parametrize("iou_weighted", [True, False])
def test_fast_varifocal_equals_autograd_of_its_formula(gamma: float, iou_weighted: bool) -> None:
    x, q, upstream = _degenerate_inputs()
    log_s = -softplus64(-x)
    _compare(
        lambda x, q: Varifocal.apply(x, q, q > 0, 0.75, gamma, iou_weighted),
        lambda x, q: formulas.varifocal(x, q, 0.75, gamma, iou_weighted),
        x,
        q,
        upstream,
        conditioning=1 + (gamma * log_s).abs(),
    )


@pytest.mark.parametrize("beta", EXPONENTS)
def test_fast_quality_focal_equals_autograd_of_its_formula(beta: float) -> None:
    x, q, upstream = _degenerate_inputs()
    log_size = log64(*_size_and_complement64(x, q))
    _compare(
        lambda x, q: QualityFocal.apply(x, q, beta),
        lambda x, q: formulas.quality_focal(x, q, beta),
        x,
        q,
        upstream,
        conditioning=1 + (beta * log_size).abs().clamp_max(1e300),  # inf at d = 0
    )


@pytest.mark.parametrize("exponent", [0.5, 2.0])
def test_gradients_are_finite_up_to_the_largest_logits(exponent: float) -> None:
    x, q = _grid([0.0, 1.0, 0.5])
    x = torch.cat([x, torch.tensor([[3.4e38], [-3.4e38]])])
    q = torch.cat([q, torch.tensor([[0.0], [1.0]])])
    for loss_fn in (
        lambda x: detloss.varifocal_loss(x, q, gamma=exponent, reduction="sum"),
        lambda x: detloss.quality_focal_loss(x, q, beta=exponent, reduction="sum"),
    ):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(x), x)
        assert torch.isfinite(grad).all()


def test_fast_losses_save_only_their_derivative() -> None:
    logits, labels, one_hot = _random()
    x = logits.requires_grad_(True)
    scores = torch.rand(40, dtype=torch.float64)
    # with class indices, also the (N,) weight of the rows (0 where a label is ignored)
    for call, rows in (
        (lambda: detloss.varifocal_loss(x, one_hot * 0.6, reduction="none"), []),
        (lambda: detloss.quality_focal_loss(x, labels, scores, reduction="none"), [(40,)]),
    ):
        saved: list[torch.Tensor] = []
        with recording_saved_tensors(saved):
            loss = call()
        assert [tuple(t.shape) for t in saved] == [tuple(x.shape), *rows]
        (grad,) = torch.autograd.grad(loss.sum(), x)
        torch.testing.assert_close(grad, saved[0])


# --- varifocal positives given by a mask; distribution focal rows of k distances -----------------


def _mask_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``(30, 4)``, IoU targets and a positive mask that disagree in both ways: positives of
    target 0 and negatives of a nonzero target."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64) * 3
    q = torch.rand(30, 4, generator=g, dtype=torch.float64) * (torch.rand(30, 4, generator=g) < 0.5)
    positive = torch.rand(30, 4, generator=g) < 0.5
    return x, q, positive


def _varifocal_with_mask(x, q, positive, alpha, gamma, iou_weighted):
    """Positives: ``w_q BCE(x, q)``; negatives: ``alpha p**gamma BCE(x, 0)``, from VarifocalNet's
    definition with the positives given."""
    w = q if iou_weighted else torch.ones_like(q)
    negative = (
        alpha
        * torch.sigmoid(x) ** gamma
        * F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none")
    )
    positive_term = w * F.binary_cross_entropy_with_logits(x, q, reduction="none")
    return torch.where(positive, positive_term, negative)


@pytest.mark.parametrize("iou_weighted", [True, False])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_varifocal_positive_mask(iou_weighted: bool, gamma: float) -> None:
    x, q, positive = _mask_inputs()
    assert (positive & (q == 0)).any()
    assert (~positive & (q > 0)).any()
    ours_x, ref_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = detloss.varifocal_loss(
        ours_x, q, 0.6, gamma, iou_weighted, positive=positive, reduction="none"
    )
    ref = _varifocal_with_mask(ref_x, q, positive, 0.6, gamma, iou_weighted)
    torch.testing.assert_close(ours, ref)
    upstream = torch.rand_like(ref)
    (ours_grad,) = torch.autograd.grad((ours * upstream).sum(), ours_x)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), ref_x)
    torch.testing.assert_close(ours_grad, ref_grad)
    # A positive of target 0 is 0 with iou_weighted (value and gradient), -log(1 - p) without.
    zero_positive = positive & (q == 0)
    if iou_weighted:
        assert (ours[zero_positive] == 0).all()
        assert (ours_grad[zero_positive] == 0).all()
    else:
        torch.testing.assert_close(ours[zero_positive], F.softplus(x)[zero_positive])


def test_varifocal_positive_mask_forms() -> None:
    x, q, positive = _mask_inputs(1)
    by_default = detloss.varifocal_loss(x, q, reduction="none")
    # targets > 0 as a mask is the default, bit for bit; numbers are read as nonzero = positive.
    for mask in (q > 0, (q > 0).long() * 3, (q > 0).double() * 0.5):
        assert torch.equal(
            detloss.varifocal_loss(x, q, positive=mask, reduction="none"), by_default
        )
    columns = torch.tensor([[True, False, True, False]])  # broadcasts over the rows
    torch.testing.assert_close(
        detloss.varifocal_loss(x, q, positive=columns, reduction="sum"),
        detloss.varifocal_loss(x, q, positive=columns.expand(30, 4), reduction="sum"),
    )
    with pytest.raises(ValueError, match="positive"):
        detloss.varifocal_loss(x, q, positive=positive[:, :3])


def test_varifocal_positive_mask_gradcheck_compile_empty_half() -> None:
    x, q, positive = _mask_inputs(2)
    x = x[:6].requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: detloss.varifocal_loss(x, q[:6], positive=positive[:6], reduction="sum"), (x,)
    )
    counter = CompileCounter()
    compiled = torch.compile(detloss.varifocal_loss, fullgraph=True, dynamic=True, backend=counter)
    for n in (17, 23, 29):  # sizes that equal no other dimension
        xn, qn, pn = (t[:n] for t in _mask_inputs(n))
        expected = detloss.varifocal_loss(xn, qn, positive=pn)
        torch.testing.assert_close(compiled(xn, qn, positive=pn), expected)
    assert counter.frame_count == 1
    empty = x[:0].detach().requires_grad_(True)
    loss = detloss.varifocal_loss(empty, q[:0], positive=positive[:0])
    loss.backward()
    assert loss.item() == 0.0
    assert empty.grad is not None
    assert empty.grad.shape == (0, 4)
    half = detloss.varifocal_loss(x.detach().half(), q[:6].half(), positive=positive[:6])
    assert half.dtype == torch.float32
    torch.testing.assert_close(
        half,
        detloss.varifocal_loss(
            x.detach().half().float(), q[:6].half().float(), positive=positive[:6]
        ),
    )


def test_dfl_rows_of_k_distances_are_the_mean_over_them() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(10, 4, 8, generator=g, dtype=torch.float64)
    distances = torch.rand(10, 4, generator=g, dtype=torch.float64) * 9 - 1  # some clamped
    flat = detloss.distribution_focal_loss(
        logits.reshape(40, 8), distances.reshape(40), reduction="none"
    )
    rows = detloss.distribution_focal_loss(logits, distances, reduction="none")
    torch.testing.assert_close(rows, flat.reshape(10, 4).mean(1))
    weight = torch.rand(10, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, distances, weight=weight, avg_factor=2.5),
        (rows * weight).sum() / (2.5 + torch.finfo(torch.float32).eps),
    )


def test_dfl_max_target() -> None:
    logits, _, _ = _random()  # 6 bins: n = 5
    n = 5
    y = torch.tensor([n, n + 2.0, n - 0.005, 2.5] * 10, dtype=torch.float64)
    top = n - 0.01
    # Clamped to top = n - 0.01: 0.01 of the mass on bin n - 1, 0.99 on bin n.
    log_s = torch.log_softmax(logits, 1)
    clamped = y.clamp(max=top)
    left = clamped.floor()
    expected = -((left + 1 - clamped) * log_s[:, n - 1] + (clamped - left) * log_s[:, n])
    expected[3::4] = -(0.5 * log_s[3::4, 2] + 0.5 * log_s[3::4, 3])
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, y, max_target=top, reduction="none"), expected
    )
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, y, max_target=n, reduction="none"),
        detloss.distribution_focal_loss(logits, y, reduction="none"),
    )
    for bad in (n + 0.5, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_target"):
            detloss.distribution_focal_loss(logits, y, max_target=bad)
    for shapes in (
        ((4, 2, 6), (4,)),
        ((4, 0, 6), (4, 0)),
        ((4, 6), (4, 1)),
        ((2, 3, 4, 6), (2, 3, 4)),
    ):
        with pytest.raises(ValueError, match="logits must be"):
            detloss.distribution_focal_loss(torch.zeros(shapes[0]), torch.zeros(shapes[1]))
