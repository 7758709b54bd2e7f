"""Property suite: finite inputs give finite losses and gradients (see ``tests/adversarial.py``).

Over every catalogued loss (``tests/catalogue.py``): every dtype, 0 to 4 items, inputs made
degenerate (zeros, ties, reversed coordinates, prediction = target) and multiplied by magnitudes
from 1e-30 to 1e30 (one per input or one per row), every reduction, weights of every shape and
magnitude, ``avg_factor`` of every kind, and the loss's parameters at extreme values (which it
must accept or reject up front by name). ``DETLOSS_DEEP=1`` runs twenty times the examples.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import (
    FLOATS,
    SUITE,
    Call,
    avg_factor_for,
    check_call,
    degenerate,
    extreme_parameters,
    in_dtype,
    magnitudes,
    scale,
    to_float64,
    weight_for,
)
from tests.catalogue import CASES, PARAMETERS, LossCase

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_every_catalogued_loss_has_its_parameters_listed() -> None:
    missing = {
        f"{case.fn.__name__}({parameter.name})"
        for case in CASES
        for parameter in inspect.signature(case.fn).parameters.values()
        if type(parameter.default) is float
        and parameter.name not in PARAMETERS.get(case.fn.__name__, {})
    }
    assert not missing, f"list in the family's <FAMILY>_PARAMETERS: {sorted(missing)}"


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


def _boxes(data: st.DataObject, dtype: torch.dtype, shape: tuple[int, ...]) -> Tensor:
    """Random boxes in any format (random numbers: ordered, inverted or tied alike)."""
    seed = data.draw(st.integers(0, 2**16), label="seed")
    values = torch.rand(
        *shape, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return values * 10


def _box_pair(
    data: st.DataObject, dtype: torch.dtype, shape1: tuple[int, ...], shape2: tuple[int, ...]
) -> list[Tensor]:
    pair = [_boxes(data, dtype, shape1), _boxes(data, dtype, shape2)]
    return in_dtype(scale(data, degenerate(data, pair), (0, 1), dtype), dtype)


@SUITE
@given(data=st.data())
def test_box_iou_is_finite(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    aligned = data.draw(st.booleans(), label="aligned")
    n, m = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    boxes = _box_pair(data, dtype, (n,), (n,) if aligned else (m,))
    kwargs = {
        "kind": data.draw(st.sampled_from(detloss.boxes.IOU_KINDS), label="kind"),
        "aligned": aligned,
        "box_format": data.draw(st.sampled_from(detloss.boxes.BOX_FORMATS), label="format"),
        **extreme_parameters(data, {"eps": PARAMETERS["giou_loss"]["eps"]}),
    }
    check_call(detloss.box_iou, Call(boxes, kwargs, (0, 1), ["eps"]))


@SUITE
@given(data=st.data())
def test_convert_boxes_is_finite(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    (boxes,) = in_dtype(scale(data, [_boxes(data, dtype, (3,))], (0,), dtype), dtype)
    formats = st.sampled_from(detloss.boxes.BOX_FORMATS)
    kwargs = {"in_fmt": data.draw(formats, label="in"), "out_fmt": data.draw(formats, label="out")}
    check_call(detloss.convert_boxes, Call([boxes], kwargs, (0,)))


CODERS: dict[str, dict[str, Any]] = {
    "mmdetection": {},
    "torchvision": {"stds": (0.1, 0.1, 0.2, 0.2), "clamp_below": False},
    # 1 / stds multiplies the gradient (an upstream factor) of offsets up to 1e30
    "extreme": {"stds": (1e-3, 1e3, 1e-3, 1e3), "means": (1e30, -1e30, 0.0, 0.0)},
}


@SUITE
@given(data=st.data())
def test_box_coder_is_finite(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    config: dict[str, Any] = CODERS[data.draw(st.sampled_from(sorted(CODERS)), label="coder")]
    box_format = data.draw(st.sampled_from(detloss.boxes.BOX_FORMATS), label="format")
    coder = detloss.DeltaXYWHCoder(**config, box_format=box_format)
    pair = _box_pair(data, dtype, (3,), (3,))
    check_call(coder.encode, Call(pair, {}, (0, 1)))
    max_shape = data.draw(st.one_of(st.none(), st.tuples(magnitudes(dtype), magnitudes(dtype))))
    check_call(coder.decode, Call(pair, {"max_shape": max_shape}, (0, 1)))


def _total(fn: Callable[..., dict[str, Tensor]]) -> Callable[..., Tensor]:
    def total(*args: Tensor, **kwargs: Any) -> Tensor:
        losses = fn(*args, **kwargs)
        return losses["loss_cls"] + losses["loss_reg"]

    return total


def _box_terms_overflow(
    fn: Callable[..., dict[str, Tensor]], inputs: list[Tensor], kwargs: dict[str, Any]
) -> bool:
    """Whether, computed exactly (float64), a box's regression loss or the boxes' sum is beyond
    the inputs' range: then the summed regression loss is inf or NaN (inf times a negative's zero
    weight) whatever it is divided by, the exception the guarantee states for reductions."""
    dtype = inputs[2].dtype
    if dtype == torch.float64:
        return False
    default_beta = 1 / 9 if fn is detloss.rpn_loss else 1.0
    reg = kwargs["reg_loss"] or functools.partial(detloss.smooth_l1_loss, beta=default_beta)
    totals: list[Tensor] = []

    def recording(pred: Tensor, target: Tensor, **kw: Any) -> Tensor:
        per_box = reg(pred, target, **kw)
        totals.append(per_box.abs().flatten(1).sum(dim=1) if per_box.dim() > 1 else per_box.abs())
        return per_box

    fn(*[to_float64(t) for t in inputs], **{**kwargs, "reg_loss": recording})
    limit = torch.finfo(dtype).max / 2
    return any(bool((t >= limit).any()) or bool(t.sum() >= limit) for t in totals)


@SUITE
@given(data=st.data())
def test_faster_rcnn_losses_are_finite(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    n, classes = data.draw(st.integers(0, 4)), data.draw(st.integers(2, 4))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    reg_loss = data.draw(st.sampled_from([None, detloss.giou_loss, detloss.l1_loss]))
    if data.draw(st.booleans(), label="rpn"):
        inputs = [
            torch.randn(n, generator=g, dtype=torch.float64),
            torch.randint(-1, 2, (n,), generator=g),
            *(_boxes(data, dtype, (n,)) for _ in range(2)),
        ]
        fn: Callable[..., dict[str, Tensor]] = detloss.rpn_loss
        kwargs: dict[str, Any] = {"normalizer": "paper", "num_anchor_locations": n}
    else:
        inputs = [
            torch.randn(n, classes, generator=g, dtype=torch.float64),
            torch.randint(0, classes, (n,), generator=g),
            _boxes(data, dtype, (n, classes - 1)).reshape(n, 4 * (classes - 1)),
            _boxes(data, dtype, (n,)),
        ]
        fn, kwargs = detloss.fast_rcnn_loss, {}
    inputs = in_dtype(scale(data, inputs, (0, 2, 3), dtype), dtype)
    kwargs["reg_loss"] = reg_loss
    if not _box_terms_overflow(fn, inputs, kwargs):
        check_call(_total(fn), Call(inputs, kwargs, (0, 2)))
