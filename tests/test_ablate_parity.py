"""Convergence parity: the detectors trained with detloss's losses and with reference formulations
of the same losses (written here from the papers, torchvision, fvcore and mmdetection) follow the
same loss curve, to 1e-5 in float64; and bf16 autocast trains finitely, close to float32."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from detloss.ablate import data
from detloss.ablate.losses import LOSSES, LossSpec, LossTable
from detloss.ablate.train import TrainConfig, train

EPS = 1e-6  # mmdetection's eps (torchvision and fvcore use 1e-7), in every denominator and clamp
ITERS = 24


def _reduce(
    loss: Tensor, reduction: str = "mean", avg_factor: Tensor | float | None = None
) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / avg_factor if avg_factor is not None else loss.mean()


def smooth_l1(pred: Tensor, target: Tensor, beta: float = 1.0, **reduce: Any) -> Tensor:
    x = (pred - target).abs()  # fvcore's smooth_l1_loss
    return _reduce(torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta), **reduce)


def l1(pred: Tensor, target: Tensor, **reduce: Any) -> Tensor:
    return _reduce((pred - target).abs(), **reduce)


def balanced_l1(
    pred: Tensor,
    target: Tensor,
    alpha: float = 0.5,
    gamma: float = 1.5,
    beta: float = 1.0,
    **reduce: Any,
) -> Tensor:
    x = (pred - target).abs()  # Libra R-CNN, eq. 8 with mmdetection's beta
    b = math.exp(gamma / alpha) - 1
    inside = alpha / b * (b * x + 1) * torch.log(b * x / beta + 1) - alpha * x
    return _reduce(torch.where(x < beta, inside, gamma * x + gamma / b - alpha * beta), **reduce)


def _boxes(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """IoU and the enclosing-box terms of xyxy box pairs."""
    w, h = pred[..., 2] - pred[..., 0], pred[..., 3] - pred[..., 1]
    wg, hg = target[..., 2] - target[..., 0], target[..., 3] - target[..., 1]
    iw = (
        torch.minimum(pred[..., 2], target[..., 2]) - torch.maximum(pred[..., 0], target[..., 0])
    ).clamp(min=0)
    ih = (
        torch.minimum(pred[..., 3], target[..., 3]) - torch.maximum(pred[..., 1], target[..., 1])
    ).clamp(min=0)
    union = w * h + wg * hg - iw * ih
    cw = torch.maximum(pred[..., 2], target[..., 2]) - torch.minimum(pred[..., 0], target[..., 0])
    ch = torch.maximum(pred[..., 3], target[..., 3]) - torch.minimum(pred[..., 1], target[..., 1])
    dx = (pred[..., 0] + pred[..., 2] - target[..., 0] - target[..., 2]) / 2
    dy = (pred[..., 1] + pred[..., 3] - target[..., 1] - target[..., 3]) / 2
    return {
        "iou": iw * ih / (union + EPS), "union": union, "cw": cw, "ch": ch, "dx": dx, "dy": dy,
        "w": w, "h": h, "wg": wg, "hg": hg,
    }  # fmt: skip


def iou(pred: Tensor, target: Tensor, mode: str = "log", **reduce: Any) -> Tensor:
    assert mode == "log"  # UnitBox's -ln(IoU)
    return _reduce(-torch.log(_boxes(pred, target)["iou"].clamp(min=EPS)), **reduce)


def giou(pred: Tensor, target: Tensor, **reduce: Any) -> Tensor:
    g = _boxes(pred, target)  # torchvision's generalized_box_iou_loss
    enclosing = g["cw"] * g["ch"]
    return _reduce(1 - g["iou"] + (enclosing - g["union"]) / (enclosing + EPS), **reduce)


def _diou(g: dict[str, Tensor]) -> Tensor:
    return 1 - g["iou"] + (g["dx"] ** 2 + g["dy"] ** 2) / (g["cw"] ** 2 + g["ch"] ** 2 + EPS)


def diou(pred: Tensor, target: Tensor, **reduce: Any) -> Tensor:
    return _reduce(_diou(_boxes(pred, target)), **reduce)


def ciou(pred: Tensor, target: Tensor, **reduce: Any) -> Tensor:
    g = _boxes(pred, target)  # torchvision's complete_box_iou_loss
    v = 4 / math.pi**2 * (torch.atan(g["wg"] / g["hg"]) - torch.atan(g["w"] / g["h"])) ** 2
    with torch.no_grad():
        alpha = v / (1 - g["iou"] + v + EPS)
    return _reduce(_diou(g) + alpha * v, **reduce)


def eiou(pred: Tensor, target: Tensor, **reduce: Any) -> Tensor:
    g = _boxes(pred, target)  # Zhang et al. 2022, eq. 12
    shape = (g["w"] - g["wg"]) ** 2 / (g["cw"] ** 2 + EPS) + (g["h"] - g["hg"]) ** 2 / (
        g["ch"] ** 2 + EPS
    )
    return _reduce(_diou(g) + shape, **reduce)


def siou(pred: Tensor, target: Tensor, **reduce: Any) -> Tensor:
    g = _boxes(pred, target)  # Gevorgyan 2022 as YOLOv6 / mmdetection: the angle below 45 degrees
    sigma = torch.sqrt(g["dx"] ** 2 + g["dy"] ** 2 + EPS)
    sin_alpha = torch.minimum(g["dx"].abs(), g["dy"].abs()) / sigma
    angle = torch.cos(2 * torch.arcsin(sin_alpha) - math.pi / 2)
    gamma = 2 - angle
    distance = (1 - torch.exp(-gamma * g["dx"] ** 2 / (g["cw"] ** 2 + EPS))) + (
        1 - torch.exp(-gamma * g["dy"] ** 2 / (g["ch"] ** 2 + EPS))
    )
    omega_w = (g["w"] - g["wg"]).abs() / (torch.maximum(g["w"], g["wg"]) + EPS)
    omega_h = (g["h"] - g["hg"]).abs() / (torch.maximum(g["h"], g["hg"]) + EPS)
    shape = (1 - torch.exp(-omega_w)) ** 4 + (1 - torch.exp(-omega_h)) ** 4
    return _reduce(1 - g["iou"] + (distance + shape) / 2, **reduce)


def focal(logits: Tensor, targets: Tensor, alpha: float, gamma: float, **reduce: Any) -> Tensor:
    p = logits.sigmoid()  # torchvision's sigmoid_focal_loss
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return _reduce(alpha_t * ce * (1 - p_t) ** gamma, **reduce)


def bce(logits: Tensor, targets: Tensor, **reduce: Any) -> Tensor:
    return _reduce(F.binary_cross_entropy_with_logits(logits, targets, reduction="none"), **reduce)


def ce(logits: Tensor, labels: Tensor, **reduce: Any) -> Tensor:
    return _reduce(-logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1), **reduce)


def varifocal(logits: Tensor, q: Tensor, **reduce: Any) -> Tensor:
    p = logits.sigmoid()  # mmdetection's varifocal_loss, alpha 0.75, gamma 2, IoU-weighted
    weight = q * (q > 0) + 0.75 * (p - q).abs() ** 2 * (q <= 0)
    return _reduce(
        F.binary_cross_entropy_with_logits(logits, q, reduction="none") * weight, **reduce
    )


def qfl(logits: Tensor, q: Tensor, **reduce: Any) -> Tensor:
    scale = (logits.sigmoid() - q).abs() ** 2  # Generalized Focal Loss, eq. 5, beta 2
    bce_q = F.binary_cross_entropy_with_logits(logits, q, reduction="none")
    return _reduce((scale * bce_q).sum(-1), **reduce)


def rpn(
    objectness: Tensor, labels: Tensor, pred: Tensor, target: Tensor, sigma: float
) -> dict[str, Tensor]:
    """Faster R-CNN's RPN loss as py-faster-rcnn: both terms over the sampled anchors."""
    sampled = labels >= 0
    count = sampled.sum().clamp(min=1)
    cls = F.binary_cross_entropy_with_logits(
        objectness[sampled], labels[sampled].to(objectness.dtype), reduction="sum"
    )
    positive = (labels == 1)[:, None].to(pred.dtype)
    reg = (smooth_l1(pred, target, 1 / sigma**2, reduction="none") * positive).sum()
    return {"loss_cls": cls / count, "loss_reg": reg / count}


