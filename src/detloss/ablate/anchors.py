"""Anchors on a feature grid, IoU matching of anchors to ground truth, and non-maximum suppression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

import detloss

Targets = tuple[list[Tensor], list[Tensor]]
"""Per image: boxes ``(k, 4)`` xyxy and labels ``(k,)``."""
Detections = list[tuple[Tensor, Tensor, Tensor]]
"""Per image: boxes ``(n, 4)``, scores ``(n,)``, labels ``(n,)``."""

IGNORED = -2
"""Matched index of an anchor between the negative and positive IoU thresholds."""
NEGATIVE = -1


def grid_anchors(
    height: int, width: int, stride: int, sizes: Sequence[float], ratios: Sequence[float]
) -> Tensor:
    """``(height * width * A, 4)`` xyxy anchors, ``A = len(sizes) * len(ratios)`` per cell, centred
    on the cells (location-major: the A anchors of a cell are consecutive). ``ratio = h / w``."""
    shapes = torch.tensor(
        [(s / r**0.5, s * r**0.5) for s in sizes for r in ratios], dtype=torch.float32
    )
    ys, xs = torch.meshgrid(
        (torch.arange(height) + 0.5) * stride, (torch.arange(width) + 0.5) * stride, indexing="ij"
    )
    centres = torch.stack((xs, ys), dim=-1).reshape(-1, 1, 2)
    half = shapes.reshape(1, -1, 2) / 2
    return torch.cat((centres - half, centres + half), dim=-1).reshape(-1, 4)


def match(
    anchors: Tensor,
    boxes: list[Tensor],
    positive: float,
    negative: float,
    *,
    low_quality: bool = True,
) -> Tensor:
    """``(B, N)``: the index in ``boxes[b]`` of the box anchor ``n`` of image ``b`` is assigned
    to: ``>= 0`` when its best IoU is ``>= positive``, :data:`NEGATIVE` below ``negative``,
    :data:`IGNORED` in between. ``anchors`` is ``(N, 4)``, or ``(B, N, 4)`` for one set per image.

    With ``low_quality`` (RetinaNet, Faster R-CNN's RPN) every box also gets the anchors of its
    highest IoU, so a box that no anchor covers well still has positives.
    """
    batch, most = len(boxes), max((len(b) for b in boxes), default=0)
    anchors = anchors.expand(batch, -1, -1)
    if most == 0:
        return torch.full(anchors.shape[:2], NEGATIVE, dtype=torch.int64, device=anchors.device)
    # One IoU call for the batch: boxes padded to `most` per image, padding masked to IoU -1.
    padded = anchors.new_zeros(batch, most, 4)
    valid = torch.zeros(batch, most, dtype=torch.bool, device=anchors.device)
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
        valid[i, : len(b)] = True
    shape = (batch, anchors.shape[1], most, 4)
    iou = detloss.box_iou(
        anchors[:, :, None].expand(shape), padded[:, None].expand(shape), aligned=True
    ).masked_fill(~valid[:, None], -1)
    best, index = iou.max(dim=2)
    matched = torch.where(best >= positive, index, IGNORED)
    matched = torch.where(best < negative, NEGATIVE, matched)
    if low_quality:
        best_per_box = iou.max(dim=1, keepdim=True).values
        is_best = (iou == best_per_box) & (best_per_box > 0)
        image, anchor, box = torch.nonzero(is_best, as_tuple=True)
        matched[image, anchor] = box
    return matched


def assigned(values: Tensor, matched: Tensor, fill: float | Sequence[float]) -> Tensor:
    """``values[matched]`` where ``matched >= 0``, ``fill`` (one row of ``values``) elsewhere."""
    filler = torch.tensor(fill, dtype=values.dtype, device=values.device).reshape(
        1, *values.shape[1:]
    )
    extended = torch.cat((values, filler))
    return extended[torch.where(matched >= 0, matched, len(values))]


def nms(boxes: Tensor, scores: Tensor, threshold: float) -> Tensor:
    """Indices of the boxes greedy NMS keeps, by decreasing score.

    Greedy NMS keeps box ``i`` (in score order) iff no kept box before it overlaps it by more than
    ``threshold``. Starting from "keep all", each sweep below settles at least the next box of
    that recursion, so it ends at greedy NMS's answer, after as many sweeps as the longest chain
    of suppressions (a few), each one matrix operation.
    """
    order = scores.argsort(descending=True)
    ordered = boxes[order]
    suppresses = (detloss.box_iou(ordered, ordered) > threshold).triu(diagonal=1)
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    while True:
        settled = ~(suppresses & keep[:, None]).any(dim=0)
        if torch.equal(settled, keep):
            return order[keep]
        keep = settled


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, threshold: float) -> Tensor:
    """NMS within each class: boxes of different classes are moved apart so they never overlap."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    offset = classes.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, threshold)


def select_detections(
    boxes: Tensor,
    scores: Tensor,
    *,
    score_threshold: float,
    pre_nms: int,
    nms_threshold: float,
    max_detections: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Boxes, scores and labels of one image from ``boxes (N, 4)`` or ``(N, C, 4)`` (per class) and
    ``scores (N, C)``: the ``pre_nms`` best above ``score_threshold``, class-wise NMS, the best
    ``max_detections``."""
    flat = scores.reshape(-1)
    candidates = torch.nonzero(flat > score_threshold).squeeze(1)
    top = flat[candidates].topk(min(pre_nms, candidates.numel())).indices
    candidates = candidates[top]
    rows, labels = candidates // scores.shape[1], candidates % scores.shape[1]
    chosen = boxes[rows] if boxes.dim() == 2 else boxes[rows, labels]
    keep = batched_nms(chosen, flat[candidates], labels, nms_threshold)[:max_detections]
    return chosen[keep], flat[candidates][keep], labels[keep]
