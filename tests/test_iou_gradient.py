"""The IoU-family losses' analytic gradient (computed with the value, detloss.boxes.iou_and_gradient).

When only ``pred`` requires a gradient the losses compute it in the forward pass; when ``target``
(or the weight) requires one too, the same value formulas run under autograd. The two must give
the same gradient everywhere, ties and degenerate boxes included.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

import detloss
import detloss.blocks
from detloss.boxes import BOX_FORMATS
from tests.boxgen import random_boxes, tricky_boxes
from tests.test_analytic import takes_the_analytic_path

Loss = Callable[..., Tensor]

# (id, function, keyword arguments): every loss with a gradient in the forward pass.
ANALYTIC: list[tuple[str, Loss, dict[str, Any]]] = [
    ("iou_log", detloss.iou_loss, {"mode": "log"}),
    ("iou_linear", detloss.iou_loss, {"mode": "linear"}),
    ("iou_square", detloss.iou_loss, {"mode": "square"}),
    ("giou", detloss.giou_loss, {}),
    ("diou", detloss.diou_loss, {}),
    ("ciou", detloss.ciou_loss, {}),
    ("ciou_gate", detloss.ciou_loss, {"alpha_gate": 0.5}),
    ("eiou", detloss.eiou_loss, {}),
]
ANALYTIC_PARAMS = [pytest.param(fn, kw, id=name) for name, fn, kw in ANALYTIC]


def _boxes(box_format: str, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred, target = random_boxes(40, g, box_format)
    tricky_pred, tricky_target = tricky_boxes(200, g, box_format)
    return torch.cat((pred, tricky_pred)), torch.cat((target, tricky_target))


def _gradients(
    fn: Loss, pred: Tensor, target: Tensor, *, target_grad: bool, **kw: Any
) -> tuple[Tensor, Tensor]:
    """The loss and d(sum of the loss)/d pred, with ``target`` requiring a gradient or not."""
    p = pred.clone().requires_grad_(True)
    t = target.clone().requires_grad_(target_grad)
    loss = fn(p, t, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), p)
    return loss.detach(), grad


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("box_format", BOX_FORMATS)
@pytest.mark.parametrize(("fn", "kw"), ANALYTIC_PARAMS)
def test_analytic_gradient_equals_autograd_of_the_value(
    fn: Loss, kw: dict[str, Any], box_format: str, reduction: str
) -> None:
    pred, target = _boxes(box_format)
    weight = torch.rand(pred.shape[0], generator=torch.Generator().manual_seed(1)).double()
    for extra in ({}, {"weight": weight}, {"weight": weight, "avg_factor": 7.0}):
        if reduction != "mean" and "avg_factor" in extra:
            continue
        args = {**kw, **extra, "box_format": box_format, "reduction": reduction}
        analytic = _gradients(fn, pred, target, target_grad=False, **args)
        autograd = _gradients(fn, pred, target, target_grad=True, **args)
        torch.testing.assert_close(analytic[0], autograd[0])
        torch.testing.assert_close(analytic[1], autograd[1])
        assert torch.isfinite(analytic[1]).all()


@pytest.mark.parametrize(("fn", "kw"), ANALYTIC_PARAMS)
def test_analytic_path_is_taken_and_the_gradient_is_not_trivial(
    fn: Loss, kw: dict[str, Any]
) -> None:
    pred, target = _boxes("xyxy", seed=2)
    p = pred.clone().requires_grad_(True)
    loss = fn(p, target, **kw)
    assert takes_the_analytic_path(loss)
    (grad,) = torch.autograd.grad(loss, p)
    assert (grad != 0).any()


def test_per_coordinate_weight_and_leading_dimensions() -> None:
    pred, target = _boxes("cxcywh", seed=3)
    n = pred.shape[0] // 2 * 2
    pred, target = pred[:n].view(2, -1, 4), target[:n].view(2, -1, 4)
    weight = torch.rand(pred.shape, generator=torch.Generator().manual_seed(4)).double()
    for fn, kw in ((detloss.ciou_loss, {}), (detloss.iou_loss, {"mode": "square"})):
        args = {**kw, "box_format": "cxcywh", "weight": weight, "reduction": "none"}
        analytic = _gradients(fn, pred, target, target_grad=False, **args)
        autograd = _gradients(fn, pred, target, target_grad=True, **args)
        assert analytic[0].shape == pred.shape[:-1]
        torch.testing.assert_close(analytic, autograd)


@pytest.mark.parametrize(("fn", "kw"), ANALYTIC_PARAMS)
def test_blocks_give_the_same_result_as_one_pass(
    fn: Loss, kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Eagerly, large inputs are evaluated in blocks of rows; 7 rows a block here.
    pred, target = _boxes("xywh", seed=5)
    pred, target = pred[:60].view(3, 20, 4), target[:60].view(3, 20, 4)
    g = torch.Generator().manual_seed(6)
    for weight in (None, torch.rand(3, 20, generator=g).double(), torch.rand(20).double()):
        args = {**kw, "box_format": "xywh", "weight": weight, "reduction": "none"}
        whole = _gradients(fn, pred, target, target_grad=False, **args)
        with monkeypatch.context() as patch:
            patch.setitem(detloss.blocks.BLOCK_ELEMENTS, "cpu", 7)
            blocks = _gradients(fn, pred, target, target_grad=False, **args)
        torch.testing.assert_close(blocks, whole)  # to rounding: vectorised vs scalar tails


def _weighted(fn: Loss, kw: dict[str, Any], p: Tensor, t: Tensor, w: Tensor) -> Tensor:
    return fn(p, t, weight=w, **kw)


def test_target_and_weight_requiring_gradients_get_them() -> None:
    pred, target = random_boxes(30, torch.Generator().manual_seed(7))
    p = pred.clone().requires_grad_(True)
    t = target.clone().requires_grad_(True)
    w = torch.rand(30, dtype=torch.float64, requires_grad=True)
    cases: list[tuple[Loss, dict[str, Any]]] = [
        (detloss.giou_loss, {}),
        (detloss.diou_loss, {}),
        (detloss.eiou_loss, {}),
        (detloss.iou_loss, {"mode": "linear"}),
    ]
    for fn, kw in cases:
        assert torch.autograd.gradcheck(functools.partial(_weighted, fn, kw), (p, t, w))
        # d(sum of w * loss)/dw is the element-wise loss
        (grad_w,) = torch.autograd.grad(fn(p, target, weight=w, reduction="sum", **kw), w)
        torch.testing.assert_close(grad_w, fn(pred, target, reduction="none", **kw))


coordinate = st.one_of(st.sampled_from([0.0, 1e-3, 1.0, 1e4]), st.floats(1e-3, 1e4))


@given(st.lists(st.tuples(*[coordinate] * 8), min_size=1, max_size=4), st.sampled_from(BOX_FORMATS))
def test_analytic_value_and_gradient_are_finite_on_any_boxes(
    rows: list[tuple[float, ...]], box_format: str
) -> None:
    pairs = torch.tensor(rows, dtype=torch.float32)
    pred, target = pairs[:, :4], pairs[:, 4:]
    for _, fn, kw in ANALYTIC:
        for reduction in ("none", "mean"):
            p = pred.clone().requires_grad_(True)
            loss = fn(p, target, box_format=box_format, reduction=reduction, **kw)
            (grad,) = torch.autograd.grad(loss.sum(), p)
            assert torch.isfinite(loss).all(), (fn.__name__, loss)
            assert torch.isfinite(grad).all(), (fn.__name__, grad)
