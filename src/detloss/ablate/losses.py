"""The one table of the losses the ablation trains with: name -> detloss callable and how it is fed.

Every detloss function the detectors call is reached through :data:`LOSSES`, so a renamed loss is
a one-line change here. The parity tests build the same table from reference formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

import detloss

Role = Literal["deltas", "boxes", "onehot", "index", "quality", "rpn", "roi"]
"""How a detector feeds the loss:

* ``deltas``: regression on the coder's encoded deltas; ``boxes``: on decoded xyxy boxes;
* ``onehot``: sigmoid classification against one-hot targets ``(N, C)``; ``index``: softmax over
  ``C + 1`` logits against class indices (background ``C``); ``quality``: sigmoid against the IoU
  of the (detached) predicted box at the ground-truth class;
* ``rpn`` / ``roi``: the Faster R-CNN multitask losses of the RPN and of the RoI head.
"""


@dataclass(frozen=True)
class LossSpec:
    """``fn(*tensors, **kwargs, **call_kwargs)``, used in ``role``; ``kwargs`` are its settings."""

    fn: Callable[..., Any]
    role: Role
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, *tensors: Tensor, **call_kwargs: Any) -> Any:
        return self.fn(*tensors, **self.kwargs, **call_kwargs)


LossTable = Mapping[str, LossSpec]

LOSSES: dict[str, LossSpec] = {
    # Regression on deltas (mmdetection/detectron2 RetinaNet and Libra R-CNN settings).
    "smooth_l1": LossSpec(detloss.smooth_l1_loss, "deltas", {"beta": 1 / 9}),
    "l1": LossSpec(detloss.l1_loss, "deltas"),
    "balanced_l1": LossSpec(detloss.balanced_l1_loss, "deltas", {"beta": 0.11}),
    # Regression on decoded boxes.
    "iou": LossSpec(detloss.iou_loss, "boxes", {"mode": "log"}),
    "giou": LossSpec(detloss.giou_loss, "boxes"),
    "diou": LossSpec(detloss.diou_loss, "boxes"),
    "ciou": LossSpec(detloss.ciou_loss, "boxes"),
    "eiou": LossSpec(detloss.efficient_iou_loss, "boxes"),  # Efficient IoU (Zhang et al. 2022)
    "siou": LossSpec(detloss.siou_loss, "boxes"),
    # Dense classification.
    "focal": LossSpec(detloss.sigmoid_focal_loss, "onehot", {"alpha": 0.25, "gamma": 2.0}),
    "bce": LossSpec(detloss.binary_cross_entropy, "onehot"),
    "ce": LossSpec(detloss.cross_entropy, "index"),
    "varifocal": LossSpec(detloss.varifocal_loss, "quality"),
    "qfl": LossSpec(detloss.quality_focal_loss, "quality"),
    # Faster R-CNN: the RPN with Caffe's sigma = 3 (smooth L1 beta = 1/9), the head's box loss
    # comes from the regression entries above.
    "rpn": LossSpec(detloss.rpn_loss, "rpn", {"sigma": 3.0}),
    "fast_rcnn": LossSpec(detloss.fast_rcnn_loss, "roi"),
}
"""Every loss of the ablation, by command-line name."""

REGRESSION: tuple[str, ...] = tuple(n for n, s in LOSSES.items() if s.role in ("deltas", "boxes"))
CLASSIFICATION: tuple[str, ...] = tuple(
    n for n, s in LOSSES.items() if s.role in ("onehot", "index", "quality")
)


def avg_factor(num_pos: Tensor) -> Tensor:
    """The number of positives averaged over the distributed ranks (detloss.global_avg_factor)."""
    return detloss.global_avg_factor(num_pos)


def parse(spec: str, valid: tuple[str, ...], option: str) -> tuple[str, ...]:
    """Names from ``"giou,ciou"``; ``ValueError`` naming ``option`` and the valid names."""
    names = tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        given = ", ".join(unknown) if unknown else "none"
        raise ValueError(f"{option}: unknown name(s) {given}; valid names: {', '.join(valid)}")
    return names
