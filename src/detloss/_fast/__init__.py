"""Hand-written derivatives of a few losses, kept only where they pay for themselves.

Every loss in detloss is a value formula differentiated by autograd. A module here replaces
autograd for one loss with a custom :class:`torch.autograd.Function` only where a benchmark at
realistic sizes showed at least 1.5x the time or 2x the peak memory for autograd of the same
formula (the figures are in ``docs/benchmarks.md`` and ``docs/classification.md``). Each Function is tested against autograd
of that formula (values and gradients in float64, degenerate inputs included), runs eagerly and
under ``torch.compile`` as it is, and is known only to the loss modules that call it.

* :mod:`detloss._fast.iou`: the IoU, GIoU, DIoU and CIoU of box pairs, the gradient computed with
  the value;
* :mod:`detloss._fast.sigmoid_focal`: the sigmoid focal loss, value and derivative in one pass;
* :mod:`detloss._fast.gfl`: the varifocal and quality focal losses, likewise;
* :mod:`detloss._fast.softmax`: softmax cross-entropy and the softmax focal loss, whose
  log-softmax becomes the gradient in place.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor


def apply_function(function: type[torch.autograd.Function], *args: Any) -> Tensor:
    """``function.apply(*args)`` with a type (``Function.apply`` is untyped)."""
    return cast(Tensor, function.apply(*args))  # type: ignore[no-untyped-call]
