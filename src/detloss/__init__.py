"""detloss: exact, fast and numerically safe object-detection losses for PyTorch.

Functional losses take tensors and return tensors; modules wrap them with mmdetection's
constructor and forward signature; :func:`build_loss` builds a module from a config dict.
"""

from importlib.metadata import PackageNotFoundError, version

from detloss.backend import get_backend, set_backend, use_backend
from detloss.modules import (
    BalancedL1Loss,
    HuberLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
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

try:
    __version__ = version("detloss")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "LOSSES",
    "BalancedL1Loss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "SmoothL1Loss",
    "WeightedLoss",
    "__version__",
    "balanced_l1_loss",
    "build_loss",
    "caffe_smooth_l1_loss",
    "get_backend",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "register_loss",
    "set_backend",
    "smooth_l1_loss",
    "use_backend",
    "weight_reduce_loss",
]
