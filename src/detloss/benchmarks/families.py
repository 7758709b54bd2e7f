"""The benchmarked loss families: inputs at detection-head sizes, detloss's call and its peers'.

Every implementation of a family takes the same positional inputs and returns the same scalar
loss (``tests/test_bench.py`` checks it), so their times compare the same work. The first input is
the one that requires a gradient. Only detloss's public functional API is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import detloss

try:
    import fvcore.nn as fvcore_nn
except ImportError:  # the ``bench`` extra installs it; without it, its rows are left out
    fvcore_nn = None

Loss = Callable[..., Tensor]
MakeInputs = Callable[[tuple[int, ...], torch.Generator], tuple[Any, ...]]

BETA = 1 / 9
EPS = 1e-7  # torchvision's and fvcore's eps for the IoU losses
ALPHA, GAMMA = 0.25, 2.0


@dataclass(frozen=True)
class Impl:
    """One implementation of a family's loss: detloss's own, or a peer (fvcore's needs fvcore)."""

    name: str
    fn: Loss
    detloss: bool = False
    fvcore: bool = False


@dataclass(frozen=True)
class Family:
    """A loss at a detection-head ``shape`` (``quick_shape`` for ``--quick``)."""

    name: str
    title: str
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    make: MakeInputs
    impls: tuple[Impl, ...]


# Inputs ----------------------------------------------------------------------------------------


def regression_inputs(shape: tuple[int, ...], g: torch.Generator) -> tuple[Any, ...]:
    """Box deltas, a per-element weight with 1 on a quarter of the rows, avg_factor = those rows."""
    target = torch.randn(shape, generator=g)
    pred = target + 0.2 * torch.randn(shape, generator=g)
    positive = torch.rand(shape[0], 1, generator=g) < 0.25
    weight = positive.float().expand(shape).contiguous()
    return pred, target, weight, float(max(int(positive.sum()), 1))


def box_inputs(shape: tuple[int, ...], g: torch.Generator) -> tuple[Any, ...]:
    """Overlapping xyxy box pairs: each prediction is its target moved and rescaled a little."""
    n = shape[0]
    xy = torch.rand(n, 2, generator=g) * 512
    wh = torch.rand(n, 2, generator=g) * 120 + 8
    centre = xy + wh / 2 + 0.15 * wh * torch.randn(n, 2, generator=g)
    size = wh * torch.exp(0.25 * torch.randn(n, 2, generator=g))
    pred = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    return pred, torch.cat([xy, xy + wh], dim=1)


def focal_inputs(shape: tuple[int, ...], g: torch.Generator) -> tuple[Any, ...]:
    """Logits, one-hot targets on 2% of the rows, avg_factor = the number of those rows."""
    n, classes = shape
    logits = torch.randn(shape, generator=g)
    rows = (torch.rand(n, generator=g) < 0.02).nonzero().squeeze(1)
    targets = torch.zeros(shape)
    targets[rows, torch.randint(0, classes, (len(rows),), generator=g)] = 1.0
    return logits, targets, float(max(len(rows), 1))


def class_inputs(shape: tuple[int, ...], g: torch.Generator) -> tuple[Any, ...]:
    """Logits and int64 labels."""
    return torch.randn(shape, generator=g), torch.randint(0, shape[1], (shape[0],), generator=g)


# Weighted Smooth L1, sum / avg_factor -----------------------------------------------------------


def detloss_smooth_l1(pred: Tensor, target: Tensor, weight: Tensor, avg: float) -> Tensor:
    return detloss.smooth_l1_loss(pred, target, BETA, weight=weight, avg_factor=avg)


def native_smooth_l1(pred: Tensor, target: Tensor, weight: Tensor, avg: float) -> Tensor:
    return (F.smooth_l1_loss(pred, target, reduction="none", beta=BETA) * weight).sum() / avg


def fvcore_smooth_l1(pred: Tensor, target: Tensor, weight: Tensor, avg: float) -> Tensor:
    loss: Tensor = fvcore_nn.smooth_l1_loss(pred, target, BETA)
    return (loss * weight).sum() / avg


def mmdet_smooth_l1(pred: Tensor, target: Tensor, weight: Tensor, avg: float) -> Tensor:
    """mmdetection's ``smooth_l1_loss`` and its weighted reduction, written out."""
    diff = torch.abs(pred - target)
    loss = torch.where(diff < BETA, 0.5 * diff * diff / BETA, diff - 0.5 * BETA)
    return (loss * weight).sum() / avg


# GIoU and CIoU, mean ---------------------------------------------------------------------------


def _torchvision_iou(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
    """torchvision's ``_loss_inter_union`` then IoU: (iou, union, enclosing box corners)."""
    x1, y1, x2, y2 = pred.unbind(dim=-1)
    x1g, y1g, x2g, y2g = target.unbind(dim=-1)
    xi1, yi1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xi2, yi2 = torch.min(x2, x2g), torch.min(y2, y2g)
    inter = torch.zeros_like(x1)
    mask = (yi2 > yi1) & (xi2 > xi1)
    inter[mask] = (xi2[mask] - xi1[mask]) * (yi2[mask] - yi1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    enclosing = [torch.min(x1, x1g), torch.min(y1, y1g), torch.max(x2, x2g), torch.max(y2, y2g)]
    return inter / (union + EPS), union, enclosing


def torchvision_giou(pred: Tensor, target: Tensor) -> Tensor:
    """``torchvision.ops.generalized_box_iou_loss(pred, target, "mean", eps=1e-7)`` written out."""
    iou, union, (xc1, yc1, xc2, yc2) = _torchvision_iou(pred, target)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    return (1 - (iou - (area_c - union) / (area_c + EPS))).mean()


def torchvision_ciou(pred: Tensor, target: Tensor) -> Tensor:
    """``torchvision.ops.complete_box_iou_loss(pred, target, "mean", eps=1e-7)`` written out."""
    iou, _, (xc1, yc1, xc2, yc2) = _torchvision_iou(pred, target)
    diagonal2 = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + EPS
    x1, y1, x2, y2 = pred.unbind(dim=-1)
    x1g, y1g, x2g, y2g = target.unbind(dim=-1)
    centres2 = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
    diou = 1 - iou + centres2 / diagonal2
    v = (4 / math.pi**2) * torch.pow(
        torch.atan((x2g - x1g) / (y2g - y1g)) - torch.atan((x2 - x1) / (y2 - y1)), 2
    )
    with torch.no_grad():
        alpha = v / (1 - iou + v + EPS)
    return (diou + alpha * v).mean()


def detloss_giou(pred: Tensor, target: Tensor) -> Tensor:
    return detloss.giou_loss(pred, target, reduction="mean")


def detloss_ciou(pred: Tensor, target: Tensor) -> Tensor:
    return detloss.ciou_loss(pred, target, reduction="mean")


def fvcore_giou(pred: Tensor, target: Tensor) -> Tensor:
    loss: Tensor = fvcore_nn.giou_loss(pred, target, reduction="mean")
    return loss


# Sigmoid focal loss, sum / num_pos; cross-entropy, mean ---------------------------------------


def detloss_focal(logits: Tensor, targets: Tensor, avg: float) -> Tensor:
    return detloss.sigmoid_focal_loss(logits, targets, ALPHA, GAMMA, avg_factor=avg)


def fvcore_focal(logits: Tensor, targets: Tensor, avg: float) -> Tensor:
    loss: Tensor = fvcore_nn.sigmoid_focal_loss(logits, targets, ALPHA, GAMMA, reduction="sum")
    return loss / avg


def detloss_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return detloss.cross_entropy(logits, labels, reduction="mean")


def native_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels)


def fvcore_version() -> str | None:
    """fvcore's version, or ``None`` where it is not installed."""
    return None if fvcore_nn is None else version("fvcore")


def _family(
    name: str,
    title: str,
    shape: tuple[int, ...],
    quick_shape: tuple[int, ...],
    make: MakeInputs,
    *impls: Impl,
) -> Family:
    """A family with the implementations available here (fvcore's only where it imports)."""
    usable = tuple(impl for impl in impls if fvcore_nn is not None or not impl.fvcore)
    return Family(name, title, shape, quick_shape, make, usable)


FAMILIES: tuple[Family, ...] = (
    _family(
        "smooth_l1",
        "weighted Smooth L1, beta 1/9, sum / avg_factor",
        (200_000, 4),
        (2_000, 4),
        regression_inputs,
        Impl("detloss", detloss_smooth_l1, detloss=True),
        Impl("F.smooth_l1_loss", native_smooth_l1),
        Impl("fvcore", fvcore_smooth_l1, fvcore=True),
        Impl("mmdetection formula", mmdet_smooth_l1),
    ),
    _family(
        "giou",
        "GIoU loss, xyxy box pairs, mean",
        (20_000, 4),
        (500, 4),
        box_inputs,
        Impl("detloss", detloss_giou, detloss=True),
        Impl("torchvision formula", torchvision_giou),
        Impl("fvcore", fvcore_giou, fvcore=True),
    ),
    _family(
        "ciou",
        "CIoU loss, xyxy box pairs, mean",
        (20_000, 4),
        (500, 4),
        box_inputs,
        Impl("detloss", detloss_ciou, detloss=True),
        Impl("torchvision formula", torchvision_ciou),
    ),
    _family(
        "focal",
        "sigmoid focal loss, alpha 0.25, gamma 2, 2% positive rows, sum / num_pos",
        (100_000, 80),
        (1_000, 80),
        focal_inputs,
        Impl("detloss", detloss_focal, detloss=True),
        Impl("fvcore", fvcore_focal, fvcore=True),
    ),
    _family(
        "cross_entropy",
        "softmax cross-entropy, 81 classes, mean",
        (100_000, 81),
        (1_000, 81),
        class_inputs,
        Impl("detloss", detloss_cross_entropy, detloss=True),
        Impl("F.cross_entropy", native_cross_entropy),
    ),
)
"""Every family, in the order of the tables."""
