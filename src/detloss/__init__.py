"""detloss: exact, fast and numerically safe object-detection losses for PyTorch.

Functional losses take tensors and return tensors; modules wrap them with mmdetection's
constructor and forward signature; :func:`build_loss` builds a module from a config dict.
"""

from importlib.metadata import PackageNotFoundError, version

from detloss import boxes, checks, coder, distributed, faster_rcnn
from detloss.bounded_iou import bounded_iou_loss
from detloss.boxes import box_iou, convert_boxes, validate_boxes
from detloss.ce import binary_cross_entropy, cross_entropy
from detloss.coder import DeltaXYWHCoder
from detloss.dice import dice_loss
from detloss.distillation import knowledge_distillation_kl_div_loss
from detloss.distributed import global_avg_factor
from detloss.eqlv2 import eqlv2_loss
from detloss.extended_iou import extended_iou_loss
from detloss.faster_rcnn import fast_rcnn_loss, rpn_loss
from detloss.focal import (
    focal_loss_with_prob,
    sigmoid_focal_loss,
    sigmoid_focal_loss_star,
    softmax_focal_loss,
)
from detloss.gaussian_focal import gaussian_focal_loss
from detloss.gfl import (
    distribution_focal_loss,
    quality_focal_loss,
    quality_focal_loss_with_prob,
    varifocal_loss,
)
from detloss.ghm import ghmc_loss, ghmr_loss
from detloss.iou import (
    ciou_loss,
    diou_loss,
    efficient_iou_loss,
    giou_loss,
    iou_loss,
    siou_loss,
)
from detloss.modules import (
    GHMC,
    GHMR,
    BalancedL1Loss,
    BoundedIoULoss,
    CIoULoss,
    CrossEntropyLoss,
    DiceLoss,
    DIoULoss,
    DistributionFocalLoss,
    EfficientIoULoss,
    EIoULoss,
    EQLV2Loss,
    FocalLoss,
    GaussianFocalLoss,
    GIoULoss,
    HuberLoss,
    IoULoss,
    KnowledgeDistillationKLDivLoss,
    L1Loss,
    MSELoss,
    QualityFocalLoss,
    SeesawLoss,
    SIoULoss,
    SmoothL1Loss,
    VarifocalLoss,
    WeightedLoss,
)
from detloss.reduction import weight_reduce_loss
from detloss.registry import LOSSES, build_loss, register_loss
from detloss.regression import (
    balanced_l1_loss,
    caffe_smooth_l1_loss,
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)
from detloss.seesaw import seesaw_ce_loss

try:
    __version__ = version("detloss")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "GHMC",
    "GHMR",
    "LOSSES",
    "BalancedL1Loss",
    "BoundedIoULoss",
    "CIoULoss",
    "CrossEntropyLoss",
    "DIoULoss",
    "DeltaXYWHCoder",
    "DiceLoss",
    "DistributionFocalLoss",
    "EIoULoss",
    "EQLV2Loss",
    "EfficientIoULoss",
    "FocalLoss",
    "GIoULoss",
    "GaussianFocalLoss",
    "HuberLoss",
    "IoULoss",
    "KnowledgeDistillationKLDivLoss",
    "L1Loss",
    "MSELoss",
    "QualityFocalLoss",
    "SIoULoss",
    "SeesawLoss",
    "SmoothL1Loss",
    "VarifocalLoss",
    "WeightedLoss",
    "__version__",
    "balanced_l1_loss",
    "binary_cross_entropy",
    "bounded_iou_loss",
    "box_iou",
    "boxes",
    "build_loss",
    "caffe_smooth_l1_loss",
    "checks",
    "ciou_loss",
    "coder",
    "convert_boxes",
    "cross_entropy",
    "dice_loss",
    "diou_loss",
    "distributed",
    "distribution_focal_loss",
    "efficient_iou_loss",
    "eqlv2_loss",
    "extended_iou_loss",
    "fast_rcnn_loss",
    "faster_rcnn",
    "focal_loss_with_prob",
    "gaussian_focal_loss",
    "ghmc_loss",
    "ghmr_loss",
    "giou_loss",
    "global_avg_factor",
    "huber_loss",
    "iou_loss",
    "knowledge_distillation_kl_div_loss",
    "l1_loss",
    "mse_loss",
    "quality_focal_loss",
    "quality_focal_loss_with_prob",
    "register_loss",
    "rpn_loss",
    "seesaw_ce_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "siou_loss",
    "smooth_l1_loss",
    "softmax_focal_loss",
    "validate_boxes",
    "varifocal_loss",
    "weight_reduce_loss",
]
