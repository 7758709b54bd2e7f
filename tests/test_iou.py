"""The IoU-family losses (detloss.iou) and their modules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from fvcore.nn import giou_loss as fvcore_giou_loss
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

import detloss
from detloss.boxes import BOX_FORMATS
from tests.boxgen import HAND, TINY, in_format, random_boxes

LOSSES: dict[str, Callable[..., Tensor]] = {
    "iou": detloss.iou_loss,
    "giou": detloss.giou_loss,
    "diou": detloss.diou_loss,
    "ciou": detloss.ciou_loss,
    "efficient": detloss.efficient_iou_loss,
    "extended": detloss.extended_iou_loss,
    "siou": detloss.siou_loss,
}
# Each module built with eps=1e-5 is its functional loss called with these arguments
# (mmdetection's meaning of the registered name).
MODULES: dict[str, tuple[Callable[..., Tensor], dict[str, Any]]] = {
    "IoULoss": (detloss.iou_loss, {"eps": 1e-6, "min_iou": 1e-5}),
    "GIoULoss": (detloss.giou_loss, {"eps": 1e-5}),
    "DIoULoss": (detloss.diou_loss, {"eps": 1e-5}),
    "CIoULoss": (detloss.ciou_loss, {"eps": 1e-5, "alpha_gate": 0.5}),
    "EIoULoss": (detloss.extended_iou_loss, {"eps": 1e-5, "smooth_point": 0.1}),
    "EfficientIoULoss": (detloss.efficient_iou_loss, {"eps": 1e-5}),
    "SIoULoss": (detloss.siou_loss, {"eps": 1e-5, "neg_gamma": False, "clamp": True}),
}


def _pair(box1: tuple[float, ...], box2: tuple[float, ...], fmt: str) -> tuple[Tensor, Tensor]:
    return (
        torch.tensor([in_format(box1, fmt)], dtype=torch.float64),
        torch.tensor([in_format(box2, fmt)], dtype=torch.float64),
    )


def _siou_expected(
    iou: float, dx: float, dy: float, cw: float, ch: float, omega: tuple[float, float]
) -> float:
    # The paper's cost, with its angle cost 1 - 2 sin^2(arcsin(|dy|/sigma) - pi/4).
    angle = 1 - 2 * math.sin(math.asin(abs(dy) / math.hypot(dx, dy)) - math.pi / 4) ** 2
    gamma = 2 - angle
    distance = (1 - math.exp(-gamma * (dx / cw) ** 2)) + (1 - math.exp(-gamma * (dy / ch) ** 2))
    shape = sum((1 - math.exp(-w)) ** 4 for w in omega)
    return 1 - iou + (distance + shape) / 2


# IoU values are those of tests.test_boxes.HAND.
# overlapping (0,0,2,2)/(1,1,3,3): equal sizes, enclosing 3 x 3, offset (1, 1), rho^2/c^2 = 2/18.
# disjoint (0,0,1,1)/(2,0,3,1): equal sizes, enclosing 3 x 1, offset (2, 0), rho^2/c^2 = 4/10.
# crossed (0,0,2,1)/(0,0,1,2): sizes (2,1)/(1,2), enclosing 2 x 2, offset (-0.5, 0.5),
#   rho^2/c^2 = 0.5/8, EIoU size terms 1/4 + 1/4, SIoU omega_w = omega_h = |2 - 1| / 2.
# Extended IoU (smooth_point 0.1): 1 - EIoU >= 0.1 in all three, so the loss is 1 - EIoU - 0.05.
#   overlapping: I_ext = I = 1, U = 7.
#   disjoint: measured from (0, 0): a = (2, 0), b = (1, 1); a gap along x only, so
#     I_ext = (b_x - a_x)(a_y + b_y) = -1 and U = 1 + 1 + 1 = 3: EIoU = -1/3.
#   crossed: I_ext = I = 1, U = 3.
LOSS_HAND = {
    "overlapping": {
        "efficient": 1 - 1 / 7 + 2 / 18,
        "extended": 1 - 1 / 7 - 0.05,
        "siou": _siou_expected(1 / 7, 1, 1, 3, 3, (0.0, 0.0)),
    },
    "disjoint": {
        "efficient": 1 + 4 / 10,
        "extended": 1 + 1 / 3 - 0.05,
        "siou": _siou_expected(0.0, 2, 0, 3, 1, (0.0, 0.0)),
    },
    "crossed": {
        "efficient": 1 - 1 / 3 + 0.5 / 8 + 1 / 4 + 1 / 4,
        "extended": 1 - 1 / 3 - 0.05,
        "siou": _siou_expected(1 / 3, -0.5, 0.5, 2, 2, (0.5, 0.5)),
    },
}


@pytest.mark.parametrize("box_format", BOX_FORMATS)
@pytest.mark.parametrize("name", sorted(HAND))
def test_iou_giou_diou_ciou_losses_hand_values(name: str, box_format: str) -> None:
    box1, box2, value = HAND[name]
    pred, target = _pair(box1, box2, box_format)
    kw: dict[str, Any] = {"eps": TINY, "box_format": box_format, "reduction": "none"}
    iou = value["iou"]
    clamped = max(iou, TINY)
    expected = {
        ("iou", "log"): -math.log(clamped),
        ("iou", "linear"): 1 - clamped,
        ("iou", "square"): 1 - clamped**2,
    }
    for (_, mode), want in expected.items():
        got = detloss.iou_loss(pred, target, mode, **kw)
        torch.testing.assert_close(got, torch.tensor([want], dtype=torch.float64))
    for kind in ("giou", "diou", "ciou"):
        got = LOSSES[kind](pred, target, **kw)
        torch.testing.assert_close(got, torch.tensor([1 - value[kind]], dtype=torch.float64))


@pytest.mark.parametrize("box_format", BOX_FORMATS)
@pytest.mark.parametrize("name", sorted(LOSS_HAND))
def test_efficient_extended_siou_hand_values(name: str, box_format: str) -> None:
    box1, box2, _ = HAND[name]
    pred, target = _pair(box1, box2, box_format)
    for kind, want in LOSS_HAND[name].items():
        got = LOSSES[kind](pred, target, eps=TINY, box_format=box_format, reduction="none")
        torch.testing.assert_close(got, torch.tensor([want], dtype=torch.float64))


def _reference_siou(pred: Tensor, target: Tensor, eps: float) -> Tensor:
    """SIoU as its public implementations write it (arcsin form, YOLOv6 / mmdetection)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    w1, h1, w2, h2 = px2 - px1, py2 - py1, tx2 - tx1, ty2 - ty1
    inter = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(0) * (
        torch.min(py2, ty2) - torch.max(py1, ty1)
    ).clamp(0)
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = torch.max(px2, tx2) - torch.min(px1, tx1)
    ch = torch.max(py2, ty2) - torch.min(py1, ty1)
    s_cw = (tx1 + tx2 - px1 - px2) * 0.5
    s_ch = (ty1 + ty2 - py1 - py2) * 0.5
    sigma = torch.sqrt(s_cw**2 + s_ch**2)
    sin_1, sin_2 = s_cw.abs() / sigma, s_ch.abs() / sigma
    sin_alpha = torch.where(sin_1 > math.sqrt(2) / 2, sin_2, sin_1)
    angle = torch.cos(torch.arcsin(sin_alpha) * 2 - math.pi / 2)
    gamma = angle - 2
    distance = 2 - torch.exp(gamma * (s_cw / cw) ** 2) - torch.exp(gamma * (s_ch / ch) ** 2)
    omega_w = (w1 - w2).abs() / torch.max(w1, w2)
    omega_h = (h1 - h2).abs() / torch.max(h1, h2)
    shape = (1 - torch.exp(-omega_w)) ** 4 + (1 - torch.exp(-omega_h)) ** 4
    return 1 - iou + 0.5 * (distance + shape)


