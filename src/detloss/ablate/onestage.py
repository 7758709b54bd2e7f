"""A RetinaNet-style one-stage detector (Lin et al., ICCV 2017) in miniature.

One stride-8 feature map, 9 anchors per cell (3 sizes x 3 aspect ratios), a classification and a
regression tower of two convolutions each, then per anchor ``C`` class logits (``C + 1`` for a
softmax loss) and 4 box deltas.
Anchors are positive at IoU >= 0.5 with a box (and every box's best anchors), negative below
0.4, ignored in between. The losses come from :mod:`detloss.ablate.losses`: a regression loss on
encoded deltas or on decoded boxes, a classification loss on one-hot, class-index or IoU-quality
targets, both divided by the number of positives averaged over the distributed ranks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import detloss
from detloss.ablate.anchors import Detections, Targets, grid_anchors, match, select_detections
from detloss.ablate.backbone import STRIDE, Backbone, conv_block
from detloss.ablate.losses import LossSpec, avg_factor

ANCHOR_SIZES = (0.125, 0.25, 0.5)
"""Anchor sizes (square roots of the areas) as fractions of the image size."""
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
PRIOR = 0.01
"""Initial foreground probability of every anchor (the focal loss paper's bias initialisation)."""
BOX_LOSS_WEIGHT = 2.0
"""Weight of losses on decoded boxes (mmdetection's RetinaNet/ATSS GIoU configs); deltas: 1."""


class OneStageDetector(nn.Module):
    """Dense detector for ``size x size`` images; ``forward`` returns the losses when given
    targets, else the detections."""

    def __init__(self, num_classes: int, size: int, reg_loss: LossSpec, cls_loss: LossSpec) -> None:
        super().__init__()
        if reg_loss.role not in ("deltas", "boxes"):
            raise ValueError(f"reg_loss must be a deltas or boxes loss, not {reg_loss.role}")
        if cls_loss.role not in ("onehot", "index", "quality"):
            raise ValueError(f"cls_loss must be a dense classification loss, not {cls_loss.role}")
        self.num_classes = num_classes
        self.size = size
        self.reg_loss = reg_loss
        self.cls_loss = cls_loss
        self.softmax = cls_loss.role == "index"
        self.coder = detloss.DeltaXYWHCoder()
        grid = size // STRIDE
        sizes = [f * size for f in ANCHOR_SIZES]
        self.anchors: Tensor
        self.register_buffer("anchors", grid_anchors(grid, grid, STRIDE, sizes, ANCHOR_RATIOS))
        self.num_anchors = len(ANCHOR_SIZES) * len(ANCHOR_RATIOS)
        self.num_logits = num_classes + self.softmax

        self.backbone = Backbone()
        width = self.backbone.channels
        self.cls_tower = nn.Sequential(conv_block(width, width), conv_block(width, width))
        self.reg_tower = nn.Sequential(conv_block(width, width), conv_block(width, width))
        self.cls_head = nn.Conv2d(width, self.num_anchors * self.num_logits, 3, padding=1)
        self.reg_head = nn.Conv2d(width, self.num_anchors * 4, 3, padding=1)
        nn.init.normal_(self.cls_head.weight, std=0.01)
        nn.init.normal_(self.reg_head.weight, std=0.01)
        nn.init.zeros_(self.reg_head.bias)  # type: ignore[arg-type]
        bias = self.cls_head.bias.data.view(self.num_anchors, self.num_logits)  # type: ignore[union-attr]
        if self.softmax:  # softmax(0, ..., 0, b) puts 1 - PRIOR on the background
            bias.zero_()[:, -1] = math.log((1 - PRIOR) * num_classes / PRIOR)
        else:
            bias.fill_(-math.log((1 - PRIOR) / PRIOR))

    def head(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, N, num_logits)`` and deltas ``(B, N, 4)`` of the ``N`` anchors."""
        features = self.backbone(images)
        b = images.shape[0]
        logits = self.cls_head(self.cls_tower(features))
        deltas = self.reg_head(self.reg_tower(features))
        logits = logits.permute(0, 2, 3, 1).reshape(b, -1, self.num_logits)
        deltas = deltas.permute(0, 2, 3, 1).reshape(b, -1, 4)
        return logits, deltas

    def forward(
        self, images: Tensor, targets: Targets | None = None
    ) -> dict[str, Tensor] | Detections:
        logits, deltas = self.head(images)
        if targets is None:
            return self.detect(logits, deltas)
        return self.losses(logits, deltas, *targets)

    def losses(
        self, logits: Tensor, deltas: Tensor, boxes: list[Tensor], labels: list[Tensor]
    ) -> dict[str, Tensor]:
        """``{"cls": ..., "reg": ...}``, each divided by the global mean number of positives."""
        anchors = self.anchors
        matched = match(anchors, boxes, POSITIVE_IOU, NEGATIVE_IOU)
        positive = (matched >= 0).reshape(-1)
        valid = (matched >= -1).reshape(-1)
        average = avg_factor(positive.sum())
        # Per positive anchor: image, anchor, matched box and label.
        image, anchor = torch.nonzero(matched >= 0, as_tuple=True)
        index = matched[image, anchor]
        pos_gt = torch.cat([b[index[image == i]] for i, b in enumerate(boxes)]).to(deltas.dtype)
        pos_labels = torch.cat([lab[index[image == i]] for i, lab in enumerate(labels)])
        pos_anchors = anchors[anchor]
        pos_deltas = deltas[image, anchor]

        if self.reg_loss.role == "deltas":
            encoded = self.coder.encode(pos_anchors, pos_gt).to(deltas.dtype)
            reg = self.reg_loss(pos_deltas, encoded, avg_factor=average)
        else:
            decoded = self.coder.decode(pos_anchors, pos_deltas)
            reg = BOX_LOSS_WEIGHT * self.reg_loss(decoded, pos_gt, avg_factor=average)

        flat_logits = logits.reshape(-1, self.num_logits)[valid]
        rows = torch.nonzero(positive[valid]).squeeze(1)
        if self.cls_loss.role == "index":
            target = torch.full((flat_logits.shape[0],), self.num_classes, dtype=torch.int64)
            target[rows] = pos_labels
        else:
            target = torch.zeros_like(flat_logits)
            score: Tensor | float = 1.0
            if self.cls_loss.role == "quality":
                predicted = self.coder.decode(pos_anchors, pos_deltas.detach())
                score = detloss.box_iou(predicted, pos_gt, aligned=True).to(target.dtype)
            target[rows, pos_labels] = score
        cls = self.cls_loss(flat_logits, target, avg_factor=average)
        return {"cls": cls, "reg": reg}

    @torch.no_grad()
    def detect(self, logits: Tensor, deltas: Tensor) -> Detections:
        """The best 100 boxes of each image after class-wise NMS at IoU 0.5."""
        scores = logits.float().softmax(-1)[..., :-1] if self.softmax else logits.float().sigmoid()
        boxes = self.coder.decode(self.anchors, deltas.float(), max_shape=(self.size, self.size))
        return [
            select_detections(
                b, s, score_threshold=0.05, pre_nms=300, nms_threshold=0.5, max_detections=100
            )
            for b, s in zip(boxes, scores, strict=True)
        ]
