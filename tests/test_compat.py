"""detloss.compat: the drop-in modules for torchvision, fvcore/detectron2 and ultralytics.

fvcore is installed and compared against directly. torchvision's and ultralytics' functions are
compared against reference formulas written here from their documented definitions (where their
eps sits, their reductions and shapes); those packages are not imported.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import fvcore.nn
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch._dynamo.testing import EagerAndRecordGraphs

import detloss
from detloss.compat import fvcore as fv
from detloss.compat import torchvision as tv
from detloss.compat import ultralytics as ul
from tests.boxgen import random_boxes
from tests.dynamo import global_inputs


def _signature(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


def _boxes(n: int, seed: int, scale: float = 100.0) -> tuple[Tensor, Tensor]:
    return random_boxes(n, torch.Generator().manual_seed(seed), scale=scale)


def _logits_targets(shape: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g) * 3
    return logits, (torch.rand(*shape, generator=g) < 0.3).float()


def _focal_reference(x: Tensor, t: Tensor, alpha: float, gamma: float) -> Tensor:
    """Lin et al.'s sigmoid focal loss, element-wise (alpha < 0: no weighting)."""
    p = torch.sigmoid(x)
    p_t = p * t + (1 - p) * (1 - t)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none") * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    return loss


def _pair_terms(b1: Tensor, b2: Tensor) -> dict[str, Tensor]:
    """Corner terms of ``xyxy`` boxes that broadcast together (no size clamping, as the
    frameworks)."""
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(min=0) * (
        torch.min(y2, v2) - torch.max(y1, v1)
    ).clamp(min=0)
    cw, ch = torch.max(x2, u2) - torch.min(x1, u1), torch.max(y2, v2) - torch.min(y1, v1)
    rho2 = ((u1 + u2 - x1 - x2) ** 2 + (v1 + v2 - y1 - y2) ** 2) / 4
    return {
        "inter": inter,
        "union": (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter,
        "enclose": cw * ch,
        "diag": cw**2 + ch**2,
        "rho2": rho2,
        "w1": x2 - x1,
        "h1": y2 - y1,
        "w2": u2 - u1,
        "h2": v2 - v1,
    }


# --- torchvision ---------------------------------------------------------------------------------

TORCHVISION_SIGNATURES: dict[str, list[tuple[str, Any]]] = {
    "sigmoid_focal_loss": [
        ("inputs", inspect.Parameter.empty),
        ("targets", inspect.Parameter.empty),
        ("alpha", 0.25),
        ("gamma", 2),
        ("reduction", "none"),
    ],
    **{
        name: [
            ("boxes1", inspect.Parameter.empty),
            ("boxes2", inspect.Parameter.empty),
            ("reduction", "none"),
            ("eps", 1e-7),
        ]
        for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss")
    },
    "box_iou": [
        ("boxes1", inspect.Parameter.empty),
        ("boxes2", inspect.Parameter.empty),
        ("fmt", "xyxy"),
    ],
    "generalized_box_iou": [
        ("boxes1", inspect.Parameter.empty),
        ("boxes2", inspect.Parameter.empty),
    ],
    **{
        name: [
            ("boxes1", inspect.Parameter.empty),
            ("boxes2", inspect.Parameter.empty),
            ("eps", 1e-7),
        ]
        for name in ("distance_box_iou", "complete_box_iou")
    },
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_SIGNATURES))
def test_torchvision_names_and_signatures(name: str) -> None:
    assert _signature(getattr(tv, name)) == TORCHVISION_SIGNATURES[name]
    assert set(tv.__all__) == set(TORCHVISION_SIGNATURES)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_torchvision_sigmoid_focal_loss(reduction: str) -> None:
    x, t = _logits_targets((6, 5), 0)
    expected = _focal_reference(x, t, 0.25, 2.0)
    expected = {"none": expected, "mean": expected.mean(), "sum": expected.sum()}[reduction]
    torch.testing.assert_close(tv.sigmoid_focal_loss(x, t, reduction=reduction), expected)
    # reduction="none" by default; alpha=-1 is no weighting.
    assert tv.sigmoid_focal_loss(x, t).shape == (6, 5)
    torch.testing.assert_close(
        tv.sigmoid_focal_loss(x, t, alpha=-1, gamma=1.0),
        _focal_reference(x, t, -1.0, 1.0),
    )