def test_siou_matches_the_public_arcsin_implementation() -> None:
    pred, target = random_boxes(500, torch.Generator().manual_seed(4))
    torch.testing.assert_close(
        detloss.siou_loss(pred, target, TINY, reduction="none"),
        _reference_siou(pred, target, TINY),
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_giou_matches_fvcore(reduction: str) -> None:
    pred, target = random_boxes(300, torch.Generator().manual_seed(5))
    pred, target = pred.float(), target.float()
    torch.testing.assert_close(
        detloss.giou_loss(pred, target, 1e-7, reduction=reduction),
        fvcore_giou_loss(pred, target, reduction=reduction, eps=1e-7),
    )


def _paper_v(pred: Tensor, target: Tensor) -> Tensor:
    w, h = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1]
    w_gt, h_gt = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    return 4 / math.pi**2 * (torch.atan(w_gt / h_gt) - torch.atan(w / h)) ** 2


def test_ciou_is_diou_plus_alpha_v_with_alpha_a_constant_for_the_gradient() -> None:
    pred, target = random_boxes(50, torch.Generator().manual_seed(6))
    pred.requires_grad_(True)
    loss = detloss.ciou_loss(pred, target, TINY, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), pred)

    iou = detloss.box_iou(pred, target, aligned=True, eps=TINY).detach()
    v = _paper_v(pred, target)
    alpha = (v / ((1 - iou) + v)).detach()
    reference = detloss.diou_loss(pred, target, TINY, reduction="none") + alpha * v
    (ref_grad,) = torch.autograd.grad(reference.sum(), pred)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, ref_grad)
    # ... and the alpha * v term does contribute (v > 0 for these boxes).
    (diou_grad,) = torch.autograd.grad(detloss.diou_loss(pred, target, TINY), pred)
    assert not torch.allclose(grad, diou_grad * 50)


