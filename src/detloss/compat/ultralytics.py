"""``ultralytics.utils.metrics.bbox_iou`` and ``ultralytics.utils.loss``'s ``FocalLoss``,
``VarifocalLoss`` and ``DFLoss`` (ultralytics 8.4), computed by detloss.

* ``bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7)``: ``xywh`` is
  ultralytics' centre format (detloss's "cxcywh"); the flags pick CIoU over DIoU over GIoU over
  IoU; CIoU is the paper's (alpha ``v / (1 - IoU + v + eps)`` at every IoU, constant for the
  gradient); shapes broadcast and the result keeps a trailing dimension of 1, as ultralytics.
* ``FocalLoss(gamma=1.5, alpha=0.25)(pred, label)``: the sigmoid focal loss summed and divided by
  ``pred.shape[1]`` (ultralytics' ``.mean(1).sum()``), no alpha weighting when ``alpha <= 0``.
* ``VarifocalLoss(gamma=2.0, alpha=0.75)(pred_score, gt_score, label)``: the varifocal loss with
  the positives given by ``label`` (not by ``gt_score > 0``) and weighted by ``gt_score``, summed
  and divided by ``pred_score.shape[1]``; a positive of score 0 (a query matched at IoU 0)
  contributes 0.
* ``DFLoss(reg_max=16)(pred_dist, target)``: ``pred_dist`` ``(M, reg_max)`` holds the bins of the
  ``M`` distances of ``target`` ``(..., 4)`` in order; the distribution focal loss with targets
  clamped to ``[0, reg_max - 1.01]``, averaged over the last dimension, shape ``(..., 1)``.

Not identical: with ``xywh=False`` ultralytics adds eps to both heights (so its union differs by
``eps * w``); detloss adds eps to the denominators only, a difference of order ``eps / h``.
detloss's boxes have sizes clamped at 0. The focal losses' divisor ``pred.shape[1]`` carries the
float32 eps of ``avg_factor``, and an empty dimension 1 gives 0 (ultralytics: NaN); float16 is
computed in float32 (ultralytics: ``FocalLoss`` in float16; ``VarifocalLoss`` forms
``alpha p**gamma`` in float16 and the rest in float32, ``docs/conventions.md`` gives the
differences), float64 in float64 (ultralytics' ``VarifocalLoss``: float32). ``VarifocalLoss``
rejects a negative ``alpha``, reads any nonzero ``label`` as a positive, and gives a negative with a nonzero ``gt_score`` (which
ultralytics' callers never produce) the loss of target 0. ``DFLoss`` does not clamp ``target`` in
place. Targets (``label``, ``gt_score``, ``target``) receive no gradient.
"""

from __future__ import annotations

from torch import Tensor, nn

from detloss import distribution_focal_loss as _distribution_focal_loss
from detloss import sigmoid_focal_loss as _sigmoid_focal_loss
from detloss import varifocal_loss as _varifocal_loss
from detloss.boxes import box_iou as _box_iou
from detloss.checks import check_number

__all__ = ["DFLoss", "FocalLoss", "VarifocalLoss", "bbox_iou"]


def bbox_iou(
    box1: Tensor,
    box2: Tensor,
    xywh: bool = True,
    GIoU: bool = False,  # noqa: N803 - ultralytics' names
    DIoU: bool = False,  # noqa: N803
    CIoU: bool = False,  # noqa: N803
    eps: float = 1e-7,
) -> Tensor:
    """IoU, GIoU, DIoU or CIoU of boxes ``(..., 4)`` that broadcast together, shape ``(..., 1)``:
    :func:`detloss.box_iou` with ``aligned=True``."""
    kind = "ciou" if CIoU else "diou" if DIoU else "giou" if GIoU else "iou"
    box_format = "cxcywh" if xywh else "xyxy"
    return _box_iou(box1, box2, kind, aligned=True, box_format=box_format, eps=eps).unsqueeze(-1)


class FocalLoss(nn.Module):
    """ultralytics' ``FocalLoss``: :func:`detloss.sigmoid_focal_loss` of logits and float labels
    of the same shape ``(N, C)`` or ``(B, N, C)``, summed and divided by ``pred.shape[1]``."""

    def __init__(self, gamma: float = 1.5, alpha: float = 0.25) -> None:
        super().__init__()
        self.gamma = check_number(gamma, "gamma", low=0.0, strict=False)
        self.alpha = check_number(alpha, "alpha", low=float("-inf"), strict=True)

    def forward(self, pred: Tensor, label: Tensor) -> Tensor:
        alpha = self.alpha if self.alpha > 0 else None
        return _sigmoid_focal_loss(
            pred, label, alpha, self.gamma, reduction="mean", avg_factor=pred.shape[1]
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"


class VarifocalLoss(nn.Module):
    """ultralytics' ``VarifocalLoss``: :func:`detloss.varifocal_loss` of logits, IoU scores and
    the positives ``label``, all of one shape (e.g. ``(B, Q, C)``), summed and divided by
    ``pred_score.shape[1]``."""

    def __init__(self, gamma: float = 2.0, alpha: float = 0.75) -> None:
        super().__init__()
        self.gamma = check_number(gamma, "gamma", low=0.0, strict=False)
        self.alpha = check_number(alpha, "alpha", low=0.0, strict=False)

    def forward(self, pred_score: Tensor, gt_score: Tensor, label: Tensor) -> Tensor:
        return _varifocal_loss(
            pred_score,
            gt_score,
            self.alpha,
            self.gamma,
            positive=label,
            reduction="mean",
            avg_factor=pred_score.shape[1],
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"


class DFLoss(nn.Module):
    """ultralytics' ``DFLoss``: :func:`detloss.distribution_focal_loss` of the bin logits
    ``(M, reg_max)`` of the ``M`` distances of ``target`` ``(..., k)``, per row of ``k``, shape
    ``(..., 1)``."""

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        if isinstance(reg_max, bool) or not isinstance(reg_max, int):
            raise TypeError(f"reg_max must be an int, got {type(reg_max).__name__}")
        if reg_max < 2:
            raise ValueError(f"reg_max must be >= 2 (the number of bins), got {reg_max}")
        self.reg_max = reg_max

    def forward(self, pred_dist: Tensor, target: Tensor) -> Tensor:
        rows = target.reshape(-1, target.shape[-1])
        return _distribution_focal_loss(
            pred_dist.reshape(*rows.shape, pred_dist.shape[-1]),
            rows,
            max_target=self.reg_max - 1 - 0.01,  # ultralytics' DFLoss's clamp
            reduction="none",
        ).reshape(*target.shape[:-1], 1)

    def extra_repr(self) -> str:
        return f"reg_max={self.reg_max}"