def fast_rcnn(
    logits: Tensor, labels: Tensor, pred: Tensor, target: Tensor, reg_loss: Any, lambda_: float
) -> dict[str, Tensor]:
    """torchvision's fastrcnn_loss with a pluggable box loss; background is the last class."""
    num_rois, classes = logits.shape
    foreground = labels < classes - 1
    slot = labels.clamp(max=classes - 2)
    chosen = pred.reshape(num_rois, classes - 1, 4)[torch.arange(num_rois), slot]
    per_box = reg_loss(chosen, target, reduction="none")
    per_box = per_box.sum(-1) if per_box.dim() > 1 else per_box
    reg = (per_box * foreground).sum() / num_rois
    return {"loss_cls": F.cross_entropy(logits, labels), "loss_reg": lambda_ * reg}


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "smooth_l1": smooth_l1, "l1": l1, "balanced_l1": balanced_l1, "iou": iou, "giou": giou,
    "diou": diou, "ciou": ciou, "eiou": eiou, "siou": siou, "focal": focal, "bce": bce, "ce": ce,
    "varifocal": varifocal, "qfl": qfl, "rpn": rpn, "fast_rcnn": fast_rcnn,
}  # fmt: skip
REFERENCE: LossTable = {
    name: LossSpec(_FUNCTIONS[name], spec.role, spec.kwargs) for name, spec in LOSSES.items()
}