def test_ciou_alpha_gate_reproduces_mmdetection() -> None:
    pred, target = random_boxes(400, torch.Generator().manual_seed(7))
    iou = detloss.box_iou(pred, target, aligned=True)
    assert (iou > 0.5).any()
    assert (iou <= 0.5).any()
    gated = detloss.ciou_loss(pred, target, alpha_gate=0.5, reduction="none")
    paper = detloss.ciou_loss(pred, target, reduction="none")
    diou = detloss.diou_loss(pred, target, reduction="none")
    torch.testing.assert_close(gated[iou > 0.5], paper[iou > 0.5])
    torch.testing.assert_close(gated[iou <= 0.5], diou[iou <= 0.5])
    assert (paper[iou <= 0.5] > diou[iou <= 0.5]).any()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_identical_boxes_give_zero_loss_and_finite_gradients(name: str) -> None:
    boxes = torch.tensor([[10.0, 20.0, 50.0, 35.0], [0.0, 0.0, 1.0, 3.0]], dtype=torch.float64)
    pred = boxes.clone().requires_grad_(True)
    loss = LOSSES[name](pred, boxes, reduction="none")
    # The only residue is eps / U (U >= 3): below 1e-6.
    assert (loss.abs() < 1e-6).all()
    loss.sum().backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()


def test_iou_loss_has_no_gradient_for_disjoint_boxes_unlike_the_others() -> None:
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[3.0, 0.0, 4.0, 1.0]])
    for name, fn in LOSSES.items():
        (grad,) = torch.autograd.grad(fn(pred, target), pred)
        assert (grad == 0).all() == (name == "iou"), name