def test_torchvision_box_losses() -> None:
    b1, b2 = _boxes(300, 1)
    eps = 1e-7
    s = _pair_terms(b1, b2)
    iou = s["inter"] / (s["union"] + eps)
    giou = 1 - iou + (s["enclose"] - s["union"]) / (s["enclose"] + eps)
    diou = 1 - iou + s["rho2"] / (s["diag"] + eps)
    v = 4 / math.pi**2 * (torch.atan(s["w2"] / s["h2"]) - torch.atan(s["w1"] / s["h1"])) ** 2
    ciou = diou + v / (1 - iou + v + eps) * v
    torch.testing.assert_close(tv.generalized_box_iou_loss(b1, b2), giou)
    torch.testing.assert_close(tv.distance_box_iou_loss(b1, b2), diou)
    torch.testing.assert_close(tv.complete_box_iou_loss(b1, b2), ciou)
    torch.testing.assert_close(tv.complete_box_iou_loss(b1, b2, "mean"), ciou.mean())
    torch.testing.assert_close(tv.generalized_box_iou_loss(b1[0], b2[0], "sum"), giou[0])


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_torchvision_pairwise_ious_divide_the_iou_without_eps(scale: float) -> None:
    # scale 1: DETR's normalised boxes, where an eps in the IoU would show.
    g = torch.Generator().manual_seed(2)
    b1 = random_boxes(5, g, scale=scale)[0].float()
    b2 = random_boxes(7, g, scale=scale)[1].float()
    s = _pair_terms(b1[:, None], b2[None])
    iou = s["inter"] / s["union"]
    giou = iou - (s["enclose"] - s["union"]) / s["enclose"]
    diou = iou - s["rho2"] / (s["diag"] + 1e-7)
    v = 4 / math.pi**2 * (torch.atan(s["w1"] / s["h1"]) - torch.atan(s["w2"] / s["h2"])) ** 2
    ciou = diou - v / (1 - iou + v + 1e-7) * v
    torch.testing.assert_close(tv.box_iou(b1, b2), iou)
    torch.testing.assert_close(tv.generalized_box_iou(b1, b2), giou)
    torch.testing.assert_close(tv.distance_box_iou(b1, b2), diou)
    torch.testing.assert_close(tv.complete_box_iou(b1, b2), ciou)
    for fmt in ("xywh", "cxcywh"):
        converted = tv.box_iou(
            detloss.convert_boxes(b1, "xyxy", fmt), detloss.convert_boxes(b2, "xyxy", fmt), fmt
        )
        torch.testing.assert_close(converted, iou)


def test_torchvision_box_iou_is_batched_and_zero_for_empty_boxes() -> None:
    b1 = torch.stack([_boxes(4, i)[0] for i in range(3)])
    b2 = torch.stack([_boxes(6, i)[1] for i in range(3)])
    batched = tv.box_iou(b1, b2)
    assert batched.shape == (3, 4, 6)
    torch.testing.assert_close(batched[1], tv.box_iou(b1[1], b2[1]))
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert tv.box_iou(point, point).item() == 0.0  # torchvision: 0/0 = NaN
    assert tv.generalized_box_iou(point, point).item() == 0.0
    with pytest.raises(ValueError, match="cxcywhr"):
        tv.box_iou(point, point, fmt="cxcywhr")


# --- fvcore and detectron2 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["giou_loss", "sigmoid_focal_loss", "sigmoid_focal_loss_star", "smooth_l1_loss"]
)
def test_fvcore_names_and_signatures(name: str) -> None:
    assert _signature(getattr(fv, name)) == _signature(getattr(fvcore.nn, name))


def test_detectron2_signatures() -> None:
    expected = [
        ("boxes1", inspect.Parameter.empty),
        ("boxes2", inspect.Parameter.empty),
        ("reduction", "none"),
        ("eps", 1e-7),
    ]
    assert _signature(fv.diou_loss) == expected
    assert _signature(fv.ciou_loss) == expected
    assert fv.sigmoid_focal_loss_jit is fv.sigmoid_focal_loss
    assert fv.sigmoid_focal_loss_star_jit is fv.sigmoid_focal_loss_star


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_fvcore_losses_equal_fvcores(reduction: str) -> None:
    x, t = _logits_targets((8, 3), 3)
    for ours, theirs, kwargs in (
        (fv.sigmoid_focal_loss, fvcore.nn.sigmoid_focal_loss, {}),
        (fv.sigmoid_focal_loss, fvcore.nn.sigmoid_focal_loss_jit, {"alpha": 0.25}),
        (fv.sigmoid_focal_loss_star, fvcore.nn.sigmoid_focal_loss_star, {"gamma": 2.0}),
        (fv.sigmoid_focal_loss_star_jit, fvcore.nn.sigmoid_focal_loss_star_jit, {}),
    ):
        torch.testing.assert_close(
            ours(x, t, reduction=reduction, **kwargs), theirs(x, t, reduction=reduction, **kwargs)
        )
    b1, b2 = (b.float() for b in _boxes(100, 4))
    torch.testing.assert_close(
        fv.giou_loss(b1, b2, reduction), fvcore.nn.giou_loss(b1, b2, reduction)
    )
    p, q = torch.randn(10, 4), torch.randn(10, 4)
    for beta in (1.0, 1 / 9, 1e-6, 0.0):  # below 1e-5 fvcore computes L1
        torch.testing.assert_close(
            fv.smooth_l1_loss(p, q, beta, reduction),
            fvcore.nn.smooth_l1_loss(p, q, beta, reduction),
        )


