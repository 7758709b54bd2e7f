"""The catalogue of every functional loss, for the tests that must hold for all of them.

Each loss family lists :class:`LossCase` entries in its own ``cases_*.py`` module; ``CASES``
gathers them. ``test_catalogue.py`` runs the shared checks (fullgraph compile, empty inputs, half
precision, gradcheck, finite outputs, fused == eager) over ``CASES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

MakeInputs = Callable[[int, torch.dtype, torch.Generator], tuple[Tensor, ...]]


@dataclass(frozen=True)
class LossCase:
    """One functional loss with a recipe for valid inputs.

    Attributes:
        id: test id.
        fn: the public functional loss.
        make: ``make(n, dtype, generator)`` returns the positional tensors for ``n`` items
            (``n == 0`` must give empty inputs); floating inputs get ``dtype``.
        kwargs: keyword arguments for every call.
        grad_args: positions of the inputs to differentiate (gradcheck, empty-input grads).
        reductions: the reductions the loss accepts.
    """

    id: str
    fn: Callable[..., Tensor]
    make: MakeInputs
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    grad_args: tuple[int, ...] = (0,)
    reductions: tuple[str, ...] = ("none", "mean", "sum")

    def inputs(self, n: int, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, ...]:
        generator = torch.Generator().manual_seed(seed)
        tensors = self.make(n, dtype, generator)
        return tuple(
            t.requires_grad_(True) if i in self.grad_args else t for i, t in enumerate(tensors)
        )

    def __call__(self, *tensors: Tensor, **kwargs: Any) -> Tensor:
        return self.fn(*tensors, **{**self.kwargs, **kwargs})


def _gather() -> list[LossCase]:
    from tests.cases_classification import CLASSIFICATION_CASES
    from tests.cases_iou import IOU_CASES
    from tests.cases_regression import REGRESSION_CASES

    return [*REGRESSION_CASES, *IOU_CASES, *CLASSIFICATION_CASES]


CASES: list[LossCase] = _gather()
