"""Malformed inputs: every argument of every catalogued loss (``tests/catalogue.py``) replaced in
turn by a wrong type, shape, dtype or out-of-range value. Each call must fail cleanly, with a
``TypeError`` or ``ValueError`` raised up front, or work (a finite loss); never raise anything
else (``AttributeError``, ``IndexError``, PyTorch's ``RuntimeError``...)."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import Tensor

from detloss.registry import LOSSES
from tests.catalogue import CASES, PARAMETERS, LossCase

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# By design: label values (here out of range, the logits cut to one class) are read only with
# check_labels=True, a host synchronisation; without it PyTorch's indexing error stands.
# An entry that no longer occurs fails the test, so that it goes with the fix.
KNOWN: dict[str, set[str]] = {
    "cross_entropy": {"input 0 as last dim cut"},
    "softmax_focal_loss": {"input 0 as last dim cut"},
}


def _tensor_variants(t: Tensor) -> Iterator[tuple[str, Any]]:
    yield "list", t.tolist()
    yield "None", None
    yield "str", "tensor"
    yield "bool", t.bool()
    yield "complex", t.to(torch.complex64)
    yield (
        "integer" if t.dtype.is_floating_point else "floating",
        (t.long() if t.dtype.is_floating_point else t.double()),
    )
    yield "0-dim", torch.tensor(1.0, dtype=t.dtype)
    yield "extra dim", t.unsqueeze(0).expand(2, *t.shape)
    yield "flattened", t.reshape(-1)
    if t.dim() > 0 and t.shape[-1] > 1:
        yield "last dim cut", t[..., :1]
    yield "empty", t[:0]


_NUMBERS: list[tuple[str, Any]] = [
    ("str", "1"),
    ("bool", True),
    ("list", [1.0]),
    ("nan", math.nan),
    ("inf", math.inf),
    ("-inf", -math.inf),
    ("negative", -1.0),
    ("huge int", 10**400),
    ("tensor", torch.tensor(1.0)),
]


def _keyword_variants(case: LossCase, inputs: tuple[Tensor, ...]) -> Iterator[tuple[str, Any]]:
    loss = case(*inputs, reduction="none")
    yield "weight", ("list", loss.tolist())
    yield "weight", ("str", "w")
    yield "weight", ("too many dims", torch.ones(2, *loss.shape))
    yield "weight", ("wrong size", torch.ones(loss.numel() + 1))
    yield "weight", ("complex", torch.ones(loss.shape, dtype=torch.complex64))
    for name, value in _NUMBERS[:-1]:
        yield "avg_factor", (name, value)
    yield "avg_factor", ("vector", torch.ones(2))
    yield "avg_factor", ("complex tensor", torch.ones((), dtype=torch.complex64))
    for value in ("avg", None, 1, "MEAN"):
        yield "reduction", (repr(value), value)
    for parameter in PARAMETERS[case.fn.__name__]:
        for name, value in _NUMBERS:
            yield parameter, (name, value)


def _outcome(call: Callable[[], object]) -> str | None:
    """None when the call fails cleanly or works; else what went wrong."""
    try:
        loss = call()
    except (TypeError, ValueError):
        return None
    except Exception as err:
        return f"{type(err).__name__}: {str(err)[:120]}"
    if not isinstance(loss, Tensor):
        return f"returned {type(loss).__name__}"
    if loss.dtype.is_floating_point and not bool(torch.isfinite(loss).all()):
        return "a non-finite loss"
    return None


def _problems(case: LossCase) -> list[str]:
    """What went wrong for each malformed argument of ``case``, as ``"what: problem"``."""
    inputs = tuple(t.detach() for t in case.inputs(3, torch.float32, seed=1))
    problems = []
    for position, tensor in enumerate(inputs):
        for name, bad in _tensor_variants(tensor):
            args = list(inputs)
            args[position] = bad
            problem = _outcome(functools.partial(case, *args))
            if problem:
                problems.append(f"input {position} as {name}: {problem}")
    for keyword, (name, bad) in _keyword_variants(case, inputs):
        problem = _outcome(functools.partial(case, *inputs, **{keyword: bad}))
        if problem:
            problems.append(f"{keyword}={name}: {problem}")
    return problems


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_malformed_arguments_fail_cleanly(case: LossCase) -> None:
    known = KNOWN.get(case.fn.__name__, set())
    problems = [p for p in _problems(case) if p.split(":")[0] not in known]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_problems_still_occur(name: str) -> None:
    found = {p.split(":")[0] for case in CASES if case.fn.__name__ == name for p in _problems(case)}
    assert not KNOWN[name] - found, f"fixed, remove from KNOWN: {sorted(KNOWN[name] - found)}"


def _float_parameters(cls: type) -> list[str]:
    parameters = inspect.signature(cls).parameters.values()
    return [p.name for p in parameters if type(p.default) is float]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_modules_check_their_numbers_when_built(name: str) -> None:
    cls = LOSSES[name]
    for parameter in _float_parameters(cls):
        for bad in (math.nan, math.inf, "1"):
            with pytest.raises((TypeError, ValueError), match=parameter):
                cls(**{parameter: bad})