def test_fvcore_documented_differences() -> None:
    b1, b2 = (b.half() for b in _boxes(20, 13))
    ours, theirs = fv.giou_loss(b1, b2), fvcore.nn.giou_loss(b1, b2)
    assert (ours.dtype, theirs.dtype) == (torch.float32, torch.float16)  # float16 in float32
    torch.testing.assert_close(ours, fv.giou_loss(b1.float(), b2.float()))
    x, t = _logits_targets((4, 3), 14)
    torch.testing.assert_close(  # fvcore: an unknown reduction is "none"; detloss rejects it
        fvcore.nn.sigmoid_focal_loss(x, t, reduction="avg"), fv.sigmoid_focal_loss(x, t)
    )
    with pytest.raises(ValueError, match="reduction"):
        fv.sigmoid_focal_loss(x, t, reduction="avg")
    with pytest.raises(ValueError, match="targets"):  # fvcore: t.long().float()
        fv.sigmoid_focal_loss(x, t.long())
    for beta in (-1.0, math.inf):  # fvcore: L1, and 0
        with pytest.raises(ValueError, match="beta"):
            fv.smooth_l1_loss(x, t, beta)


def test_detectron2_diou_ciou_losses() -> None:
    b1, b2 = _boxes(200, 5)
    eps = 1e-7
    s = _pair_terms(b1, b2)
    iou = s["inter"] / (s["union"] + eps)
    diou = 1 - iou + s["rho2"] / (s["diag"] + eps)
    v = 4 / math.pi**2 * (torch.atan(s["w2"] / s["h2"]) - torch.atan(s["w1"] / s["h1"])) ** 2
    torch.testing.assert_close(fv.diou_loss(b1, b2), diou)
    torch.testing.assert_close(fv.ciou_loss(b1, b2), diou + v / (1 - iou + v + eps) * v)
    torch.testing.assert_close(
        fv.ciou_loss(b1, b2, "sum"), (diou + v / (1 - iou + v + eps) * v).sum()
    )


# --- ultralytics ---------------------------------------------------------------------------------


def _ultralytics_iou(b1: Tensor, b2: Tensor, xywh: bool, kind: str, eps: float = 1e-7) -> Tensor:
    """ultralytics' bbox_iou: centre format when ``xywh``; otherwise eps added to both heights;
    eps in the union, the enclosing area and diagonal, and CIoU's alpha."""
    if xywh:
        b1 = torch.cat([b1[..., :2] - b1[..., 2:] / 2, b1[..., :2] + b1[..., 2:] / 2], -1)
        b2 = torch.cat([b2[..., :2] - b2[..., 2:] / 2, b2[..., :2] + b2[..., 2:] / 2], -1)
    s = _pair_terms(b1, b2)
    h1, h2 = (s["h1"], s["h2"]) if xywh else (s["h1"] + eps, s["h2"] + eps)
    union = s["w1"] * h1 + s["w2"] * h2 - s["inter"] + eps
    iou = s["inter"] / union
    if kind == "giou":
        c_area = s["enclose"] + eps
        iou = iou - (c_area - union) / c_area
    elif kind in ("diou", "ciou"):
        iou = iou - s["rho2"] / (s["diag"] + eps)
        if kind == "ciou":
            v = 4 / math.pi**2 * (torch.atan(s["w2"] / h2) - torch.atan(s["w1"] / h1)) ** 2
            iou = iou - v * (v / (1 - s["inter"] / union + v + eps))
    return iou.unsqueeze(-1)


