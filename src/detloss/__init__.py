"""detloss: exact, fast and numerically safe object-detection losses for PyTorch.

Functional losses take tensors and return tensors; modules wrap them with mmdetection's
constructor and forward signature; :func:`build_loss` builds a module from a config dict. Each
loss file (``iou.py``, ``modules/iou.py``, ...) lists its public names in ``__all__`` and is
re-exported here whole.
"""

from importlib.metadata import PackageNotFoundError, version

from detloss import (
    bounded_iou,
    boxes,
    ce,
    checks,
    coder,
    dice,
    distillation,
    distributed,
    eqlv2,
    extended_iou,
    faster_rcnn,
    focal,
    gaussian_focal,
    gfl,
    ghm,
    iou,
    modules,
    regression,
    seesaw,
)
from detloss.bounded_iou import *  # noqa: F403
from detloss.boxes import box_iou, convert_boxes, validate_boxes
from detloss.ce import *  # noqa: F403
from detloss.coder import DeltaXYWHCoder
from detloss.dice import *  # noqa: F403
from detloss.distillation import *  # noqa: F403
from detloss.distributed import global_avg_factor
from detloss.eqlv2 import *  # noqa: F403
from detloss.extended_iou import *  # noqa: F403
from detloss.faster_rcnn import *  # noqa: F403
from detloss.focal import *  # noqa: F403
from detloss.gaussian_focal import *  # noqa: F403
from detloss.gfl import *  # noqa: F403
from detloss.ghm import *  # noqa: F403
from detloss.iou import *  # noqa: F403
from detloss.modules.base import *  # noqa: F403
from detloss.modules.bounded_iou import *  # noqa: F403
from detloss.modules.classification import *  # noqa: F403
from detloss.modules.dice import *  # noqa: F403
from detloss.modules.distillation import *  # noqa: F403
from detloss.modules.eqlv2 import *  # noqa: F403
from detloss.modules.gaussian_focal import *  # noqa: F403
from detloss.modules.ghm import *  # noqa: F403
from detloss.modules.iou import *  # noqa: F403
from detloss.modules.regression import *  # noqa: F403
from detloss.modules.seesaw import *  # noqa: F403
from detloss.reduction import weight_reduce_loss
from detloss.registry import LOSSES, build_loss, register_loss
from detloss.regression import *  # noqa: F403
from detloss.seesaw import *  # noqa: F403

try:
    __version__ = version("detloss")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "LOSSES",
    "DeltaXYWHCoder",
    "__version__",
    "box_iou",
    "boxes",
    "build_loss",
    "checks",
    "coder",
    "convert_boxes",
    "distributed",
    "faster_rcnn",
    "global_avg_factor",
    "register_loss",
    "validate_boxes",
    "weight_reduce_loss",
]
__all__ += bounded_iou.__all__
__all__ += ce.__all__
__all__ += dice.__all__
__all__ += distillation.__all__
__all__ += eqlv2.__all__
__all__ += extended_iou.__all__
__all__ += faster_rcnn.__all__
__all__ += focal.__all__
__all__ += gaussian_focal.__all__
__all__ += gfl.__all__
__all__ += ghm.__all__
__all__ += iou.__all__
__all__ += regression.__all__
__all__ += seesaw.__all__
__all__ += modules.__all__