def test_zero_width_box_inside_target_learns_to_grow() -> None:
    # At exactly zero width the size clamp passes the gradient: I = w * 1, U = 16 - I + w * 1,
    # so dIoU/dx2 = 1/16 > 0 and GIoU (C = U = 16) has the same gradient.
    pred = torch.tensor([[1.0, 1.0, 1.0, 2.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    (grad,) = torch.autograd.grad(detloss.box_iou(pred, target, aligned=True).sum(), pred)
    torch.testing.assert_close(grad, torch.tensor([[-1 / 16, 0.0, 1 / 16, 0.0]]))
    (grad,) = torch.autograd.grad(detloss.giou_loss(pred, target), pred)
    torch.testing.assert_close(grad, torch.tensor([[1 / 16, 0.0, -1 / 16, 0.0]]))
    # iou_loss clamps IoU at eps (mmdetection), which stops this gradient at IoU = 0.


coordinate = st.one_of(st.sampled_from([0.0, 1e-3, 1.0, 1e4]), st.floats(1e-3, 1e4))
degenerate = st.sampled_from(["random", "point", "zero_width", "zero_height", "inverted", "same"])


@st.composite
def box_pairs(draw: st.DrawFn) -> tuple[Tensor, Tensor]:
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        boxes = []
        for _ in range(2):
            x1, y1, x2, y2 = (draw(coordinate) for _ in range(4))
            kind = draw(degenerate)
            if kind == "point":
                x2, y2 = x1, y1
            elif kind == "zero_width":
                x2 = x1
            elif kind == "zero_height":
                y2 = y1
            elif kind != "inverted":  # "inverted" keeps any order, so x2 < x1 is possible
                x1, x2 = sorted((x1, x2))
                y1, y2 = sorted((y1, y2))
            boxes.append([x1, y1, x2, y2])
        if draw(degenerate) == "same":
            boxes[1] = boxes[0]
        pairs.append(boxes)
    t = torch.tensor(pairs, dtype=torch.float32)
    return t[:, 0], t[:, 1]


@given(box_pairs())
def test_every_loss_is_finite_with_finite_gradients_on_degenerate_boxes(
    pair: tuple[Tensor, Tensor],
) -> None:
    pred, target = pair
    for name, fn in LOSSES.items():
        for reduction in ("none", "mean", "sum"):
            p = pred.clone().requires_grad_(True)
            t = target.clone().requires_grad_(True)
            loss = fn(p, t, reduction=reduction)
            assert torch.isfinite(loss).all(), (name, reduction, loss)
            loss.sum().backward()
            assert p.grad is not None
            assert t.grad is not None
            assert torch.isfinite(p.grad).all(), (name, reduction, p.grad)
            assert torch.isfinite(t.grad).all(), (name, reduction, t.grad)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_half_precision_boxes_in_the_thousands_mixed_with_float32(
    name: str, half: torch.dtype
) -> None:
    pred, target = random_boxes(64, torch.Generator().manual_seed(8), scale=3000.0)
    pred_half = pred.to(half)
    fn = LOSSES[name]
    got = fn(pred_half, target.float(), reduction="none")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, fn(pred_half.float(), target.float(), reduction="none"))
    if half == torch.float16:  # areas computed in float16 would overflow
        wh = pred_half[:, 2:] - pred_half[:, :2]
        assert torch.isinf(wh[:, 0] * wh[:, 1]).any()
    # both in half precision: the same as float32 of the rounded values
    both = fn(pred_half, target.to(half), reduction="mean")
    torch.testing.assert_close(both, fn(pred_half.float(), target.to(half).float()))


def test_integer_target_gives_a_floating_loss() -> None:
    target = torch.tensor([[0, 0, 2, 2]])
    pred = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    for fn in LOSSES.values():
        loss = fn(pred, target)
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, fn(pred, target.float()))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_weights_per_box_and_per_coordinate(name: str) -> None:
    fn = LOSSES[name]
    pred, target = random_boxes(6, torch.Generator().manual_seed(9))
    pred, target = pred.view(2, 3, 4), target.view(2, 3, 4)
    plain = fn(pred, target, reduction="none")
    assert plain.shape == (2, 3)
    per_box = torch.rand(2, 3, dtype=torch.float64)
    torch.testing.assert_close(fn(pred, target, weight=per_box, reduction="none"), plain * per_box)
    per_coord = torch.rand(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(
        fn(pred, target, weight=per_coord, reduction="sum"), (plain * per_coord.mean(-1)).sum()
    )
    torch.testing.assert_close(
        fn(pred, target, weight=per_box, avg_factor=2.0), (plain * per_box).sum() / 2.0
    )
    with pytest.raises(ValueError, match="weight"):
        fn(pred, target, weight=torch.ones(2, 3, 2))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_box_format_gives_the_same_loss(name: str) -> None:
    fn = LOSSES[name]
    pred, target = random_boxes(20, torch.Generator().manual_seed(10))
    expected = fn(pred, target, reduction="none")
    for fmt in ("xywh", "cxcywh"):
        got = fn(
            detloss.convert_boxes(pred, "xyxy", fmt),
            detloss.convert_boxes(target, "xyxy", fmt),
            box_format=fmt,
            reduction="none",
        )
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_check_boxes_is_opt_in(name: str) -> None:
    fn = LOSSES[name]
    good = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    bad = torch.tensor([[2.0, 0.0, 0.0, 2.0]])
    assert torch.isfinite(fn(bad, good))
    with pytest.raises(ValueError, match="pred: 1 invalid"):
        fn(bad, good, check_boxes=True)
    with pytest.raises(ValueError, match="target: 1 invalid"):
        fn(good, bad, check_boxes=True)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_arguments_raise(name: str) -> None:
    fn = LOSSES[name]
    boxes = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="same shape"):
        fn(boxes, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        fn(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="box_format"):
        fn(boxes, boxes, box_format="yolo")
    with pytest.raises(ValueError, match="eps"):
        fn(boxes, boxes, eps=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        fn(boxes, boxes, reduction="avg")


def test_loss_specific_arguments_are_checked() -> None:
    boxes = torch.zeros(1, 4)
    with pytest.raises(ValueError, match=r"mode must be one of \('log', 'linear', 'square'\)"):
        detloss.iou_loss(boxes, boxes, mode="exp")
    with pytest.raises(ValueError, match="alpha_gate"):
        detloss.ciou_loss(boxes, boxes, alpha_gate=1.5)
    with pytest.raises(ValueError, match="theta"):
        detloss.siou_loss(boxes, boxes, theta=0.5)


@pytest.mark.parametrize("type_name", sorted(MODULES))
def test_modules_match_their_functional_loss(type_name: str) -> None:
    fn, arguments = MODULES[type_name]
    pred, target = random_boxes(8, torch.Generator().manual_seed(11), "cxcywh")
    weight = torch.rand(8, 4, dtype=torch.float64)
    module = detloss.build_loss(
        {"type": f"mmdet.{type_name}", "eps": 1e-5, "loss_weight": 2.0, "box_format": "cxcywh"}
    )
    assert type(module) is detloss.LOSSES[type_name]
    assert isinstance(module, detloss.WeightedLoss)
    got = module(pred, target, weight, avg_factor=3.0)
    expected = fn(pred, target, **arguments, box_format="cxcywh", weight=weight, avg_factor=3.0)
    torch.testing.assert_close(got, 2.0 * expected)
    none = module(pred, target, reduction_override="none")
    assert none.shape == (8,)
    assert "box_format='cxcywh'" in repr(module)


def test_module_specific_arguments() -> None:
    pred, target = random_boxes(8, torch.Generator().manual_seed(12))
    iou = detloss.IoULoss(mode="square")
    torch.testing.assert_close(
        iou(pred, target), detloss.iou_loss(pred, target, "square", min_iou=1e-6)
    )
    assert detloss.IoULoss().mode == "log"  # mmdetection's default
    paper = detloss.CIoULoss(alpha_gate=None)
    torch.testing.assert_close(paper(pred, target), detloss.ciou_loss(pred, target))
    siou = detloss.SIoULoss(theta=2.0, neg_gamma=True, clamp=False)
    torch.testing.assert_close(siou(pred, target), detloss.siou_loss(pred, target, theta=2.0))
    extended = detloss.build_loss({"type": "EIoULoss", "smooth_point": 0.2})
    torch.testing.assert_close(
        extended(pred, target), detloss.extended_iou_loss(pred, target, smooth_point=0.2)
    )
    assert "smooth_point=0.2" in repr(extended)
    with pytest.raises(ValueError, match="mode"):
        detloss.IoULoss(mode="cubic")
    with pytest.raises(ValueError, match="box_format"):
        detloss.GIoULoss(box_format="ltrb")
    with pytest.raises(ValueError, match="pred: 8 invalid"):
        detloss.DIoULoss(check_boxes=True)(pred.flip(-1), target)
    with pytest.raises(ValueError, match="smooth_point"):
        detloss.EIoULoss(smooth_point=-0.1)
    with pytest.raises(TypeError, match="neg_gamma must be a bool"):
        detloss.SIoULoss(neg_gamma="yes")  # type: ignore[arg-type]


def test_losses_compile_without_graph_breaks_for_each_format_and_module() -> None:
    pred, target = random_boxes(5, torch.Generator().manual_seed(13), "xywh")
    for fn in LOSSES.values():
        compiled = torch.compile(fn, fullgraph=True, backend="eager")
        kw = {"box_format": "xywh", "reduction": "none"}
        torch.testing.assert_close(compiled(pred, target, **kw), fn(pred, target, **kw))
    module = detloss.CIoULoss(box_format="xywh")
    compiled_module = torch.compile(module, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled_module(pred, target), module(pred, target))
