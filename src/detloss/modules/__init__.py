"""``nn.Module`` wrappers of the functional losses, with mmdetection's constructor and forward."""

from detloss.modules.base import WeightedLoss
from detloss.modules.regression import (
    BalancedL1Loss,
    HuberLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
)

__all__ = [
    "BalancedL1Loss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "SmoothL1Loss",
    "WeightedLoss",
]
