"""``nn.Module`` wrappers of the functional losses, with mmdetection's constructor and forward."""

from detloss.modules.base import WeightedLoss
from detloss.modules.bounded_iou import BoundedIoULoss
from detloss.modules.classification import (
    CrossEntropyLoss,
    DistributionFocalLoss,
    FocalLoss,
    QualityFocalLoss,
    VarifocalLoss,
)
from detloss.modules.dice import DiceLoss
from detloss.modules.distillation import KnowledgeDistillationKLDivLoss
from detloss.modules.eqlv2 import EQLV2Loss
from detloss.modules.gaussian_focal import GaussianFocalLoss
from detloss.modules.ghm import GHMC, GHMR
from detloss.modules.iou import (
    CIoULoss,
    DIoULoss,
    EfficientIoULoss,
    EIoULoss,
    GIoULoss,
    IoULoss,
    SIoULoss,
)
from detloss.modules.regression import (
    BalancedL1Loss,
    HuberLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
)
from detloss.modules.seesaw import SeesawLoss

__all__ = [
    "GHMC",
    "GHMR",
    "BalancedL1Loss",
    "BoundedIoULoss",
    "CIoULoss",
    "CrossEntropyLoss",
    "DIoULoss",
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
]
