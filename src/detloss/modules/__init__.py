"""``nn.Module`` wrappers of the functional losses, with mmdetection's constructor and forward."""

from detloss.modules.base import WeightedLoss
from detloss.modules.classification import (
    CrossEntropyLoss,
    DistributionFocalLoss,
    FocalLoss,
    QualityFocalLoss,
    VarifocalLoss,
)
from detloss.modules.iou import CIoULoss, DIoULoss, EIoULoss, GIoULoss, IoULoss, SIoULoss
from detloss.modules.regression import (
    BalancedL1Loss,
    HuberLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
)

__all__ = [
    "BalancedL1Loss",
    "CIoULoss",
    "CrossEntropyLoss",
    "DIoULoss",
    "DistributionFocalLoss",
    "EIoULoss",
    "FocalLoss",
    "GIoULoss",
    "HuberLoss",
    "IoULoss",
    "L1Loss",
    "MSELoss",
    "QualityFocalLoss",
    "SIoULoss",
    "SmoothL1Loss",
    "VarifocalLoss",
    "WeightedLoss",
]