def test_reference_covers_the_table() -> None:
    assert set(_FUNCTIONS) == set(LOSSES)


@pytest.fixture(scope="module")
def tiny() -> data.DetectionSet:
    return data.synthetic(16, seed=7)


def _config(detector: str, reg: str, cls: str, **kwargs: Any) -> TrainConfig:
    return TrainConfig(detector, reg, cls, seed=0, iters=ITERS, batch_size=4, warmup=4, **kwargs)


@pytest.mark.parametrize(
    ("detector", "reg", "cls"),
    [
        ("onestage", "smooth_l1", "focal"),
        ("onestage", "l1", "bce"),
        ("onestage", "balanced_l1", "ce"),
        ("onestage", "iou", "focal"),
        ("onestage", "giou", "varifocal"),
        ("onestage", "diou", "qfl"),
        ("onestage", "ciou", "focal"),
        ("onestage", "eiou", "ce"),
        ("onestage", "siou", "focal"),
        ("twostage", "smooth_l1", "focal"),
        ("twostage", "giou", "focal"),
    ],
)
def test_loss_curves_match_the_reference_formulas(
    tiny: data.DetectionSet, detector: str, reg: str, cls: str
) -> None:
    config = _config(detector, reg, cls, float64=True)
    ours = train(config, tiny)
    reference = train(config, tiny, table=REFERENCE)
    for name, curve in ours.losses.items():
        torch.testing.assert_close(
            torch.tensor(curve), torch.tensor(reference.losses[name]), rtol=1e-5, atol=1e-5
        )
    total = ours.losses["total"]
    assert sum(total[-4:]) < 0.9 * sum(total[:4]), "the runs did not train"


def test_a_wrong_reference_is_caught(tiny: data.DetectionSet) -> None:
    """The parity check can fail: GIoU against DIoU's formula departs beyond the tolerance."""
    config = _config("onestage", "giou", "focal", float64=True)
    wrong = dict(REFERENCE) | {"giou": LossSpec(diou, "boxes")}
    ours = train(config, tiny)
    other = train(config, tiny, table=wrong)
    difference = max(
        abs(a - b) for a, b in zip(ours.losses["reg"], other.losses["reg"], strict=True)
    )
    assert difference > 1e-3


@pytest.mark.parametrize("detector", ["onestage", "twostage"])
def test_bf16_autocast_trains_close_to_float32(tiny: data.DetectionSet, detector: str) -> None:
    """bf16 autocast: every loss finite, no skipped step, and the mean total loss over the run
    within 5% of float32's (bf16 keeps 8 bits of mantissa: ~0.4% per rounding)."""
    full = train(_config(detector, "giou", "focal"), tiny)
    half = train(_config(detector, "giou", "focal", amp="bf16"), tiny)
    assert half.skipped == 0
    for curve in half.losses.values():
        assert all(math.isfinite(v) for v in curve)
    mean_full = sum(full.losses["total"]) / ITERS
    mean_half = sum(half.losses["total"]) / ITERS
    assert abs(mean_half - mean_full) < 0.05 * mean_full