@pytest.mark.parametrize("xywh", [True, False])
@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_ultralytics_bbox_iou(kind: str, xywh: bool) -> None:
    fmt = "cxcywh" if xywh else "xyxy"
    b1, b2 = random_boxes(200, torch.Generator().manual_seed(6), fmt)
    flags = {"GIoU": kind == "giou", "DIoU": kind == "diou", "CIoU": kind == "ciou"}
    got = ul.bbox_iou(b1, b2, xywh=xywh, **flags)
    assert got.shape == (200, 1)
    torch.testing.assert_close(got, _ultralytics_iou(b1, b2, xywh, kind))
    # Shapes broadcast, with the trailing 1 kept: (5, 1, 4) against (1, 7, 4) is (5, 7, 1).
    matrix = ul.bbox_iou(b1[:5, None], b2[None, :7], xywh=xywh, **flags)
    assert matrix.shape == (5, 7, 1)
    torch.testing.assert_close(matrix, _ultralytics_iou(b1[:5, None], b2[None, :7], xywh, kind))


def test_ultralytics_bbox_iou_defaults_and_flag_precedence() -> None:
    b1, b2 = random_boxes(20, torch.Generator().manual_seed(7), "cxcywh")
    assert _signature(ul.bbox_iou) == [
        ("box1", inspect.Parameter.empty),
        ("box2", inspect.Parameter.empty),
        ("xywh", True),
        ("GIoU", False),
        ("DIoU", False),
        ("CIoU", False),
        ("eps", 1e-7),
    ]
    torch.testing.assert_close(ul.bbox_iou(b1, b2), _ultralytics_iou(b1, b2, True, "iou"))
    torch.testing.assert_close(
        ul.bbox_iou(b1, b2, GIoU=True, DIoU=True, CIoU=True), ul.bbox_iou(b1, b2, CIoU=True)
    )
    torch.testing.assert_close(
        ul.bbox_iou(b1, b2, GIoU=True, DIoU=True), ul.bbox_iou(b1, b2, DIoU=True)
    )


@pytest.mark.parametrize("shape", [(16, 5), (2, 8, 5)])
@pytest.mark.parametrize(("gamma", "alpha"), [(1.5, 0.25), (2.0, 0.0)])
def test_ultralytics_focal_loss(shape: tuple[int, ...], gamma: float, alpha: float) -> None:
    x, t = _logits_targets(shape, 8)
    # ultralytics: alpha weighting only when alpha > 0, then .mean(1).sum().
    expected = _focal_reference(x, t, alpha if alpha > 0 else -1.0, gamma).mean(1).sum()
    module = ul.FocalLoss(gamma=gamma, alpha=alpha)
    torch.testing.assert_close(module(x, t), expected)
    half = module(x.half(), t.half())  # computed in float32
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, module(x.half().float(), t))
    assert _signature(ul.FocalLoss) == [("gamma", 1.5), ("alpha", 0.25)]
    with pytest.raises(ValueError, match="gamma"):
        ul.FocalLoss(gamma=-1.0)


