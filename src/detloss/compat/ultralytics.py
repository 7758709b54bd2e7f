"""``ultralytics.utils.metrics.bbox_iou`` and ``ultralytics.utils.loss.FocalLoss`` (ultralytics
8.4), computed by detloss.

* ``bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7)``: ``xywh`` is
  ultralytics' centre format (detloss's "cxcywh"); the flags pick CIoU over DIoU over GIoU over
  IoU; CIoU is the paper's (alpha ``v / (1 - IoU + v + eps)`` at every IoU, constant for the
  gradient); shapes broadcast and the result keeps a trailing dimension of 1, as ultralytics.
* ``FocalLoss(gamma=1.5, alpha=0.25)(pred, label)``: the sigmoid focal loss summed and divided by
  ``pred.shape[1]`` (ultralytics' ``.mean(1).sum()``), no alpha weighting when ``alpha <= 0``.

Not identical: with ``xywh=False`` ultralytics adds eps to both heights (so its union differs by
``eps * w``); detloss adds eps to the denominators only, a difference of order ``eps / h``.
detloss's boxes have sizes clamped at 0, and its divisor ``pred.shape[1]`` carries the float32 eps
of ``avg_factor``. ``VarifocalLoss`` and ``DFLoss`` are not provided yet: their ultralytics
conventions (positives chosen by ``label``; the mean over the four sides and the targets clamped
to ``reg_max - 1.01``) need arguments of detloss's classification losses.
"""

from __future__ import annotations

from torch import Tensor, nn

from detloss import sigmoid_focal_loss as _sigmoid_focal_loss
from detloss.boxes import box_iou as _box_iou
from detloss.checks import check_number

__all__ = ["FocalLoss", "bbox_iou"]


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
