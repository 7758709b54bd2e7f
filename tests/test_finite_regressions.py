"""Regression tests for each case of the issue "Nothing non-finite, nothing silent"."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import detloss

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BOX_LOSSES: list[Callable[..., Tensor]] = [
    detloss.iou_loss,
    detloss.giou_loss,
    detloss.diou_loss,
    detloss.ciou_loss,
    detloss.efficient_iou_loss,
    detloss.siou_loss,
]


def _gradient(fn, pred: Tensor, target: Tensor, **kwargs) -> tuple[Tensor, Tensor]:
    p = pred.clone().requires_grad_(True)
    loss = fn(p, target, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), p)
    return loss.detach(), grad


# --- at ordinary magnitudes -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_degenerate_boxes_have_bounded_gradients(dtype: torch.dtype) -> None:
    # A point against a zero-width box of height 8: float16 gave [-inf, 0, inf, 0], float32 +-8e6
    # (height / eps) through GIoU's enclosing area; the enclosing area is 0, its penalty's
    # gradient too.
    pred = torch.zeros(1, 4, dtype=dtype)
    target = torch.tensor([[0.0, 0.0, 0.0, 8.0]], dtype=dtype)
    for fn in BOX_LOSSES:
        loss, grad = _gradient(fn, pred, target)
        assert torch.isfinite(loss).all(), fn.__name__
        assert grad.abs().max() <= 1, (fn.__name__, grad)
    # Bounded IoU's eps is a length (1e-3): its gradients are at most about 4 / eps
    _, grad = _gradient(detloss.bounded_iou_loss, pred, target)
    assert grad.abs().max() <= 4 / 1e-3
    p = pred.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(detloss.box_iou(p, target, "giou", aligned=True).sum(), p)
    assert grad.abs().max() <= 1


def test_zero_width_proposal_encodes_with_a_finite_gradient() -> None:
    proposal = torch.tensor([[0.0, 0.0, 0.0, 8.0]], dtype=torch.float16, requires_grad=True)
    deltas = detloss.DeltaXYWHCoder().encode(proposal, torch.tensor([[0.0, 0.0, 1.0, 8.0]]).half())
    (grad,) = torch.autograd.grad(deltas.sum(), proposal)
    assert torch.isfinite(deltas).all()
    # The x deltas of a degenerate proposal are constants; y is an ordinary axis.
    torch.testing.assert_close(grad, torch.tensor([[0.0, 0.0625, 0.0, -0.1875]]).half())


def test_softmax_focal_class_weight_stays_float32() -> None:
    logits = torch.zeros(2, 2, dtype=torch.float16)
    loss = detloss.softmax_focal_loss(
        logits, torch.tensor([0, 1]), class_weight=[1.0, 1e5], reduction="none"
    )
    assert torch.isfinite(loss).all()


def test_float64_avg_factor_keeps_the_loss_dtype() -> None:
    # also in tests/test_reduction.py, for every reduction path
    loss = detloss.l1_loss(torch.ones(3), torch.zeros(3), avg_factor=torch.tensor(2.0).double())
    assert loss.dtype == torch.float32


# --- large and huge coordinates ---------------------------------------------------------------


@pytest.mark.parametrize("offset", [1e8, 1e12, 1e16, 1e19])
@pytest.mark.parametrize("fn", BOX_LOSSES[2:])
def test_inverted_boxes_far_apart_are_finite(fn, offset: float) -> None:
    pred = torch.tensor([[offset + 2, offset, offset, offset + 3], [3.0, 0.0, 1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0, 1.0, 1.0], [offset, -offset, offset + 1, 1.0 - offset]])
    loss, grad = _gradient(fn, pred, target, reduction="none")
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    assert (loss <= 3).all()  # DIoU-type penalties stay in [0, 1]: centres are inside


@pytest.mark.parametrize("scale", [1.0, 1e19, 3e19, 1e30, 1e38])
def test_huge_boxes_give_the_values_of_small_ones(scale: float) -> None:
    # diagonal neighbours: IoU 0, rho^2 = 8, c^2 = 32: DIoU and CIoU losses 1.25 at any scale
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]]) * (scale / 4)
    target = torch.tensor([[2.0, 2.0, 4.0, 4.0]]) * (scale / 4)
    for fn in BOX_LOSSES:
        small, _ = _gradient(fn, pred / scale, target / scale)
        loss, grad = _gradient(fn, pred, target)
        torch.testing.assert_close(loss, small, msg=fn.__name__)
        assert torch.isfinite(grad).all()
    torch.testing.assert_close(detloss.diou_loss(pred, target), torch.tensor(1.25))
    torch.testing.assert_close(detloss.ciou_loss(pred, target), torch.tensor(1.25))
    iou = detloss.box_iou(pred, target, "diou")
    torch.testing.assert_close(iou, torch.tensor([[-0.25]]))


@pytest.mark.parametrize("fn", BOX_LOSSES)
def test_tiny_pairs_with_relative_eps_have_finite_gradients(fn) -> None:
    # a point 1e-35 from the origin and a 1e-38 target: 1 / s and 1 / eps together exceed float32
    pred = torch.tensor([[0.0, 9.3e-36, 0.0, 9.3e-36]])
    target = torch.tensor([[6.1e-38, 3.8e-38, 7.3e-38, 5.7e-38]])
    _, grad = _gradient(fn, pred, target, relative_eps=True)
    _, exact = _gradient(fn, pred.double(), target.double(), relative_eps=True)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad.double(), exact, rtol=1e-3, atol=0)


def test_per_coordinate_weights_near_the_top_of_float32() -> None:
    pred, target = torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[1.0, 1.0, 11.0, 12.0]])
    for fn in BOX_LOSSES:
        weighted = fn(pred, target, weight=torch.full((1, 4), 1e38), reduction="sum")
        torch.testing.assert_close(weighted, fn(pred, target) * 1e38, msg=fn.__name__)


def test_sigmoid_focal_gradient_at_huge_logits() -> None:
    _, grad = _gradient(detloss.sigmoid_focal_loss, torch.tensor([[3e38]]), torch.tensor([[0.0]]))
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, t, **kw: detloss.sigmoid_focal_loss(x, t, gamma=7e9, **kw),
        lambda x, t, **kw: detloss.varifocal_loss(x, t, gamma=7e9, **kw),
        lambda x, t, **kw: detloss.quality_focal_loss(x, t, beta=7e9, **kw),
    ],
    ids=["sigmoid_focal", "varifocal", "quality_focal"],
)
def test_huge_exponents_keep_a_float16_gradient_finite(fn: Callable[..., Tensor]) -> None:
    # sigmoid(21) rounds to 1 in float32, where the factor is exp(-7e9 sigmoid(-21)) = 0.005:
    # taken as 1, the weighted gradient (418) would be 200 times too large, beyond float16's range
    x, t, weight = torch.tensor([[21.0]]), torch.zeros(1, 1), torch.tensor([1000.0])
    loss, grad = _gradient(fn, x.half(), t.half(), weight=weight.half(), reduction="sum")
    exact_loss, exact = _gradient(
        fn, x.double(), t.double(), weight=weight.double(), reduction="sum"
    )
    torch.testing.assert_close(loss.double(), exact_loss, rtol=1e-3, atol=0)
    torch.testing.assert_close(grad.double(), exact, rtol=1e-3, atol=0)


def test_softmax_focal_loss_of_a_huge_logit_spread() -> None:
    logits = torch.tensor([[3e38, -3e38]], requires_grad=True)
    loss = detloss.softmax_focal_loss(logits, torch.tensor([1]), reduction="none")
    # -alpha (1 - p_t)^gamma log p_t with p_t = 0 and log p_t = -6e38: 0.25 * 6e38
    torch.testing.assert_close(loss.detach(), torch.tensor([1.5e38]))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    torch.testing.assert_close(grad, torch.tensor([[0.25, -0.25]]))
    # a wide row: the loss is alpha (logsumexp(x) - x_y), whatever the other logits
    wide = torch.randn(1, 81, generator=torch.Generator().manual_seed(0)) * 3
    wide[0, 7], wide[0, 40] = 2e38, -2.5e38
    loss = detloss.softmax_focal_loss(wide, torch.tensor([40]), reduction="none")
    exact = 0.25 * (torch.logsumexp(wide.double(), 1) - wide[0, 40].double())
    torch.testing.assert_close(loss.double(), exact, rtol=2**-24, atol=0)
    # an ordinary row is unchanged: the loss of its float64 value
    x = torch.tensor([[0.5, -1.0, 2.0], [30.0, -40.0, 1.0]])
    y = torch.tensor([1, 0])
    log_pt = torch.log_softmax(x.double(), 1).gather(1, y.unsqueeze(1)).squeeze(1)
    expected = -0.25 * (-torch.expm1(log_pt)) ** 2 * log_pt
    got = detloss.softmax_focal_loss(x, y, reduction="none")
    torch.testing.assert_close(got.double(), expected)


def test_normalised_coordinates_and_the_scale_free_option() -> None:
    box = torch.tensor([[0.5, 0.5, 0.501, 0.501]])
    # mmdetection's absolute eps = 1e-6 against an area of 1e-6 (documented)
    torch.testing.assert_close(detloss.box_iou(box, box), torch.tensor([[0.5]]), atol=1e-3, rtol=0)
    torch.testing.assert_close(detloss.giou_loss(box, box), torch.tensor(0.5), atol=1e-3, rtol=0)
    pred, target = torch.tensor([[0.1, 0.2, 0.4, 0.5]]), torch.tensor([[0.2, 0.1, 0.5, 0.3]])
    for fn in BOX_LOSSES:
        assert fn(box, box, relative_eps=True) < 1e-5, fn.__name__
        for k in (1e-20, 1e-3, 1.0, 640.0, 1e20):
            torch.testing.assert_close(
                fn(pred * k, target * k, relative_eps=True), fn(pred, target, relative_eps=True)
            )


# --- extreme but allowed parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: detloss.smooth_l1_loss(x, x, sigma=1e-200), "sigma must be a finite number"),
        (lambda x: detloss.smooth_l1_loss(x, x, sigma=1e200), "sigma must be a finite number"),
        (lambda x: detloss.balanced_l1_loss(x, x, alpha=1e-3), "gamma / alpha must be in"),
        (lambda x: detloss.balanced_l1_loss(x, x, alpha=0.01), "gamma / alpha must be in"),
        (lambda x: detloss.BalancedL1Loss(alpha=0.01), "gamma / alpha must be in"),
        (lambda x: detloss.BalancedL1Loss(alpha=1e30), r"alpha / \(exp\(gamma / alpha\) - 1\)"),
        (
            lambda x: detloss.giou_loss(x, x, eps=1e-300),
            "eps must be a finite number >= 1.17549e-38",
        ),
    ],
)
def test_parameters_out_of_range_are_rejected_naming_the_range(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(torch.zeros(2, 4))


@pytest.mark.parametrize("fn", [*BOX_LOSSES, detloss.bounded_iou_loss])
def test_smallest_eps_gives_finite_gradients_on_zero_size_boxes(fn) -> None:
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0]])
    for target in (boxes, boxes.flip(0)):
        loss, grad = _gradient(fn, boxes, target, eps=1e-30, reduction="none")
        assert torch.isfinite(loss).all()
        assert torch.isfinite(grad).all()


def test_large_decoding_clamp_is_rejected_for_float32_and_works_in_float64() -> None:
    coder = detloss.DeltaXYWHCoder(clamp=100)
    proposals, deltas = torch.tensor([[0.0, 0.0, 1e-30, 1e-30]]), torch.full((1, 4), 100.0)
    with pytest.raises(ValueError, match=r"clamp=100 is above log of torch.float32's largest"):
        coder.decode(proposals, deltas)
    assert torch.isfinite(coder.decode(proposals.double(), deltas.double())).all()


@pytest.mark.parametrize("weight", [1e17, 1e24, 1e30])
@pytest.mark.parametrize("fn", BOX_LOSSES)
def test_huge_weights_on_degenerate_boxes_give_finite_gradients(fn, weight: float) -> None:
    pred = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 4.0], [5.0, 5.0, 3.0, 3.0]])
    target = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    for requires in (False, True):  # the hand-written gradient, then autograd's
        p, t = pred.clone().requires_grad_(True), target.clone().requires_grad_(requires)
        loss = fn(p, t, weight=torch.full((3,), weight), reduction="sum")
        (grad,) = torch.autograd.grad(loss, p)
        assert torch.isfinite(grad).all(), (fn.__name__, requires, grad)


# --- bad inputs that passed silently or failed obscurely --------------------------------------


def test_max_shape_must_be_numbers() -> None:
    coder = detloss.DeltaXYWHCoder()
    with pytest.raises(TypeError, match=r"max_shape must be \(height, width, ...\) numbers"):
        coder.decode(torch.zeros(1, 4), torch.zeros(1, 4), max_shape="600x800")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fn",
    [detloss.smooth_l1_loss, detloss.giou_loss, detloss.ciou_loss, detloss.bounded_iou_loss],
)
def test_weight_given_as_a_list_names_the_type(fn) -> None:
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    for weight in ([1.0], [[1.0, 1.0, 1.0, 1.0]]):
        with pytest.raises(TypeError, match="weight must be a torch.Tensor, got list"):
            fn(boxes, boxes, weight=weight)


@pytest.mark.parametrize(
    "labels", [torch.tensor([2, 5, 1, 0, -1, -7]), torch.tensor([1, 1, 1, 0, -1, -1])]
)
def test_rpn_labels_above_zero_are_positive_in_both_terms(labels: Tensor) -> None:
    logits = torch.linspace(-2, 2, 6)
    pred = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    losses = detloss.rpn_loss(logits, labels, pred, torch.zeros(6, 4))
    reference = detloss.rpn_loss(logits, labels.clamp(-1, 1), pred, torch.zeros(6, 4))
    torch.testing.assert_close(losses, reference)
    with pytest.raises(ValueError, match=r"labels must be -1 \(ignored\), 0 .* label 2 at index"):
        detloss.rpn_loss(logits, torch.tensor([2, 5, 1, 0, -1, -7]), pred, pred, check_labels=True)


def test_fast_rcnn_labels_out_of_range_are_reported_when_checked() -> None:
    logits, pred, target = torch.zeros(3, 4), torch.zeros(3, 12), torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\) or -100 .* label 7"):
        detloss.fast_rcnn_loss(logits, torch.tensor([0, 7, 3]), pred, target, check_labels=True)
    losses = detloss.fast_rcnn_loss(logits, torch.tensor([0, -100, 3]), pred, target)
    assert all(torch.isfinite(v) for v in losses.values())


def test_binary_cross_entropy_class_weight_on_3d_logits() -> None:
    # PyTorch broadcasts weight along the last dimension: its length must be that dimension's
    logits = torch.linspace(-3, 3, 30).reshape(2, 3, 5)
    targets = (torch.arange(30).reshape(2, 3, 5) % 3 == 0).float()
    with pytest.raises(
        ValueError, match=r"class_weight must have shape \(5,\).*last dimension.*got \(3,\)"
    ):
        detloss.binary_cross_entropy(logits, targets, class_weight=[1.0, 2.0, 3.0])
    w = torch.tensor([1.0, 2.0, 3.0, 0.5, 0.0])
    loss = detloss.binary_cross_entropy(logits, targets, class_weight=w, reduction="none")
    expected = F.binary_cross_entropy_with_logits(logits, targets, weight=w, reduction="none")
    torch.testing.assert_close(loss, expected)


def test_varifocal_propagates_a_nan_target() -> None:
    loss = detloss.varifocal_loss(torch.zeros(1, 2), torch.tensor([[float("nan"), 0.0]]))
    assert torch.isnan(loss)


def test_cross_entropy_takes_int32_labels_as_the_focal_losses_do() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0], [0.0, 0.0, 0.0]])
    expected = detloss.cross_entropy(logits, torch.tensor([0, 2, 1]), reduction="none")
    for dtype in (torch.int32, torch.int16, torch.uint8):
        labels = torch.tensor([0, 2, 1], dtype=dtype)
        torch.testing.assert_close(
            detloss.cross_entropy(logits, labels, reduction="none"), expected
        )
    smoothed = detloss.cross_entropy(
        logits, torch.tensor([0, 2, 1], dtype=torch.int32), label_smoothing=0.1
    )
    torch.testing.assert_close(
        smoothed, detloss.cross_entropy(logits, torch.tensor([0, 2, 1]), label_smoothing=0.1)
    )
    with pytest.raises(TypeError, match="integer tensor of class indices, got dtype torch.float32"):
        detloss.cross_entropy(logits, torch.zeros(3))


def test_out_of_range_labels_fail_with_a_message_of_detloss() -> None:
    logits = torch.zeros(2, 3)
    with pytest.raises(
        ValueError, match=r"in \[0, 3\) or -100 \(ignored\); label 3 at index \(1,\)"
    ):
        detloss.cross_entropy(logits, torch.tensor([0, 3]), check_labels=True)
    with pytest.raises(ValueError, match=r"label -1 at index \(0,\)"):
        detloss.cross_entropy(logits, torch.tensor([-1, 7]), check_labels=True)
    with pytest.raises(ValueError, match=r"in \[0, 3\); label 3"):
        detloss.softmax_focal_loss(logits, torch.tensor([0, 3]), check_labels=True)
    # the sigmoid losses take C as the background class and ignore negative labels
    background = r"in \[0, 3\] \(3 = background\) or negative \(ignored\); label 4"
    for fn in (detloss.sigmoid_focal_loss, detloss.sigmoid_focal_loss_star):
        with pytest.raises(ValueError, match=background):
            fn(logits, torch.tensor([3, 4]), check_labels=True)
        fn(logits, torch.tensor([3, -1]), check_labels=True)
    with pytest.raises(ValueError, match=r"label 4 at index \(1,\)"):
        detloss.quality_focal_loss(
            logits, torch.tensor([3, 4]), torch.tensor([0.5, 0.5]), check_labels=True
        )
    with pytest.raises(ValueError, match=background):
        detloss.binary_cross_entropy(logits, torch.tensor([-1, 4]), check_labels=True)
    with pytest.raises(ValueError, match=r"negative \(ignored\) or 255 \(ignored\); label 4"):
        detloss.binary_cross_entropy(
            logits, torch.tensor([255, 4]), ignore_index=255, check_labels=True
        )
    with pytest.raises(ValueError, match=r"1, 0, negative or -100 \(ignored\); label 2"):
        detloss.binary_cross_entropy(torch.zeros(3), torch.tensor([1, -1, 2]), check_labels=True)
    # valid labels: the same loss as without the check
    y = torch.tensor([2, -100])
    torch.testing.assert_close(
        detloss.cross_entropy(logits, y, check_labels=True), detloss.cross_entropy(logits, y)
    )
    torch.testing.assert_close(
        detloss.binary_cross_entropy(logits, torch.tensor([3, -100]), check_labels=True),
        detloss.binary_cross_entropy(logits, torch.tensor([3, -100])),
    )


def test_distribution_focal_with_a_nan_target() -> None:
    loss = detloss.distribution_focal_loss(torch.zeros(1, 4), torch.tensor([float("nan")]))
    assert torch.isnan(loss)
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -3.0, 0.5]])
    rows = detloss.distribution_focal_loss(
        logits, torch.tensor([float("nan"), 1.25]), reduction="none"
    )
    assert torch.isnan(rows[0])
    torch.testing.assert_close(
        rows[1:],
        detloss.distribution_focal_loss(logits[1:], torch.tensor([1.25]), reduction="none"),
    )
    compiled = torch.compile(detloss.distribution_focal_loss, fullgraph=True)
    assert torch.isnan(compiled(torch.zeros(1, 4), torch.tensor([float("nan")])))


def test_focal_module_checks_alpha_when_built() -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        detloss.FocalLoss(alpha=2)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got -1"):
        detloss.FocalLoss(use_sigmoid=False, alpha=-1)


def test_the_backend_variable_is_gone() -> None:
    env = {**os.environ, "DETLOSS_BACKEND": "fast"}
    done = subprocess.run(
        [sys.executable, "-c", "import detloss; print(hasattr(detloss, 'set_backend'))"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# --- classification exponents -----------------------------------------------------------------

_EXPONENT_RANGE = r"must be 0 or a finite number in \[1e-30, 1e\+30\], got "


def _logits_and_targets() -> tuple[Tensor, Tensor]:
    logits = torch.linspace(-3, 3, 12).reshape(3, 4)
    return logits, (torch.arange(12).reshape(3, 4) % 5 == 0).float() * 0.75


@pytest.mark.parametrize("value", [1e39, 1e300, 5e-324, 1e-31])
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x, t, v: detloss.sigmoid_focal_loss(x, t, gamma=v), "gamma"),
        (lambda x, t, v: detloss.focal_loss_with_prob(x.sigmoid(), t, gamma=v), "gamma"),
        (lambda x, t, v: detloss.softmax_focal_loss(x, torch.tensor([0, 3, 1]), gamma=v), "gamma"),
        (lambda x, t, v: detloss.varifocal_loss(x, t, gamma=v), "gamma"),
        (lambda x, t, v: detloss.quality_focal_loss(x, t, beta=v), "beta"),
        (lambda x, t, v: detloss.quality_focal_loss_with_prob(x.sigmoid(), t, beta=v), "beta"),
        (lambda x, t, v: detloss.gaussian_focal_loss(x.sigmoid(), t, alpha=v), "alpha"),
        (lambda x, t, v: detloss.gaussian_focal_loss(x.sigmoid(), t, gamma=v), "gamma"),
        (lambda x, t, v: detloss.FocalLoss(gamma=v), "gamma"),
        (lambda x, t, v: detloss.FocalLoss(use_sigmoid=False, gamma=v), "gamma"),
        (lambda x, t, v: detloss.VarifocalLoss(gamma=v), "gamma"),
        (lambda x, t, v: detloss.QualityFocalLoss(beta=v), "beta"),
        (lambda x, t, v: detloss.GaussianFocalLoss(alpha=v), "alpha"),
        (lambda x, t, v: detloss.GaussianFocalLoss(gamma=v), "gamma"),
    ],
)
def test_exponents_outside_float32_are_rejected_naming_the_range(
    call, name: str, value: float
) -> None:
    # 1e39 reached PyTorch's RuntimeError, 1e300 gave NaN; below 1e-30 an exponent rounds to 0 in
    # float32 (or to a subnormal), where 0**0 = 1 turned a peak's zero term into 27.6
    logits, targets = _logits_and_targets()
    with pytest.raises(ValueError, match=f"{name} {_EXPONENT_RANGE}{re.escape(repr(value))}"):
        call(logits, targets, value)


def test_multipliers_and_divisors_outside_float32_are_rejected() -> None:
    logits, targets = _logits_and_targets()
    for build in (
        lambda: detloss.varifocal_loss(logits, targets, alpha=1e39),
        lambda: detloss.VarifocalLoss(alpha=1e300),
    ):
        with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0 and <= 1e\+30"):
            build()
    for gamma in (1e39, 1e-31):  # FL*'s gamma divides
        with pytest.raises(ValueError, match=r"gamma must be a finite number >= 1e-30 and <= 1e"):
            detloss.sigmoid_focal_loss_star(logits, targets, gamma=gamma)
    # the ends of the ranges work
    for value in (1e-30, 1e30):
        assert torch.isfinite(detloss.sigmoid_focal_loss(logits, targets, gamma=value))
        assert torch.isfinite(detloss.varifocal_loss(logits, targets, gamma=value))
        assert torch.isfinite(detloss.quality_focal_loss(logits, targets, beta=value))
    assert torch.isfinite(detloss.sigmoid_focal_loss_star(logits, targets, gamma=1e-30))


def test_gaussian_focal_peaks_with_the_smallest_exponent() -> None:
    # pred = target = 1 (a peak predicted exactly): (1 - target)**gamma is 0, so the negative
    # term, -log(1e-12) = 27.6, is not added; 16 elements take PyTorch's vectorised pow
    # (nor its gradient, 1e12, which divided by avg_factor = 0 + eps was float16's inf)
    pred = torch.ones(16, dtype=torch.float16)
    for gamma in (1e-30, 1e-7, 4.0):
        loss = detloss.gaussian_focal_loss(pred, pred, alpha=0.0, gamma=gamma, reduction="none")
        exact = detloss.gaussian_focal_loss(
            pred.double(), pred.double(), alpha=0.0, gamma=gamma, reduction="none"
        )
        torch.testing.assert_close(loss.double(), exact, atol=1e-11, rtol=0)
        p = pred.clone().requires_grad_(True)
        total = detloss.gaussian_focal_loss(p, pred, alpha=0.0, gamma=gamma, reduction="sum")
        (grad,) = torch.autograd.grad(total, p)
        torch.testing.assert_close(grad, torch.full_like(grad, -1.0))


def _softmax_focal64(logits: Tensor, labels: Tensor, gamma: float) -> Tensor:
    """The softmax focal loss in float64 from ``(1 - p_t)`` as PyTorch's ``pow`` takes it."""
    log_pt = torch.log_softmax(logits.double(), 1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return -0.25 * (-torch.expm1(log_pt)) ** gamma * log_pt


@pytest.mark.parametrize("gamma", [1e5, 1e7, 1e9, 1e30])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_softmax_focal_with_a_huge_gamma(gamma: float, dtype: torch.dtype) -> None:
    # 1 - p_t rounded to 1 in float32 (p_t < 6e-8) made (1 - p_t)**gamma 1 where it is e^-100
    # and more, and the float16 gradient inf
    logits = torch.tensor([[0.0, 17.0, -3.0], [0.0, 12.0, 1.0], [5.0, 0.0, 0.0], [0, 25.0, 0]])
    labels = torch.tensor([0, 0, 0, 0])
    x = logits.to(dtype).requires_grad_(True)
    loss = detloss.softmax_focal_loss(x, labels, gamma=gamma, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x64 = logits.double().requires_grad_(True)
    exact = _softmax_focal64(x64, labels, gamma)
    (exact_grad,) = torch.autograd.grad(exact.sum(), x64)
    # float64's own 1 - p_t has 1e-16 relative error, raised to gamma: a reference up to 1e9
    torch.testing.assert_close(loss.double(), exact, rtol=1e-5, atol=1e-30)
    # a float16 gradient: to float16's rounding, and 0 below its smallest number
    rtol, atol = (1e-3, 6e-8) if dtype == torch.float16 else (1e-5, 1e-30)
    torch.testing.assert_close(grad.double(), exact_grad, rtol=rtol, atol=atol)


# --- label smoothing --------------------------------------------------------------------------


@pytest.mark.parametrize("class_weight", [None, [1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0]])
@pytest.mark.parametrize("smoothing", [0.1, 1.0])
def test_label_smoothing_at_logits_near_the_float32_range(class_weight, smoothing: float) -> None:
    # log-probabilities of -6e37 summed over 10 classes overflowed (inf) where the loss, their
    # weighted mean times eps, is 5e36 .. 1.6e38
    logits = torch.tensor([[3e37] + [-3e37] * 9, [0.5, -1.0, 2.0] + [0.0] * 7])
    labels = torch.tensor([0, 2])
    x = logits.clone().requires_grad_(True)
    kwargs: dict[str, Any] = {"label_smoothing": smoothing, "reduction": "none"}
    w = None if class_weight is None else torch.tensor(class_weight)
    loss = detloss.cross_entropy(x, labels, class_weight=w, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x64 = logits.double().requires_grad_(True)
    w64 = None if w is None else w.double()
    exact = F.cross_entropy(x64, labels, weight=w64, **kwargs)
    (exact_grad,) = torch.autograd.grad(exact.sum(), x64)
    torch.testing.assert_close(loss.double(), exact, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad.double(), exact_grad, rtol=1e-5, atol=1e-7)


# --- the box coder at the ends of float32 -----------------------------------------------------

_EXTREME_CODER: dict[str, Any] = {"means": (1e30, -1e30, 0.0, 0.0), "stds": (1e-3, 1e3, 1e-3, 1e3)}


@pytest.mark.parametrize("box_format", ["xyxy", "xywh", "cxcywh"])
def test_decode_with_opposite_overflowing_terms_clips_to_a_finite_box(box_format: str) -> None:
    # size * mean (1.5e67) and delta * std * size overflowed with opposite signs (inf - inf), and
    # so did a corner's centre and half size: NaN where the box clipped to the image is finite
    coder = detloss.DeltaXYWHCoder(**_EXTREME_CODER, box_format=box_format)
    proposals = detloss.convert_boxes(torch.tensor([[0.0, 0.0, 3e37, 3e37]]), "xyxy", box_format)
    deltas = torch.tensor([[-1e33, 2.0, 0.5, 0.5], [-1e33, 1e28, 0.0, 0.0]])
    p, d = proposals.clone().requires_grad_(True), deltas.clone().requires_grad_(True)
    boxes = coder.decode(p, d, max_shape=(1e-3, 1e-3))
    grads = torch.autograd.grad(boxes.sum(), (p, d))
    assert torch.isfinite(boxes).all()
    assert all(torch.isfinite(g).all() for g in grads)
    # y moves by -3e67 (far above the image: clipped to 0), then by 5e68 (below: to its height)
    corners = detloss.convert_boxes(boxes, box_format, "xyxy")
    torch.testing.assert_close(corners[:, 1::2], torch.tensor([[0.0, 0.0], [1e-3, 1e-3]]))
    unclipped = coder.decode(proposals, deltas)
    assert not torch.isnan(unclipped).any()


def test_decode_of_large_proposals_keeps_the_ordinary_values() -> None:
    # proposals above the scaled threshold (half * 1e30 > max / 8: all but the last y) give the
    # float64 boxes; shifts of 2e38 and 2e32
    coder = detloss.DeltaXYWHCoder(**_EXTREME_CODER)
    proposals = torch.tensor([[0.0, 0.0, 1e9, 1e9], [-2e8, 0.0, 2e8, 1e3]])
    deltas = torch.tensor([[-8e32, 1.2e27, 0.1, -0.2], [-8e32, 1.2e27, 0.0, 0.0]])
    boxes = coder.decode(proposals, deltas)
    exact = coder.decode(proposals.double(), deltas.double())
    torch.testing.assert_close(boxes.double(), exact, rtol=1e-5, atol=0)


def test_encode_of_a_flat_proposal_with_a_large_std() -> None:
    # (offset / half - mean) / std overflowed in offset / half (1e39) where the delta is 1e36
    coder = detloss.DeltaXYWHCoder(**_EXTREME_CODER)
    proposals = torch.tensor([[0.0, 0.0, 1e-37, 1e-37]])
    gt = torch.tensor([[0.0, 9e32, 1.0, 1e33]])
    deltas = coder.encode(proposals, gt)
    exact = coder.encode(proposals.double(), gt.double())
    assert torch.isfinite(deltas).all()
    torch.testing.assert_close(deltas.double(), exact, rtol=1e-5, atol=0)


def test_coder_means_are_range_checked() -> None:
    with pytest.raises(ValueError, match=r"means must be a finite number >= -1e\+30 and <= 1e\+30"):
        detloss.DeltaXYWHCoder(means=(1e31, 0.0, 0.0, 0.0))


def test_binary_cross_entropy_rejects_a_wrong_weight_and_complex_targets_up_front() -> None:
    # a row weight of the wrong size reached PyTorch's broadcasting RuntimeError (it met the
    # mask of ignored labels first); complex targets a comparison PyTorch lacks
    logits = torch.zeros(3, 4)
    for targets in (torch.tensor([0, 4, -1]), torch.zeros(3, 4, dtype=torch.long)):
        with pytest.raises(
            ValueError, match=r"weight of shape \(5,\) cannot broadcast .* \(3, 4\)"
        ):
            detloss.binary_cross_entropy(logits, targets, weight=torch.ones(5))
        with pytest.raises(TypeError, match="targets must be a real tensor .*complex64"):
            detloss.binary_cross_entropy(logits, targets.to(torch.complex64))


# --- IoU modules and box_iou: the functional losses' checks and options -----------------------

IOU_MODULES = ["IoULoss", "GIoULoss", "DIoULoss", "CIoULoss", "EIoULoss", "EfficientIoULoss"]


@pytest.mark.parametrize("name", [*IOU_MODULES, "SIoULoss"])
def test_iou_modules_check_eps_when_built_and_take_relative_eps(name: str) -> None:
    cls = getattr(detloss, name)
    # eps was only checked > 0 when built: 1e-300 and 1e31 failed at the first call
    for eps in (1e-300, 1e31, 0.0):
        with pytest.raises(ValueError, match=r"eps must be a finite number >= 1.17549e-38"):
            cls(eps=eps)
    with pytest.raises(TypeError, match="relative_eps must be a bool, got int"):
        cls(relative_eps=1)
    module = cls(relative_eps=True)
    pred, target = torch.tensor([[0.1, 0.2, 0.4, 0.5]]), torch.tensor([[0.2, 0.1, 0.5, 0.3]])
    for k in (1e-20, 1.0, 1e20):
        torch.testing.assert_close(module(pred * k, target * k), module(pred, target))
    assert "relative_eps=True" in repr(module)


def test_siou_module_bounds_theta_when_built() -> None:
    with pytest.raises(ValueError, match=r"theta must be a finite number >= 1 and <= 1e\+30"):
        detloss.SIoULoss(theta=1e31)
    assert detloss.SIoULoss(theta=1e30).theta == 1e30


@pytest.mark.parametrize("kind", ["iou", "iof", "giou", "diou", "ciou"])
def test_box_iou_takes_relative_eps(kind: str) -> None:
    boxes1 = torch.tensor([[0.1, 0.2, 0.4, 0.5], [0.5, 0.5, 0.501, 0.501]])
    boxes2 = torch.tensor([[0.2, 0.1, 0.5, 0.3], [0.5, 0.5, 0.501, 0.501]])
    small = detloss.box_iou(boxes1, boxes2, kind, aligned=True, relative_eps=True)
    for k in (1e-20, 640.0, 1e20):
        torch.testing.assert_close(
            detloss.box_iou(boxes1 * k, boxes2 * k, kind, aligned=True, relative_eps=True), small
        )
    # a small box has IoU 1 with itself (the absolute eps = 1e-6 gave 0.5)
    if kind in ("iou", "iof", "giou"):
        torch.testing.assert_close(small[1], torch.tensor(1.0), atol=1e-5, rtol=0)
    losses: dict[str, Callable[..., Tensor]] = {  # the IoU family's losses are 1 - box_iou
        "iou": functools.partial(detloss.iou_loss, mode="linear"),
        "giou": detloss.giou_loss,
        "diou": detloss.diou_loss,
    }
    if kind in losses:
        got = losses[kind](boxes1, boxes2, relative_eps=True, reduction="none")
        torch.testing.assert_close(got, 1 - small)


def test_faster_rcnn_lambda_is_range_checked() -> None:
    scores, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    pred, target = torch.randn(4, 8), torch.randn(4, 4)
    for bad in (1e31, -1.0):
        with pytest.raises(ValueError, match=r"lambda_ must be a finite number >= 0 and <= 1e\+30"):
            detloss.fast_rcnn_loss(scores, labels, pred, target, lambda_=bad)
        with pytest.raises(ValueError, match=r"lambda_ must be a finite number >= 0 and <= 1e\+30"):
            detloss.rpn_loss(scores[:, 0], labels.clamp(max=1), target, target, lambda_=bad)
