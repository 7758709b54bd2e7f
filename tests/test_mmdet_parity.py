"""Registered names mean what mmdetection 3.3 means by them: the IoU-family losses' numbers and
the sigmoid cross-entropy's class weight (constructor arguments: ``test_mmdet_signatures.py``).

The references below are written from mmdetection's documented formulas and conventions (where its
eps sits, its gates and clamps), independently of detloss's code.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

import detloss
from tests.boxgen import random_boxes


def _geometry(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    inter = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0) * (
        torch.min(py2, ty2) - torch.max(py1, ty1)
    ).clamp(min=0)
    cw = (torch.max(px2, tx2) - torch.min(px1, tx1)).clamp(min=0)
    ch = (torch.max(py2, ty2) - torch.min(py1, ty1)).clamp(min=0)
    return {
        "inter": inter,
        "area_p": (px2 - px1) * (py2 - py1),
        "area_t": (tx2 - tx1) * (ty2 - ty1),
        "cw": cw,
        "ch": ch,
        "dx": (tx1 + tx2 - px1 - px2) / 2,
        "dy": (ty1 + ty2 - py1 - py2) / 2,
        "w": px2 - px1,
        "h": py2 - py1,
        "w_t": tx2 - tx1,
        "h_t": ty2 - ty1,
    }


def mmdet_ciou_loss(pred: Tensor, target: Tensor, eps: float) -> Tensor:
    """mmdetection 3.3 ``CIoULoss``: eps in the union, the diagonal and both heights; alpha
    without eps, applied only where IoU > 0.5, constant for the gradient; CIoU clamped to
    [-1, 1]."""
    g = _geometry(pred, target)
    iou = g["inter"] / (g["area_p"] + g["area_t"] - g["inter"] + eps)
    distance = (g["dx"] ** 2 + g["dy"] ** 2) / (g["cw"] ** 2 + g["ch"] ** 2 + eps)
    v = (
        4
        / math.pi**2
        * (torch.atan(g["w_t"] / (g["h_t"] + eps)) - torch.atan(g["w"] / (g["h"] + eps))) ** 2
    )
    with torch.no_grad():
        alpha = (iou > 0.5).to(v.dtype) * v / (1 - iou + v)
    return 1 - (iou - (distance + alpha * v)).clamp(-1.0, 1.0)


def mmdet_siou_loss(pred: Tensor, target: Tensor, eps: float, neg_gamma: bool) -> Tensor:
    """mmdetection 3.3 ``SIoULoss`` (arcsin angle cost, its eps placements), SIoU clamped to
    [-1, 1]; ``neg_gamma=False`` (its default) makes the distance cost's exponent positive."""
    g = _geometry(pred, target)
    iou = g["inter"] / (g["area_p"] + g["area_t"] - g["inter"] + eps)
    cw, ch = g["cw"].clamp(min=eps), g["ch"].clamp(min=eps)
    s_cw, s_ch = g["dx"] + eps, g["dy"] + eps
    sigma = torch.sqrt(s_cw**2 + s_ch**2)
    sin_x, sin_y = s_cw.abs() / sigma, s_ch.abs() / sigma
    sin_alpha = torch.where(sin_x > math.sqrt(2) / 2, sin_y, sin_x)
    angle = torch.cos(2 * torch.asin(sin_alpha) - math.pi / 2)
    gamma = angle - 2 if neg_gamma else 2 - angle
    distance = 2 - torch.exp(gamma * (s_cw / cw) ** 2) - torch.exp(gamma * (s_ch / ch) ** 2)
    w, h, w_t, h_t = g["w"], g["h"] + eps, g["w_t"], g["h_t"] + eps
    omega_w = (w - w_t).abs() / torch.max(w, w_t)
    omega_h = (h - h_t).abs() / torch.max(h, h_t)
    shape = (1 - torch.exp(-omega_w)) ** 4 + (1 - torch.exp(-omega_h)) ** 4
    return 1 - (iou - 0.5 * (distance + shape)).clamp(-1.0, 1.0)