def _vfl_inputs(shape: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """RT-DETR's inputs: logits, one-hot int64 labels and ``gt_score = IoU * label``, with some
    matched queries at IoU 0."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    label = (torch.rand(*shape, generator=g) < 0.3).long()
    iou = torch.rand(*shape, generator=g, dtype=torch.float64)
    iou = iou * (torch.rand(*shape, generator=g) < 0.8)
    return logits, iou * label, label


def _ultralytics_varifocal(x: Tensor, score: Tensor, label: Tensor, alpha: float, gamma: float):
    """ultralytics' VarifocalLoss: the element weight ``alpha p**gamma (1 - label) + score label``
    formed in the logits' precision, times the binary cross-entropy of ``score`` in float32 (in
    float64 here for float64 logits), ``.mean(1).sum()``."""
    weight = alpha * torch.sigmoid(x) ** gamma * (1 - label) + score * label
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    bce = F.binary_cross_entropy_with_logits(x.to(compute), score.to(compute), reduction="none")
    return (bce * weight).mean(1).sum()


def _ultralytics_dfl(pred_dist: Tensor, target: Tensor, reg_max: int) -> Tensor:
    """ultralytics' DFLoss: the cross-entropy against the two-bin soft target of each distance
    clamped to ``[0, reg_max - 1.01]``, averaged over the last dimension of ``target``."""
    y = target.clamp(0, reg_max - 1.01)
    left = y.floor()
    soft = (
        F.one_hot(left.long(), reg_max) * (left + 1 - y)[..., None]
        + F.one_hot(left.long() + 1, reg_max) * (y - left)[..., None]
    )
    ce = F.cross_entropy(pred_dist, soft.reshape(-1, reg_max).to(pred_dist.dtype), reduction="none")
    return ce.reshape(target.shape).mean(-1, keepdim=True)


def test_ultralytics_vfl_and_dfl_signatures() -> None:
    assert _signature(ul.VarifocalLoss) == [("gamma", 2.0), ("alpha", 0.75)]
    assert _signature(ul.VarifocalLoss.forward)[1:] == [
        ("pred_score", inspect.Parameter.empty),
        ("gt_score", inspect.Parameter.empty),
        ("label", inspect.Parameter.empty),
    ]
    assert _signature(ul.DFLoss) == [("reg_max", 16)]
    assert _signature(ul.DFLoss.forward)[1:] == [
        ("pred_dist", inspect.Parameter.empty),
        ("target", inspect.Parameter.empty),
    ]
    assert ul.DFLoss(8).reg_max == 8
    with pytest.raises(ValueError, match="alpha"):
        ul.VarifocalLoss(alpha=-0.5)
    with pytest.raises(ValueError, match="reg_max"):
        ul.DFLoss(1)
    with pytest.raises(TypeError, match="reg_max"):
        ul.DFLoss(16.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(12, 5), (2, 10, 5)])
@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, 0.75), (1.5, 0.25)])
def test_ultralytics_varifocal_loss(shape: tuple[int, ...], gamma: float, alpha: float) -> None:
    x, score, label = _vfl_inputs(shape, 9)
    assert ((label == 1) & (score == 0)).any()  # matched at IoU 0: weight 0 in ultralytics
    ours_x, ref_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    module = ul.VarifocalLoss(gamma=gamma, alpha=alpha)
    ours = module(ours_x, score, label)
    ref = _ultralytics_varifocal(ref_x, score, label, alpha, gamma)
    torch.testing.assert_close(ours, ref)
    (ours_grad,) = torch.autograd.grad(ours, ours_x)
    (ref_grad,) = torch.autograd.grad(ref, ref_x)
    torch.testing.assert_close(ours_grad, ref_grad)
    # bool labels are the same positives; float32 inputs give float32
    torch.testing.assert_close(module(x, score, label.bool()), ref.detach())
    single = module(x.float(), score.float(), label)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single, ref.detach().float())
    assert torch.autograd.gradcheck(
        lambda x: module(x, score[:3], label[:3]), (x[:3].detach().requires_grad_(True),)
    )


def test_ultralytics_varifocal_half_precision_and_empty() -> None:
    x, score, label = _vfl_inputs((2, 16, 5), 10)
    half = x.half().requires_grad_(True)
    loss = ul.VarifocalLoss()(half, score.half(), label)
    assert loss.dtype == torch.float32  # ultralytics computes the loss in float32 too
    # detloss forms the weight in float32: equal to the float32 computation of the half inputs,
    # and within the rounding of ultralytics' float16 weight of its value.
    as_float = ul.VarifocalLoss()(half.detach().float(), score.half().float(), label)
    torch.testing.assert_close(loss, as_float)
    torch.testing.assert_close(
        loss,
        _ultralytics_varifocal(half.detach(), score.half(), label, 0.75, 2.0),
        rtol=2e-3,
        atol=0,
    )
    loss.backward()
    assert half.grad is not None
    assert half.grad.dtype == torch.float16
    assert torch.isfinite(half.grad).all()
    # No queries (ultralytics: NaN) or no images: an exact zero connected to the graph.
    for empty_shape in ((2, 0, 5), (0, 16, 5)):
        empty = torch.zeros(empty_shape, requires_grad=True)
        zeros = torch.zeros(empty_shape)
        for loss in (ul.VarifocalLoss()(empty, zeros, zeros.long()), ul.FocalLoss()(empty, zeros)):
            assert loss.item() == 0.0
            (grad,) = torch.autograd.grad(loss, empty)
            assert grad.shape == empty_shape


@pytest.mark.parametrize("reg_max", [16, 5])
def test_ultralytics_dfl(reg_max: int) -> None:
    g = torch.Generator().manual_seed(11)
    pred = torch.randn(12 * 4, reg_max, generator=g, dtype=torch.float64)
    # distances inside, at the last bins and beyond (clamped to reg_max - 1.01), and negative
    target = torch.rand(12, 4, generator=g, dtype=torch.float64) * (reg_max + 1) - 0.5
    target[0] = torch.tensor([reg_max - 1.0, reg_max - 1.005, reg_max - 1.01, 0.0])
    original = target.clone()
    ours_pred, ref_pred = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    ours = ul.DFLoss(reg_max)(ours_pred, target)
    ref = _ultralytics_dfl(ref_pred, target, reg_max)
    assert ours.shape == (12, 1)
    torch.testing.assert_close(ours, ref)
    upstream = torch.rand(12, 1, generator=g, dtype=torch.float64)
    (ours_grad,) = torch.autograd.grad((ours * upstream).sum(), ours_pred)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), ref_pred)
    torch.testing.assert_close(ours_grad, ref_grad)
    assert torch.equal(target, original)  # ultralytics clamps the caller's target in place
    assert torch.autograd.gradcheck(
        lambda p: ul.DFLoss(reg_max)(p, target[:2]), (pred[:8].detach().requires_grad_(True),)
    )
    # Any leading shape: (B, A, 4) gives (B, A, 1); a 1-D target is one row, shape (1,).
    batched = ul.DFLoss(reg_max)(pred, target.reshape(3, 4, 4))
    torch.testing.assert_close(batched, ref.detach().reshape(3, 4, 1))
    torch.testing.assert_close(
        ul.DFLoss(reg_max)(pred[:4], target[1]), _ultralytics_dfl(pred[:4], target[1], reg_max)
    )


def test_ultralytics_dfl_in_bbox_loss_half_precision_and_empty() -> None:
    g = torch.Generator().manual_seed(12)
    pred = torch.randn(20 * 4, 16, generator=g)
    target = torch.rand(20, 4, generator=g) * 16
    weight = torch.rand(20, 1, generator=g)
    scores_sum = torch.tensor(7.5)
    # BboxLoss's DFL term: (DFLoss(pred, target) * weight).sum() / target_scores_sum, one call of
    # detloss's function with rows of four distances.
    bbox_term = (ul.DFLoss(16)(pred, target) * weight).sum() / scores_sum
    torch.testing.assert_close(
        detloss.distribution_focal_loss(
            pred.reshape(20, 4, 16),
            target,
            max_target=16 - 1.01,
            weight=weight.squeeze(1),
            avg_factor=scores_sum,
        ),
        bbox_term,
    )
    half = pred.half().requires_grad_(True)
    loss = ul.DFLoss(16)(half, target.half())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ul.DFLoss(16)(half.detach().float(), target.half().float()))
    loss.sum().backward()
    assert half.grad is not None
    assert half.grad.dtype == torch.float16
    empty = torch.zeros(0, 16, requires_grad=True)
    loss = ul.DFLoss(16)(empty, torch.zeros(0, 4))
    assert loss.shape == (0, 1)
    loss.sum().backward()
    assert empty.grad is not None
    assert empty.grad.shape == (0, 16)


def test_compat_modules_are_pure_mappings() -> None:
    # Every public function forwards to one detloss function: its body is a single return of a
    # call (ultralytics' bbox_iou adds only the trailing dimension).
    for module in (tv, fv, ul):
        for name in module.__all__:
            obj = getattr(module, name)
            fn = vars(obj)["forward"] if inspect.isclass(obj) else obj
            body = [
                line.strip()
                for line in inspect.getsource(fn).split('"""')[-1].splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
            assert body[-1].startswith(")") or body[-1].startswith("return "), (name, body)
            assert not any(op in line for line in body for op in ("torch.", " / ", " * ")), name


@pytest.mark.parametrize(
    ("fn", "make"),
    [
        (tv.box_iou, lambda g: random_boxes(9, g)),
        (tv.complete_box_iou, lambda g: random_boxes(9, g)),
        (
            ul.DFLoss(16),
            lambda g: (torch.randn(9, 4, 16, generator=g), torch.rand(9, 4, generator=g) * 15),
        ),
    ],
    ids=["torchvision.box_iou", "torchvision.complete_box_iou", "ultralytics.DFLoss"],
)
def test_compiled_compat_takes_no_global_as_input(
    fn: Callable[..., Tensor], make: Callable[[torch.Generator], tuple[Tensor, ...]]
) -> None:
    inputs = make(torch.Generator().manual_seed(0))
    backend = EagerAndRecordGraphs()
    compiled = torch.compile(fn, backend=backend, dynamic=True, fullgraph=True)
    torch.testing.assert_close(compiled(*inputs), fn(*inputs))
    assert global_inputs(backend) == []
