"""The catalogue of every functional loss, for the tests that must hold for all of them.

Each loss family lists :class:`LossCase` entries in its own ``cases_*.py`` module; ``CASES``
gathers them. ``test_catalogue.py`` runs the shared checks (fullgraph compile, empty inputs, half
precision, gradcheck with declared detached terms, dynamic compile without recompiling) over ``CASES``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
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
        detached: terms that are constants for the gradient by definition (CIoU's alpha, ...):
            the dotted paths of the private functions that compute them. Gradient checks hold
            each at its value on the unperturbed inputs (:func:`frozen`), so that autograd's
            gradient is compared with the finite differences of the same surrogate on general
            inputs.
        scaled: positions of the inputs whose domain is every real number (predictions, logits,
            box coordinates, counts): ``tests/test_properties.py`` multiplies them by magnitudes
            from 1e-30 to 1e30. Probabilities, labels and targets confined to a range are left
            out. By default the first input.
    """

    id: str
    fn: Callable[..., Tensor]
    make: MakeInputs
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    grad_args: tuple[int, ...] = (0,)
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    detached: tuple[str, ...] = ()
    scaled: tuple[int, ...] = (0,)

    def inputs(self, n: int, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, ...]:
        generator = torch.Generator().manual_seed(seed)
        tensors = self.make(n, dtype, generator)
        return tuple(
            t.requires_grad_(True) if i in self.grad_args else t for i, t in enumerate(tensors)
        )

    def __call__(self, *tensors: Tensor, **kwargs: Any) -> Tensor:
        return self.fn(*tensors, **{**self.kwargs, **kwargs})


@contextlib.contextmanager
def frozen(case: LossCase, inputs: tuple[Tensor, ...], **kwargs: Any) -> Iterator[None]:
    """Within the block, each function named in ``case.detached`` returns, call by call, what it
    returned when the case ran on ``inputs`` with ``kwargs``: the detached terms are constants."""
    with contextlib.ExitStack() as stack:
        for path in case.detached:
            module_name, _, name = path.rpartition(".")
            module = importlib.import_module(module_name)
            original = getattr(module, name)
            recorded: list[Any] = []

            def record(*args: Any, _original: Any = original, _log: list[Any] = recorded) -> Any:
                out = _original(*args)
                _log.append(out)
                return out

            stack.enter_context(_patched(module, name, record))
            with torch.no_grad():
                case(*inputs, **kwargs)
            stack.enter_context(_patched(module, name, _Replay(recorded)))
        yield


class _Replay:
    """Returns the recorded values in turn, from the start again after the last one."""

    def __init__(self, values: list[Any]) -> None:
        if not values:
            raise AssertionError("a function named in LossCase.detached was never called")
        self.values = values
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        value = self.values[self.calls % len(self.values)]
        self.calls += 1
        return value


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


_FAMILIES = (
    "regression",
    "iou",
    "classification",
    "bounded_iou",
    "ghm",
    "seesaw",
    "gaussian_focal",
    "distillation",
    "eqlv2",
    "dice",
)
"""The ``tests/cases_<family>.py`` modules; each defines ``<FAMILY>_CASES``, its cases, and
``<FAMILY>_PARAMETERS``, the parameters of its losses that the property suite draws at extreme
values (``tests/adversarial.py``'s strategies)."""


def _gather() -> tuple[list[LossCase], dict[str, dict[str, Any]]]:
    cases: list[LossCase] = []
    parameters: dict[str, dict[str, Any]] = {}
    for family in _FAMILIES:
        module = importlib.import_module(f"tests.cases_{family}")
        cases += getattr(module, f"{family.upper()}_CASES")
        parameters |= getattr(module, f"{family.upper()}_PARAMETERS")
    return cases, parameters


CASES, PARAMETERS = _gather()
"""Every catalogued case, and per loss the parameters drawn at extreme values."""
