"""Property suite: finite inputs give finite losses and gradients (see ``tests/adversarial.py``).

Over every catalogued loss (``tests/catalogue.py``): every dtype, 0 to 4 items, inputs made
degenerate (zeros, ties, reversed coordinates, prediction = target) and multiplied by magnitudes
from 1e-30 to 1e30 (one per input or one per row), every reduction, weights of every shape and
magnitude, ``avg_factor`` of every kind, and the loss's parameters at extreme values (which it
must accept or reject up front by name). ``DETLOSS_DEEP=1`` runs twenty times the examples.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.adversarial import (
    FLOATS,
    PARAMETERS,
    SUITE,
    Call,
    avg_factor_for,
    check_call,
    degenerate,
    extreme_parameters,
    in_dtype,
    scale,
    weight_for,
)
from tests.catalogue import CASES, LossCase

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_every_catalogued_loss_has_its_parameters_listed() -> None:
    missing = {case.fn.__name__ for case in CASES} - set(PARAMETERS)
    assert not missing, f"add to tests/adversarial.py PARAMETERS: {sorted(missing)}"


def draw_call(data: st.DataObject, case: LossCase) -> Call:
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    n = data.draw(st.integers(0, 4), label="items")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    inputs = list(case.make(n, torch.float64, torch.Generator().manual_seed(seed)))
    inputs = in_dtype(scale(data, degenerate(data, inputs), case.scaled, dtype), dtype)
    extreme = extreme_parameters(data, PARAMETERS[case.fn.__name__])
    kwargs = {**case.kwargs, **extreme}
    reduction = data.draw(st.sampled_from(case.reductions), label="reduction")
    try:
        shape = case.fn(*inputs, **{**kwargs, "reduction": "none"}).shape
    except (ValueError, TypeError):
        shape = None  # a rejected parameter: the call below must reject it the same way
    accepted = inspect.signature(case.fn).parameters
    if shape is not None and "weight" in accepted:
        per_coordinate = case.fn.__module__ == "detloss.iou"
        kwargs["weight"] = weight_for(data, shape, per_coordinate)
    if reduction == "mean" and "avg_factor" in accepted:
        kwargs["avg_factor"] = avg_factor_for(data)
    return Call(inputs, {**kwargs, "reduction": reduction}, case.grad_args, list(extreme))


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
@SUITE
@given(data=st.data())
def test_finite_inputs_give_finite_losses_and_gradients(
    case: LossCase, data: st.DataObject
) -> None:
    check_call(case.fn, draw_call(data, case))
