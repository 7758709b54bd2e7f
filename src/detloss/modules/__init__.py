"""``nn.Module`` wrappers of the functional losses, with mmdetection's constructor and forward.

Each file lists its public modules in ``__all__``; this package re-exports them all, so a new
module is public (and registered) by being defined and listed in its own file.
"""

from detloss.modules import (
    base,
    bounded_iou,
    classification,
    dice,
    distillation,
    eqlv2,
    gaussian_focal,
    ghm,
    iou,
    regression,
    seesaw,
)
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

__all__ = base.__all__.copy()
__all__ += bounded_iou.__all__
__all__ += classification.__all__
__all__ += dice.__all__
__all__ += distillation.__all__
__all__ += eqlv2.__all__
__all__ += gaussian_focal.__all__
__all__ += ghm.__all__
__all__ += iou.__all__
__all__ += regression.__all__
__all__ += seesaw.__all__
