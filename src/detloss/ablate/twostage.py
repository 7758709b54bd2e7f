"""A Faster R-CNN-style two-stage detector (Ren et al., NeurIPS 2015) in miniature.

The RPN scores and regresses 9 anchors per cell of the stride-8 feature map; its best proposals
(after NMS at IoU 0.7), with the ground-truth boxes added in training, are pooled by RoIAlign
into 4x4 features, and a two-layer head classifies them (``C`` classes + background, last) and
regresses one box per class. Training samples 256 anchors per image (at most half positive:
IoU >= 0.7, or a box's best anchor; negative below 0.3) and 32 RoIs per image (at most a quarter
foreground: IoU >= 0.5).

Losses: :func:`detloss.rpn_loss` with Caffe's ``sigma = 3`` (py-faster-rcnn's SmoothL1Loss
layer with inside weights on the positives and outside weights 1 / the sampled anchors), and
:func:`detloss.fast_rcnn_loss` with the swappable box loss: on deltas encoded with
torchvision's weights (10, 10, 5, 5), or on the decoded boxes of every class.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import detloss
from detloss.ablate.anchors import (
    IGNORED,
    Detections,
    Targets,
    assigned,
    grid_anchors,
    match,
    nms,
    select_detections,
)
from detloss.ablate.backbone import STRIDE, Backbone
from detloss.ablate.losses import LossSpec
from detloss.ablate.onestage import ANCHOR_RATIOS, ANCHOR_SIZES
from detloss.ablate.roi_align import roi_align

RPN_IOU = (0.7, 0.3)
RPN_SAMPLES, RPN_POSITIVE_FRACTION = 256, 0.5
PROPOSALS_PRE_NMS, PROPOSALS = 150, (64, 50)
"""Proposals per image scored before NMS, and kept after it (training, testing)."""
ROI_FOREGROUND_IOU = 0.5
ROI_SAMPLES, ROI_POSITIVE_FRACTION = 32, 0.25
POOL, HIDDEN = 4, 128
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
UNIT_BOX = (0.0, 0.0, 1.0, 1.0)
"""The regression target of samples without a box: any finite box (their loss is masked)."""
BOX_LOSS_WEIGHT = 10.0
"""Weight of losses on decoded boxes in the RoI head (mmdetection's Faster R-CNN IoU configs)."""

__all__ = ["TwoStageDetector"]


def sample(labels: Tensor, count: int, positive_fraction: float) -> Tensor:
    """``labels`` (1 positive, 0 negative, -1 ignored) with all but a random ``count`` set to -1,
    at most ``positive_fraction`` of them positive."""
    positive = torch.nonzero(labels == 1).squeeze(1)
    negative = torch.nonzero(labels == 0).squeeze(1)
    num_pos = min(positive.numel(), int(count * positive_fraction))
    num_neg = min(negative.numel(), count - num_pos)
    keep = torch.cat(
        (
            positive[torch.randperm(positive.numel(), device=labels.device)[:num_pos]],
            negative[torch.randperm(negative.numel(), device=labels.device)[:num_neg]],
        )
    )
    sampled = torch.full_like(labels, -1)
    sampled[keep] = labels[keep]
    return sampled


class TwoStageDetector(nn.Module):
    """RPN + RoI head for ``size x size`` images; ``forward`` returns the losses when given
    targets, else the detections."""

    def __init__(
        self,
        num_classes: int,
        size: int,
        reg_loss: LossSpec,
        rpn_loss: LossSpec,
        roi_loss: LossSpec,
    ) -> None:
        super().__init__()
        if reg_loss.role not in ("deltas", "boxes"):
            raise ValueError(f"reg_loss must be a deltas or boxes loss, not {reg_loss.role}")
        self.num_classes = num_classes
        self.size = size
        self.reg_loss, self.rpn_loss, self.roi_loss = reg_loss, rpn_loss, roi_loss
        self.rpn_coder = detloss.DeltaXYWHCoder()
        self.head_coder = detloss.DeltaXYWHCoder.from_weights(HEAD_WEIGHTS)
        grid = size // STRIDE
        sizes = [f * size for f in ANCHOR_SIZES]
        self.anchors: Tensor
        self.register_buffer("anchors", grid_anchors(grid, grid, STRIDE, sizes, ANCHOR_RATIOS))
        num_anchors = len(ANCHOR_SIZES) * len(ANCHOR_RATIOS)

        self.backbone = Backbone()
        width = self.backbone.channels
        self.rpn_conv = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.rpn_objectness = nn.Conv2d(width, num_anchors, 1)
        self.rpn_deltas = nn.Conv2d(width, num_anchors * 4, 1)
        self.roi_head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * POOL * POOL, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
        )
        self.roi_logits = nn.Linear(HIDDEN, num_classes + 1)
        self.roi_deltas = nn.Linear(HIDDEN, num_classes * 4)
        for layer, std in (
            (self.rpn_objectness, 0.01),
            (self.rpn_deltas, 0.01),
            (self.roi_logits, 0.01),
            (self.roi_deltas, 0.001),
        ):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)  # type: ignore[arg-type]

    def forward(
        self, images: Tensor, targets: Targets | None = None
    ) -> dict[str, Tensor] | Detections:
        features = self.backbone(images)
        hidden = self.rpn_conv(features)
        b = images.shape[0]
        objectness = self.rpn_objectness(hidden).permute(0, 2, 3, 1).reshape(b, -1)
        deltas = self.rpn_deltas(hidden).permute(0, 2, 3, 1).reshape(b, -1, 4)
        proposals = self.proposals(
            objectness.detach(), deltas.detach(), training=targets is not None
        )
        if targets is None:
            return self.detect(features, proposals)
        boxes, labels = targets
        losses = self.rpn_losses(objectness, deltas, boxes)
        return losses | self.roi_losses(features, proposals, boxes, labels)

    def proposals(self, objectness: Tensor, deltas: Tensor, *, training: bool) -> list[Tensor]:
        """Per image, the best-scored decoded anchors that survive NMS at IoU 0.7."""
        keep = PROPOSALS[0] if training else PROPOSALS[1]
        result = []
        for scores, image_deltas in zip(objectness.float(), deltas.float(), strict=True):
            top = scores.topk(PROPOSALS_PRE_NMS).indices
            boxes = self.rpn_coder.decode(
                self.anchors[top], image_deltas[top], max_shape=(self.size, self.size)
            )
            sizes = boxes[:, 2:] - boxes[:, :2]
            boxes, kept_scores = boxes[(sizes > 1).all(1)], scores[top][(sizes > 1).all(1)]
            result.append(boxes[nms(boxes, kept_scores, RPN_IOU[0])[:keep]].to(deltas.dtype))
        return result

    def rpn_losses(
        self, objectness: Tensor, deltas: Tensor, boxes: list[Tensor]
    ) -> dict[str, Tensor]:
        """:func:`detloss.rpn_loss` over the sampled anchors of the batch."""
        matched = match(self.anchors, boxes, *RPN_IOU)
        labels = (matched >= 0).long() - (matched == IGNORED).long()  # 1, 0 or -1 (ignored)
        sampled = [sample(image, RPN_SAMPLES, RPN_POSITIVE_FRACTION) for image in labels]
        targets = [
            self.rpn_coder.encode(self.anchors, assigned(gt, m, UNIT_BOX))
            for gt, m in zip(boxes, matched, strict=True)
        ]
        losses = self.rpn_loss(
            objectness.reshape(-1),
            torch.cat(sampled),
            deltas.reshape(-1, 4),
            torch.cat(targets).to(deltas.dtype),
        )
        return {"rpn_cls": losses["loss_cls"], "rpn_reg": losses["loss_reg"]}

    def roi_losses(
        self, features: Tensor, proposals: list[Tensor], boxes: list[Tensor], labels: list[Tensor]
    ) -> dict[str, Tensor]:
        """:func:`detloss.fast_rcnn_loss` over the sampled RoIs of the batch."""
        rois, roi_labels, roi_boxes = [], [], []
        for props, gt, gt_labels in zip(proposals, boxes, labels, strict=True):
            candidates = torch.cat((props, gt.to(props.dtype)))
            matched = match(
                candidates, [gt], ROI_FOREGROUND_IOU, ROI_FOREGROUND_IOU, low_quality=False
            )[0]
            keep = sample((matched >= 0).long(), ROI_SAMPLES, ROI_POSITIVE_FRACTION) >= 0
            rois.append(candidates[keep])
            roi_labels.append(assigned(gt_labels, matched[keep], self.num_classes))
            roi_boxes.append(assigned(gt, matched[keep], UNIT_BOX))
        logits, deltas = self.roi_outputs(features, rois)
        proposal, target = torch.cat(rois), torch.cat(roi_boxes).to(deltas.dtype)
        if self.reg_loss.role == "deltas":
            pred, lambda_ = deltas, 1.0
            target = self.head_coder.encode(proposal, target).to(deltas.dtype)
        else:
            per_class = deltas.reshape(-1, self.num_classes, 4)
            pred = self.head_coder.decode(proposal[:, None], per_class).reshape(deltas.shape)
            lambda_ = BOX_LOSS_WEIGHT
        losses = self.roi_loss(
            logits, torch.cat(roi_labels), pred, target, reg_loss=self.reg_loss, lambda_=lambda_
        )
        return {"roi_cls": losses["loss_cls"], "roi_reg": losses["loss_reg"]}

    def roi_outputs(self, features: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits ``(R, C + 1)`` and per-class deltas ``(R, 4 C)`` of the regions."""
        hidden = self.roi_head(roi_align(features, rois, POOL, STRIDE))
        return self.roi_logits(hidden), self.roi_deltas(hidden)

    @torch.no_grad()
    def detect(self, features: Tensor, proposals: list[Tensor]) -> Detections:
        """The best 100 boxes of each image after class-wise NMS at IoU 0.5."""
        logits, deltas = self.roi_outputs(features, proposals)
        scores = logits.float().softmax(-1)[:, :-1]
        proposal = torch.cat(proposals).float()
        boxes = self.head_coder.decode(
            proposal[:, None],
            deltas.float().reshape(-1, self.num_classes, 4),
            max_shape=(self.size, self.size),
        )
        counts = [len(p) for p in proposals]
        return [
            select_detections(
                b, s, score_threshold=0.05, pre_nms=300, nms_threshold=0.5, max_detections=100
            )
            for b, s in zip(torch.split(boxes, counts), torch.split(scores, counts), strict=True)
        ]
