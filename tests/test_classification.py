"""Tests of the classification losses beyond the shared catalogue checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import detloss.blocks
import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import sigmoid_focal_loss as fvcore_focal
from fvcore.nn import sigmoid_focal_loss_star as fvcore_focal_star
from hypothesis import given
from hypothesis import strategies as st

import detloss
from tests.catalogue import CASES

LN2 = math.log(2.0)
CLASSIFICATION_CASES = [c for c in CASES if c.fn.__module__ == "detloss.classification"]


def _random(n: int = 40, c: int = 6, seed: int = 0, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, c + 1, (n,), generator=g)  # c = background
    one_hot = F.one_hot(labels, c + 1)[:, :c].double()
    return logits, labels, one_hot


# --- hand-computed values ---------------------------------------------------------------------


def test_hand_computed_values() -> None:
    zero = torch.zeros(1, 1)
    # x = 0: p = 1/2, BCE = ln 2, (1 - p_t)^2 = 1/4; alpha_t = 0.25 (t = 1) or 0.75 (t = 0).
    pos = detloss.sigmoid_focal_loss(zero, torch.ones(1, 1))
    neg = detloss.sigmoid_focal_loss(zero, torch.zeros(1, 1))
    torch.testing.assert_close(pos, torch.tensor(0.25 * 0.25 * LN2))
    torch.testing.assert_close(neg, torch.tensor(0.75 * 0.25 * LN2))
    # FL* with gamma = 1 at x = 0: -log sigmoid(0) = ln 2.
    torch.testing.assert_close(detloss.sigmoid_focal_loss_star(zero, zero), torch.tensor(LN2))
    # Softmax over logits (0, ln 3): p = (1/4, 3/4).
    logits = torch.tensor([[0.0, math.log(3.0)]])
    label = torch.tensor([1])
    torch.testing.assert_close(detloss.cross_entropy(logits, label), torch.tensor(-math.log(0.75)))
    expected = -0.25 * 0.25**2 * math.log(0.75)
    torch.testing.assert_close(detloss.softmax_focal_loss(logits, label), torch.tensor(expected))
    # Varifocal at x = 0: q = 0.5 -> 0.5 * BCE(0, 0.5) = 0.5 ln 2; q = 0 -> 0.75 * 0.5^2 * ln 2.
    vfl = detloss.varifocal_loss(torch.zeros(1, 2), torch.tensor([[0.5, 0.0]]), reduction="none")
    torch.testing.assert_close(vfl, torch.tensor([[0.5 * LN2, 0.75 * 0.25 * LN2]]))
    # QFL at x = 0: q = 0.5 gives |0.5 - 0.5|^2 = 0; q = 0 gives 0.25 ln 2; row sum.
    qfl = detloss.quality_focal_loss(torch.zeros(1, 2), torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(qfl, torch.tensor(0.25 * LN2))
    # DFL over 3 equal bins: -(0.75 ln 1/3 + 0.25 ln 1/3) = ln 3 for y = 0.25.
    dfl = detloss.distribution_focal_loss(torch.zeros(1, 3), torch.tensor([0.25]))
    torch.testing.assert_close(dfl, torch.tensor(math.log(3.0)))


# --- agreement with fvcore and PyTorch -------------------------------------------------------


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


def test_focal_gamma0_without_alpha_is_binary_cross_entropy() -> None:
    logits, labels, one_hot = _random()
    reference = F.binary_cross_entropy_with_logits(logits, one_hot)
    torch.testing.assert_close(detloss.sigmoid_focal_loss(logits, one_hot, None, 0.0), reference)
    torch.testing.assert_close(detloss.sigmoid_focal_loss(logits, labels, None, 0.0), reference)
    torch.testing.assert_close(detloss.binary_cross_entropy(logits, one_hot), reference)


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


def test_cross_entropy_matches_pytorch_weights_ignore_smoothing() -> None:
    logits, labels, _ = _random(c=6)
    labels = labels.clamp_max(5)
    labels[::7] = 3  # ignored below
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0, 0.25], dtype=torch.float64)
    kwargs: dict[str, Any] = {"ignore_index": 3, "label_smoothing": 0.2}
    none = detloss.cross_entropy(logits, labels, class_weight=weights, reduction="none", **kwargs)
    torch.testing.assert_close(
        none, F.cross_entropy(logits, labels, weight=weights, reduction="none", **kwargs)
    )
    # PyTorch's weighted mean = our sum / summed class weights of the non-ignored labels.
    total = detloss.cross_entropy(logits, labels, class_weight=weights, reduction="sum", **kwargs)
    torch_mean = F.cross_entropy(logits, labels, weight=weights, **kwargs)
    torch.testing.assert_close(total / weights[labels[labels != 3]].sum(), torch_mean)
    # mmdetection's mean: / all labels, or / non-ignored labels with avg_non_ignore.
    mean = detloss.cross_entropy(logits, labels, class_weight=weights, **kwargs)
    torch.testing.assert_close(mean, total / labels.numel())
    non_ignore = detloss.cross_entropy(
        logits, labels, class_weight=weights, avg_non_ignore=True, **kwargs
    )
    torch.testing.assert_close(non_ignore, total / (labels != 3).sum())


def test_cross_entropy_spatial_and_all_ignored() -> None:
    logits = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 3, 5))
    torch.testing.assert_close(
        detloss.cross_entropy(logits, labels), F.cross_entropy(logits, labels)
    )
    ignored = torch.full((2, 3, 5), -100)
    x = logits.clone().requires_grad_(True)
    loss = detloss.cross_entropy(x, ignored, avg_non_ignore=True)
    loss.backward()
    assert loss.item() == 0.0
    assert x.grad is not None
    assert (x.grad == 0).all()


def test_binary_cross_entropy_label_formats() -> None:
    logits, labels, one_hot = _random()
    pos_weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    ours = detloss.binary_cross_entropy(logits, labels, pos_weight=pos_weight, reduction="none")
    ref = F.binary_cross_entropy_with_logits(
        logits, one_hot, pos_weight=pos_weight, reduction="none"
    )
    torch.testing.assert_close(ours, ref)
    # Ignored class-index rows contribute nothing and avg_non_ignore drops them from the mean.
    labels[:10] = -100
    plain = F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none")[10:]
    loss = detloss.binary_cross_entropy(logits, labels, avg_non_ignore=True)
    torch.testing.assert_close(loss, plain.sum() / plain.numel())
    loss = detloss.binary_cross_entropy(logits, labels)
    torch.testing.assert_close(loss, plain.sum() / one_hot.numel())
    # RPN-style binary labels with -1 = ignored.
    objectness = logits[:, 0]
    rpn_labels = torch.tensor([1, 0, -1, 1] * 10)
    kept = rpn_labels >= 0
    got = detloss.binary_cross_entropy(objectness, rpn_labels, ignore_index=-1, reduction="sum")
    ref_sum = F.binary_cross_entropy_with_logits(
        objectness[kept], rpn_labels[kept].double(), reduction="sum"
    )
    torch.testing.assert_close(got, ref_sum)


def test_class_index_labels_equal_one_hot_with_background_c() -> None:
    logits, labels, one_hot = _random()
    assert (labels == 6).any()
    for fn in (detloss.sigmoid_focal_loss, detloss.sigmoid_focal_loss_star):
        torch.testing.assert_close(fn(logits, labels), fn(logits, one_hot))
    scores = torch.rand(40, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.quality_focal_loss(logits, labels, scores, reduction="none"),
        detloss.quality_focal_loss(logits, one_hot * scores[:, None], reduction="none"),
    )


def test_row_weight_of_length_n_weights_rows() -> None:
    logits, _, one_hot = _random()
    row = torch.rand(40, dtype=torch.float64)
    for fn in (detloss.sigmoid_focal_loss, detloss.binary_cross_entropy):
        torch.testing.assert_close(
            fn(logits, one_hot, weight=row, reduction="sum"),
            (fn(logits, one_hot, reduction="none") * row[:, None]).sum(),
        )


# --- mmdetection / mmcv definitions, written with plain autograd -------------------------------


def _mmdet_varifocal(x: torch.Tensor, q: torch.Tensor, iou_weighted: bool) -> torch.Tensor:
    p = x.sigmoid()
    positive = (q > 0).double()
    focal = (q if iou_weighted else 1.0) * positive + 0.75 * (p - q).abs().pow(2.0) * (1 - positive)
    return F.binary_cross_entropy_with_logits(x, q, reduction="none") * focal


def _mmdet_quality(x: torch.Tensor, q: torch.Tensor, beta: float) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(x, q, reduction="none")
    return (bce * (x.sigmoid() - q).abs().pow(beta)).sum(dim=1)


def _mmcv_softmax_focal(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    log_pt = x.log_softmax(1).gather(1, y[:, None]).squeeze(1)
    return -0.25 * (1 - log_pt.exp()).pow(gamma) * log_pt


def _mmdet_dfl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    left = y.long()
    return F.cross_entropy(x, left, reduction="none") * (left + 1 - y) + F.cross_entropy(
        x, left + 1, reduction="none"
    ) * (y - left)


@pytest.mark.parametrize("param", [0.5, 1.0, 2.0])
def test_analytic_gradients_match_the_autograd_definitions(param: float) -> None:
    logits, labels, one_hot = _random()
    iou = one_hot * torch.rand(40, 1, dtype=torch.float64)
    checks: list[
        tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]
    ] = [
        (
            lambda x: detloss.varifocal_loss(x, iou, reduction="none"),
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
            lambda x: detloss.softmax_focal_loss(x, labels % 6, gamma=param, reduction="none"),
            lambda x: _mmcv_softmax_focal(x, labels % 6, param),
        ),
    ]
    distances = torch.rand(40, dtype=torch.float64) * 5
    checks.append(
        (
            lambda x: detloss.distribution_focal_loss(x, distances, reduction="none"),
            lambda x: _mmdet_dfl(x, distances),
        )
    )
    for ours, reference in checks:
        x = logits.clone().requires_grad_(True)
        ref_x = logits.clone().requires_grad_(True)
        value, ref_value = ours(x), reference(ref_x)
        torch.testing.assert_close(value, ref_value)
        upstream = torch.rand_like(value)
        (value * upstream).sum().backward()
        (ref_value * upstream).sum().backward()
        torch.testing.assert_close(x.grad, ref_x.grad)


def test_softmax_focal_class_weight_and_dfl_last_bin() -> None:
    logits, labels, _ = _random()
    labels = labels % 6
    weights = torch.linspace(0.5, 3.0, 6, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.softmax_focal_loss(logits, labels, class_weight=weights, reduction="none"),
        detloss.softmax_focal_loss(logits, labels, reduction="none") * weights[labels],
    )
    # y = n puts all mass on the last bin: the cross-entropy of bin n.
    last = torch.full((40,), 5.0, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.distribution_focal_loss(logits, last, reduction="none"),
        F.cross_entropy(logits, last.long(), reduction="none"),
    )


# --- numerics and memory -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CLASSIFICATION_CASES, ids=lambda case: case.id)
def test_logits_of_plus_minus_100_give_finite_losses_and_gradients(case) -> None:
    inputs = case.inputs(64, torch.float32, seed=4)
    logits = inputs[0].detach()
    extreme = torch.where(logits > 0, 100.0, -100.0).requires_grad_(True)
    loss = case(extreme, *inputs[1:], reduction="sum")
    loss.backward()
    assert torch.isfinite(loss)
    assert extreme.grad is not None
    assert torch.isfinite(extreme.grad).all()


def test_float16_sum_over_16m_elements_is_float32_accurate() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2**17, 128, generator=g).half()
    targets = (torch.rand(2**17, 128, generator=g) < 0.05).half()
    loss = detloss.sigmoid_focal_loss(logits, targets, reduction="sum")
    reference = detloss.sigmoid_focal_loss(logits.double(), targets.double(), reduction="sum")
    assert loss.dtype == torch.float32
    assert abs(loss.double().item() - reference.item()) <= 1e-5 * reference.item()


def _focal_value_and_grad(
    logits: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[..., torch.Tensor] = detloss.sigmoid_focal_loss,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = logits.detach().requires_grad_(True)
    loss = loss_fn(x, targets, reduction="none", **kwargs)
    (loss * torch.linspace(0.5, 2.0, loss.numel()).view_as(loss)).sum().backward()
    assert x.grad is not None
    return loss, x.grad


@pytest.mark.parametrize("params", [(0.25, 2.0), (None, 0.0), (0.5, 0.5), (1.0, 1.0), (0.25, 3.0)])
@pytest.mark.parametrize("targets", ["one_hot", "indices", "soft", "float16"])
def test_sigmoid_focal_in_eager_blocks_equals_one_pass(
    monkeypatch: pytest.MonkeyPatch, params: tuple[float | None, float], targets: str
) -> None:
    # 7 elements a block on (53, 6) logits: one row a block, 53 blocks; on (53, 2, 3): the same.
    logits, labels, one_hot = _random(53)
    logits, one_hot = logits.float(), one_hot.float()
    target = {
        "one_hot": one_hot,
        "indices": labels,
        "soft": torch.rand(53, 6, generator=torch.Generator().manual_seed(1)),
        "float16": one_hot.half(),
    }[targets]
    if targets == "float16":
        logits = logits.half()
    if targets in ("soft", "one_hot"):  # any shape with floating targets: rows are dim 0
        logits, target = logits.view(53, 2, 3), target.view(53, 2, 3)
    alpha, gamma = params
    whole = _focal_value_and_grad(logits, target, alpha=alpha, gamma=gamma)
    monkeypatch.setitem(detloss.blocks.BLOCK_ELEMENTS, "cpu", 7)
    blocks = _focal_value_and_grad(logits, target, alpha=alpha, gamma=gamma)
    assert blocks[0].dtype == torch.float32
    assert blocks[1].dtype == logits.dtype
    # the same per-element maths; only the vectorised kernels' tails round differently (1 ulp)
    torch.testing.assert_close(blocks, whole)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_focal_maths_equals_eager_at_extreme_logits(dtype: torch.dtype) -> None:
    # Under torch.compile the logistic terms come from one exp(-|x|) and a series for log1p
    # (``_logistic``); the "eager" compile backend runs that traced code without inductor.
    # atol: beyond x = 20 PyTorch's softplus returns x, so the eager BCE of a confident correct
    # logit is 0 where the fused one keeps log1p(exp(-x)) (< 2e-9, times (1 - p_t)^gamma).
    values = torch.tensor(
        [-100.0, -30.0, -17.0, -5.0, -1e-3, 0.0, 1e-3, 0.5, 5.0, 17.0, 30.0, 100.0]
    )
    logits = values.to(dtype).repeat(4, 1)
    targets = torch.tensor([0.0, 1.0, 0.3, 1.0]).to(dtype).unsqueeze(1).expand_as(logits)
    targets = targets.contiguous()
    compiled = torch.compile(detloss.sigmoid_focal_loss, backend="eager", fullgraph=True)
    for gamma in (0.5, 2.0):
        fused = _focal_value_and_grad(logits, targets, compiled, alpha=0.25, gamma=gamma)
        eager = _focal_value_and_grad(logits, targets, alpha=0.25, gamma=gamma)
        assert all(torch.isfinite(t).all() for t in fused)
        torch.testing.assert_close(
            fused, eager, rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=1e-12
        )


def test_log1p_series_is_float32_accurate() -> None:
    from detloss.classification import _log1p_unit

    e = torch.cat([torch.linspace(0, 1, 200_001), torch.logspace(-37, 0, 20_001)])
    exact = torch.log1p(e.double())
    error = (_log1p_unit(e).double() - exact).abs() / exact.clamp_min(1e-300)
    # 4 half-units of float32 rounding (2^-24); torch.log1p is within 1 (tested bound, the doc's)
    assert error.max() <= 4 * 2**-24
    assert torch.equal(_log1p_unit(e.double()), exact)


FOCAL_CALLS: dict[
    str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
] = {
    "sigmoid_focal": lambda x, onehot, labels, scores: detloss.sigmoid_focal_loss(x, onehot),
    "sigmoid_focal_indices": lambda x, onehot, labels, scores: detloss.sigmoid_focal_loss(
        x, labels
    ),  # no background
    "focal_star": lambda x, onehot, labels, scores: detloss.sigmoid_focal_loss_star(x, onehot),
    "softmax_focal": lambda x, onehot, labels, scores: detloss.softmax_focal_loss(x, labels),
    "varifocal": lambda x, onehot, labels, scores: detloss.varifocal_loss(x, onehot),
    "quality": lambda x, onehot, labels, scores: detloss.quality_focal_loss(x, labels, scores),
    "distribution": lambda x, onehot, labels, scores: detloss.distribution_focal_loss(x, scores),
}


@pytest.mark.parametrize("name", sorted(FOCAL_CALLS))
def test_focal_losses_save_only_their_inputs_for_backward(name: str) -> None:
    logits, labels, one_hot = _random()
    x = logits.float().requires_grad_(True)
    one_hot = one_hot.float()
    scores = torch.rand(40)
    inputs = (x, one_hot, labels % 6, scores)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = FOCAL_CALLS[name](*inputs)
    loss.backward()
    assert saved, "nothing saved: the hook did not see the autograd function"
    logits_sized = [t for t in saved if t.numel() == x.numel()]
    assert all(any(t is i for i in inputs) for t in saved), [tuple(t.shape) for t in saved]
    assert len(logits_sized) <= 2


# --- modules and errors -----------------------------------------------------------------------


def test_modules_match_functional_and_build_from_mmdet_configs() -> None:
    logits, labels, one_hot = _random()
    logits = logits.float()
    one_hot = one_hot.float()
    row = torch.rand(40)
    focal = detloss.build_loss(
        {"type": "FocalLoss", "gamma": 1.5, "alpha": 0.5, "loss_weight": 2.0}
    )
    torch.testing.assert_close(
        focal(logits, labels, weight=row, avg_factor=7.0),
        2.0 * detloss.sigmoid_focal_loss(logits, labels, 0.5, 1.5, weight=row, avg_factor=7.0),
    )
    softmax_focal = detloss.build_loss({"type": "FocalLoss", "use_sigmoid": False})
    torch.testing.assert_close(
        softmax_focal(logits, labels % 6), detloss.softmax_focal_loss(logits, labels % 6)
    )
    ce = detloss.build_loss(
        {
            "type": "mmdet.CrossEntropyLoss",
            "class_weight": [1.0] * 5 + [2.0],
            "avg_non_ignore": True,
        }
    )
    torch.testing.assert_close(
        ce(logits, labels % 6, ignore_index=0),
        detloss.cross_entropy(
            logits, labels % 6, class_weight=[1.0] * 5 + [2.0], ignore_index=0, avg_non_ignore=True
        ),
    )
    bce = detloss.CrossEntropyLoss(use_sigmoid=True)
    torch.testing.assert_close(
        bce(logits, labels, reduction_override="sum"),
        detloss.binary_cross_entropy(logits, labels, reduction="sum"),
    )
    qfl = detloss.build_loss({"type": "QualityFocalLoss", "beta": 2.0})
    torch.testing.assert_close(
        qfl(logits, (labels, row), avg_factor=3.0),
        detloss.quality_focal_loss(logits, labels, row, avg_factor=3.0),
    )
    vfl = detloss.build_loss({"type": "VarifocalLoss", "iou_weighted": False})
    torch.testing.assert_close(
        vfl(logits, one_hot * 0.5),
        detloss.varifocal_loss(logits, one_hot * 0.5, iou_weighted=False),
    )
    dfl = detloss.build_loss({"type": "DistributionFocalLoss", "loss_weight": 0.25})
    distances = row * 4
    torch.testing.assert_close(
        dfl(logits, distances), 0.25 * detloss.distribution_focal_loss(logits, distances)
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError),
        (
            lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long)),
            ValueError,
        ),
        (
            lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), alpha=1.5),
            ValueError,
        ),
        (
            lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), gamma=-1),
            ValueError,
        ),
        (
            lambda: detloss.sigmoid_focal_loss_star(torch.zeros(2, 3), torch.zeros(2, 3), gamma=0),
            ValueError,
        ),
        (lambda: detloss.cross_entropy(torch.zeros(2, 3), torch.zeros(2)), TypeError),
        (
            lambda: detloss.cross_entropy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long)),
            ValueError,
        ),
        (
            lambda: detloss.cross_entropy(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), class_weight=[1.0]
            ),
            ValueError,
        ),
        (
            lambda: detloss.cross_entropy(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), label_smoothing=2
            ),
            ValueError,
        ),
        (
            lambda: detloss.softmax_focal_loss(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), alpha=-1.0
            ),
            ValueError,
        ),
        (
            lambda: detloss.quality_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)),
            TypeError,
        ),
        (lambda: detloss.distribution_focal_loss(torch.zeros(2, 1), torch.zeros(2)), ValueError),
        (lambda: detloss.varifocal_loss(torch.zeros(2, 3), torch.zeros(2, 2)), ValueError),
        (
            lambda: detloss.sigmoid_focal_loss(
                torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3)
            ),
            TypeError,
        ),
        (lambda: detloss.FocalLoss(activated=True), ValueError),
        (lambda: detloss.CrossEntropyLoss(use_mask=True), ValueError),
        (lambda: detloss.VarifocalLoss(use_sigmoid=False), ValueError),
    ],
)
def test_bad_input_raises_a_clear_error(call: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        call()
