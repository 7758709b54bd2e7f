"""The IoU kinds' hand-written gradient (detloss._fast.iou) against autograd of the same formula.

When only ``pred`` requires a gradient the IoU, GIoU, DIoU and CIoU losses take the gradient that
``_fast.iou`` computes with the value; when ``target`` requires one too, autograd differentiates
the value formula of ``detloss.boxes``. The two must agree everywhere, ties and degenerate boxes
included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch._dynamo.testing import CompileCounterWithBackend

import detloss
from detloss._fast.iou import _IoUOfKind
from detloss.boxes import BOX_FORMATS
from tests.boxgen import random_boxes, tricky_boxes

Loss = Callable[..., Tensor]

# (id, function, keyword arguments): every loss whose gradient comes from detloss._fast.iou.
FAST: list[tuple[str, Loss, dict[str, Any]]] = [
    ("iou_log", detloss.iou_loss, {"mode": "log"}),
    ("iou_linear", detloss.iou_loss, {"mode": "linear"}),
    ("iou_square", detloss.iou_loss, {"mode": "square"}),
    ("giou", detloss.giou_loss, {}),
    ("diou", detloss.diou_loss, {}),
    ("ciou", detloss.ciou_loss, {}),
    ("ciou_gate", detloss.ciou_loss, {"alpha_gate": 0.5}),
]
FAST_PARAMS = [pytest.param(fn, kw, id=name) for name, fn, kw in FAST]


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


def _takes_the_fast_path(loss: Tensor) -> bool:
    """Whether ``_IoUOfKind`` is in the graph of ``loss``."""
    pending, seen = [loss.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == f"{_IoUOfKind.__name__}Backward":
            return True
        pending.extend(next_node for next_node, _ in node.next_functions)
    return False


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("box_format", BOX_FORMATS)
@pytest.mark.parametrize(("fn", "kw"), FAST_PARAMS)
def test_fast_gradient_equals_autograd_of_the_formula(
    fn: Loss, kw: dict[str, Any], box_format: str, reduction: str
) -> None:
    pred, target = _boxes(box_format)
    weight = torch.rand(pred.shape[0], generator=torch.Generator().manual_seed(1)).double()
    for extra in ({}, {"weight": weight}, {"weight": weight, "avg_factor": 7.0}):
        if reduction != "mean" and "avg_factor" in extra:
            continue
        args = {**kw, **extra, "box_format": box_format, "reduction": reduction}
        fast = _gradients(fn, pred, target, target_grad=False, **args)
        autograd = _gradients(fn, pred, target, target_grad=True, **args)
        torch.testing.assert_close(fast[0], autograd[0])
        torch.testing.assert_close(fast[1], autograd[1])
        assert torch.isfinite(fast[1]).all()


@pytest.mark.parametrize(("fn", "kw"), FAST_PARAMS)
def test_the_fast_path_is_taken_only_when_the_target_needs_no_gradient(
    fn: Loss, kw: dict[str, Any]
) -> None:
    pred, target = _boxes("xyxy", seed=2)
    p = pred.clone().requires_grad_(True)
    loss = fn(p, target, **kw)
    assert _takes_the_fast_path(loss)
    (grad,) = torch.autograd.grad(loss, p)
    assert (grad != 0).any()
    assert not _takes_the_fast_path(fn(p, target.clone().requires_grad_(True), **kw))


def test_per_coordinate_weight_and_leading_dimensions() -> None:
    pred, target = _boxes("cxcywh", seed=3)
    n = pred.shape[0] // 2 * 2
    pred, target = pred[:n].view(2, -1, 4), target[:n].view(2, -1, 4)
    weight = torch.rand(pred.shape, generator=torch.Generator().manual_seed(4)).double()
    for fn, kw in ((detloss.ciou_loss, {}), (detloss.iou_loss, {"mode": "square"})):
        args = {**kw, "box_format": "cxcywh", "weight": weight, "reduction": "none"}
        fast = _gradients(fn, pred, target, target_grad=False, **args)
        autograd = _gradients(fn, pred, target, target_grad=True, **args)
        assert fast[0].shape == pred.shape[:-1]
        torch.testing.assert_close(fast, autograd)


def test_target_and_weight_requiring_gradients_get_them() -> None:
    pred, target = random_boxes(30, torch.Generator().manual_seed(7))
    p = pred.clone().requires_grad_(True)
    t = target.clone().requires_grad_(True)
    w = torch.rand(30, dtype=torch.float64, requires_grad=True)
    for name, fn, kw in FAST:
        if not name.startswith("ciou"):  # CIoU's alpha is a constant: gradcheck in the catalogue
            assert torch.autograd.gradcheck(lambda p, t, w: fn(p, t, weight=w, **kw), (p, t, w))  # noqa: B023
        # only pred and the weight: the fast path, the weight through autograd
        (grad_w,) = torch.autograd.grad(fn(p, target, weight=w, reduction="sum", **kw), w)
        torch.testing.assert_close(grad_w, fn(pred, target, reduction="none", **kw))


coordinate = st.one_of(st.sampled_from([0.0, 1e-3, 1.0, 1e4]), st.floats(1e-3, 1e4))


@given(st.lists(st.tuples(*[coordinate] * 8), min_size=1, max_size=4), st.sampled_from(BOX_FORMATS))
def test_fast_value_and_gradient_are_finite_on_any_boxes(
    rows: list[tuple[float, ...]], box_format: str
) -> None:
    pairs = torch.tensor(rows, dtype=torch.float32)
    pred, target = pairs[:, :4], pairs[:, 4:]
    for _, fn, kw in FAST:
        for reduction in ("none", "mean"):
            p = pred.clone().requires_grad_(True)
            loss = fn(p, target, box_format=box_format, reduction=reduction, **kw)
            (grad,) = torch.autograd.grad(loss.sum(), p)
            assert torch.isfinite(loss).all(), (fn.__name__, loss)
            assert torch.isfinite(grad).all(), (fn.__name__, grad)


@pytest.mark.parametrize("box_format", BOX_FORMATS)
def test_compiled_forward_and_backward_do_not_recompile_when_the_number_of_boxes_changes(
    box_format: str,
) -> None:
    # AOTAutograd traces the Function's forward and backward (an in-place write to a view there
    # makes it specialise the number of boxes); CIoU with a gate runs every part of it
    fn, kw = detloss.ciou_loss, {"alpha_gate": 0.5}
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(fn, backend=counter, dynamic=True, fullgraph=True)
    frames = []
    for n in (17, 23, 31):  # sizes that equal no other dimension (duck sizing)
        pred, target = (b.float() for b in _boxes(box_format, seed=n))
        pred, target = pred[:n], target[:n]
        args = {**kw, "box_format": box_format}
        got = _gradients(compiled, pred, target, target_grad=False, **args)
        torch.testing.assert_close(got, _gradients(fn, pred, target, target_grad=False, **args))
        frames.append(counter.frame_count)
    assert frames[0] > 0
    assert frames == [frames[0]] * 3, f"recompiled when the number of boxes changed: {frames}"