def mmdet_eiou_loss(pred: Tensor, target: Tensor, smooth_point: float, eps: float) -> Tensor:
    """mmdetection 3.3 ``EIoULoss`` (Extended IoU): the intersection extended through the
    enclosing box's top-left corner, Smooth L1 of ``1 - EIoU`` with a detached branch choice."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    ex1, ey1 = torch.min(px1, tx1), torch.min(py1, ty1)
    ix1, iy1 = torch.max(px1, tx1), torch.max(py1, ty1)
    ix2, iy2 = torch.min(px2, tx2), torch.min(py2, ty2)
    inter = (
        (ix2 - ex1) * (iy2 - ey1)
        + (torch.min(ix1, ix2) - ex1) * (torch.min(iy1, iy2) - ey1)
        - (ix1 - ex1) * (torch.max(iy1, iy2) - ey1)
        - (torch.max(ix1, ix2) - ex1) * (iy1 - ey1)
    )
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter + eps
    gap = 1 - inter / union
    small = (gap < smooth_point).detach().to(gap.dtype)
    return 0.5 * small * gap**2 / smooth_point + (1 - small) * (gap - 0.5 * smooth_point)


def mmdet_iou_loss(pred: Tensor, target: Tensor, eps: float) -> Tensor:
    """mmdetection 3.3 ``IoULoss(mode="log")``: ``bbox_overlaps`` (union at least 1e-6), then
    the IoU clamped at ``eps``."""
    g = _geometry(pred, target)
    union = (g["area_p"] + g["area_t"] - g["inter"]).clamp(min=1e-6)
    return -(g["inter"] / union).clamp(min=eps).log()


def _boxes(n: int, seed: int) -> tuple[Tensor, Tensor]:
    return random_boxes(n, torch.Generator().manual_seed(seed))


def test_ciou_loss_module_is_mmdetections_gated_ciou() -> None:
    pred, target = _boxes(400, 0)
    iou = detloss.box_iou(pred, target, aligned=True)
    assert ((iou > 0.5) & (iou < 0.9)).any()
    assert ((iou > 0.1) & (iou <= 0.5)).any()
    pred.requires_grad_(True)
    got = detloss.CIoULoss(reduction="none")(pred, target)
    expected = mmdet_ciou_loss(pred, target, 1e-6)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        torch.autograd.grad(got.sum(), pred)[0], torch.autograd.grad(expected.sum(), pred)[0]
    )
    # The paper's ungated CIoU differs where IoU <= 0.5 and the aspect ratios differ.
    paper = detloss.CIoULoss(alpha_gate=None, reduction="none")(pred, target)
    assert (paper - got).abs().max() > 1e-3
    assert detloss.build_loss({"type": "CIoULoss"}).alpha_gate == 0.5


@pytest.mark.parametrize("neg_gamma", [False, True])
def test_siou_loss_module_is_mmdetections(neg_gamma: bool) -> None:
    pred, target = _boxes(400, 1)
    cfg: dict[str, Any] = {"type": "SIoULoss", "reduction": "none"}
    if neg_gamma:
        cfg["neg_gamma"] = True
    got = detloss.build_loss(cfg)(pred, target)
    # mmdetection adds eps to the centre offsets, heights and clamps; detloss to the denominators:
    # they differ by O(eps).
    expected = mmdet_siou_loss(pred, target, 1e-6, neg_gamma)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert (expected == 0).any() != neg_gamma  # the clamp acts on these boxes by default


def test_siou_default_gives_far_apart_boxes_zero_loss() -> None:
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    target = torch.tensor([[200.0, 300.0, 210.0, 310.0], [1.0, 1.0, 11.0, 11.0]])
    default = detloss.SIoULoss(reduction="none")(pred, target)
    assert default[0] == 0  # SIoU above 1, clamped: mmdetection's neg_gamma=False
    assert default[1] > 0
    paper = detloss.siou_loss(pred, target, reduction="none")
    assert paper[0] > 1  # the paper's distance cost grows with the distance
    grad_pred = pred.clone().requires_grad_(True)
    detloss.SIoULoss()(grad_pred, target).backward()
    assert grad_pred.grad is not None
    assert (grad_pred.grad[0] == 0).all()


def test_eiou_loss_module_is_mmdetections_extended_iou() -> None:
    pred, target = _boxes(400, 2)
    assert (detloss.box_iou(pred, target, aligned=True) == 0).any()
    pred.requires_grad_(True)
    for smooth_point in (0.1, 0.5):
        module = detloss.build_loss({"type": "EIoULoss", "smooth_point": smooth_point})
        got = module(pred, target, reduction_override="none")
        expected = mmdet_eiou_loss(pred, target, smooth_point, 1e-6)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(
            torch.autograd.grad(got.sum(), pred)[0],
            torch.autograd.grad(expected.sum(), pred)[0],
        )


def test_extended_iou_moves_disjoint_boxes_and_efficient_iou_is_another_loss() -> None:
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[3.0, 0.0, 4.0, 1.0]])
    (grad,) = torch.autograd.grad(detloss.extended_iou_loss(pred, target), pred)
    assert grad[0, 2] < 0  # moving x2 towards the target lowers the loss
    assert not torch.allclose(
        detloss.extended_iou_loss(pred, target), detloss.efficient_iou_loss(pred, target)
    )
    assert detloss.LOSSES["EfficientIoULoss"] is detloss.EfficientIoULoss
    assert not hasattr(detloss, "eiou_loss")


def test_iou_loss_module_eps_clamps_the_iou_and_is_not_in_the_denominator() -> None:
    pred, target = _boxes(400, 3)
    for eps in (1e-6, 0.05):
        got = detloss.IoULoss(eps=eps, reduction="none")(pred, target)
        torch.testing.assert_close(got, mmdet_iou_loss(pred, target, eps))
    # A large eps only clamps: IoU 1/7 (0.14 > 0.1) is unchanged by eps = 0.1.
    p, t = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    torch.testing.assert_close(detloss.IoULoss(eps=0.1)(p, t), torch.tensor(math.log(7.0)))


def test_iou_loss_linear_is_the_deprecated_alias_of_mode_linear() -> None:
    pred, target = _boxes(20, 4)
    with pytest.warns(DeprecationWarning, match='mode="linear"'):
        module = detloss.build_loss({"type": "IoULoss", "linear": True})
    assert module.mode == "linear"
    torch.testing.assert_close(module(pred, target), detloss.IoULoss(mode="linear")(pred, target))
    with pytest.raises(ValueError, match="linear=True.*mode='square'"):
        detloss.IoULoss(linear=True, mode="square")
    # mmdetection's first positional argument is linear, not eps.
    with pytest.raises(TypeError, match="linear must be a bool, got float"):
        detloss.IoULoss(1e-5)  # type: ignore[arg-type]


def test_sigmoid_cross_entropy_class_weight_is_the_positive_terms_weight() -> None:
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 3, generator=g, dtype=torch.float64)
    targets = (torch.rand(6, 3, generator=g) < 0.4).to(torch.float64)
    class_weight = [1.0, 3.0, 0.5]
    module = detloss.build_loss(
        {"type": "CrossEntropyLoss", "use_sigmoid": True, "class_weight": class_weight}
    )
    p = torch.sigmoid(logits)
    w = torch.tensor(class_weight, dtype=torch.float64)
    expected = -(w * targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    torch.testing.assert_close(module(logits, targets, reduction_override="none"), expected)
    torch.testing.assert_close(module(logits, targets), expected.mean())


# mmdetection's py_focal_loss_with_prob and quality_focal_loss_with_prob, written from their
# formulas with PyTorch's binary_cross_entropy (logs floored at -100).
def _mmdet_focal_with_prob(p: Tensor, t: Tensor, gamma: float, alpha: float) -> Tensor:
    pt = (1 - p) * t + p * (1 - t)
    focal = (alpha * t + (1 - alpha) * (1 - t)) * pt.pow(gamma)
    return torch.nn.functional.binary_cross_entropy(p, t, reduction="none") * focal


def _mmdet_qfl_with_prob(p: Tensor, q: Tensor, beta: float) -> Tensor:
    bce = torch.nn.functional.binary_cross_entropy(p, q, reduction="none")
    return (bce * (q - p).abs().pow(beta)).sum(1)


PROBS = torch.tensor([[0.0, 0.2, 1.0], [0.7, 1e-30, 0.999], [0.5, 0.05, 1 - 1e-7]])


def test_focal_loss_activated_is_mmdetections_focal_loss_of_probabilities() -> None:
    labels = torch.tensor([2, 3, 0])  # 3 = background
    onehot = torch.nn.functional.one_hot(labels, 4)[:, :3]
    expected = _mmdet_focal_with_prob(PROBS, onehot.float(), 2.0, 0.25)
    module = detloss.LOSSES["FocalLoss"](activated=True, reduction="none")
    torch.testing.assert_close(module(PROBS, labels), expected)
    torch.testing.assert_close(module(PROBS, onehot), expected)  # integer one-hot targets
    torch.testing.assert_close(module(PROBS, onehot.float()), expected)
    mean = detloss.LOSSES["FocalLoss"](activated=True, gamma=1.5, alpha=0.4, loss_weight=2.0)
    torch.testing.assert_close(
        mean(PROBS, labels), 2 * _mmdet_focal_with_prob(PROBS, onehot.float(), 1.5, 0.4).mean()
    )
    p = PROBS.clone().requires_grad_(True)
    module(p, labels).sum().backward()
    assert p.grad is not None
    assert torch.isfinite(p.grad).all()


def test_focal_loss_takes_integer_one_hot_targets_on_logits() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]])
    onehot = torch.tensor([[0, 0, 1], [0, 0, 0]])
    module = detloss.LOSSES["FocalLoss"](reduction="none")
    torch.testing.assert_close(
        module(logits, onehot), detloss.sigmoid_focal_loss(logits, onehot.float(), reduction="none")
    )


def test_quality_focal_loss_activated_is_mmdetections_of_probabilities() -> None:
    labels, scores = torch.tensor([1, 3, 2]), torch.tensor([0.9, 0.4, 0.0])
    q = torch.nn.functional.one_hot(labels, 4)[:, :3].float() * scores.unsqueeze(1)
    expected = _mmdet_qfl_with_prob(PROBS, q, 2.0)
    module = detloss.LOSSES["QualityFocalLoss"](activated=True, reduction="none")
    torch.testing.assert_close(module(PROBS, (labels, scores)), expected)
    torch.testing.assert_close(module(PROBS, q), expected)  # dense soft targets
    p = PROBS.clone().requires_grad_(True)
    module(p, (labels, scores)).sum().backward()
    assert p.grad is not None
    assert torch.isfinite(p.grad).all()
    beta1 = detloss.LOSSES["QualityFocalLoss"](beta=1.0, activated=True)
    torch.testing.assert_close(beta1(PROBS, q), _mmdet_qfl_with_prob(PROBS, q, 1.0).mean())
