"""Checks shared by the classification losses (ce.py, focal.py, gfl.py): hand-computed
values, catalogue coverage, torch.compile without recompiles, extreme logits, modules, errors.
Family-specific tests: test_cross_entropy.py, test_focal.py, test_gfl.py."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounter

import detloss
from detloss import ce, focal, gfl
from tests.catalogue import CASES, LossCase
from tests.formulas import recording_saved_tensors

MODULES = (ce, focal, gfl)
CLASSIFICATION_CASES = [c for c in CASES if c.fn.__module__ in {m.__name__ for m in MODULES}]
CASE_PARAMS = [pytest.param(case, id=case.id) for case in CLASSIFICATION_CASES]


def _random(n: int = 40, c: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, c + 1, (n,), generator=g)  # c = background
    one_hot = F.one_hot(labels, c + 1)[:, :c].double()
    return logits, labels, one_hot


def test_every_public_loss_is_exported_and_catalogued() -> None:
    public = {
        name: fn
        for module in MODULES
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__ and not name.startswith("_")
    }
    assert len(public) == 10
    catalogued = {case.fn.__name__ for case in CLASSIFICATION_CASES}
    assert set(public) <= catalogued, sorted(set(public) - catalogued)
    assert all(getattr(detloss, name) is fn for name, fn in public.items())


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dynamic_compile_does_not_recompile_when_n_changes(case: LossCase) -> None:
    counter = CompileCounter()
    compiled = torch.compile(case.fn, fullgraph=True, dynamic=True, backend=counter)
    for n in (7, 13, 29):
        inputs = case.inputs(n, torch.float32, seed=n)
        expected = case(*inputs)
        (expected_grad,) = torch.autograd.grad(expected, inputs[0])
        got = compiled(*inputs, **case.kwargs)
        (grad,) = torch.autograd.grad(got, inputs[0])
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(grad, expected_grad)
    assert counter.frame_count == 1


@pytest.mark.parametrize("case", CASE_PARAMS)
@pytest.mark.parametrize("size", [100.0, 1e4])
def test_huge_logits_give_finite_losses_and_gradients(case: LossCase, size: float) -> None:
    inputs = case.inputs(64, torch.float32, seed=4)
    logits = inputs[0].detach()
    extreme = torch.where(logits > 0, size, -size).requires_grad_(True)
    loss = case(extreme, *inputs[1:], reduction="sum")
    loss.backward()
    assert torch.isfinite(loss)
    assert extreme.grad is not None
    assert torch.isfinite(extreme.grad).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda x, labels: detloss.cross_entropy(x, labels),
        lambda x, labels: detloss.softmax_focal_loss(x, labels),
    ],
    ids=["cross_entropy", "softmax_focal"],
)
def test_fast_softmax_losses_save_the_logits_and_a_log_softmax_that_becomes_the_gradient(
    call,
) -> None:
    logits, labels, _ = _random()
    x = logits.requires_grad_(True)
    saved: list[torch.Tensor] = []
    with recording_saved_tensors(saved):
        loss = call(x, labels % 6)
    large = [t for t in saved if t.numel() >= x.numel()]
    assert len(large) == 2
    assert large[0] is x
    torch.testing.assert_close(large[1], torch.log_softmax(x.detach(), 1), rtol=0, atol=0)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()
    assert grad.data_ptr() == large[1].data_ptr()  # written in place, no third buffer


@pytest.mark.parametrize(
    "fn",
    [
        detloss.sigmoid_focal_loss,
        detloss.sigmoid_focal_loss_star,
        detloss.varifocal_loss,
        detloss.quality_focal_loss,
        detloss.binary_cross_entropy,
    ],
)
def test_sigmoid_losses_are_finite_up_to_the_largest_float32_logits(
    fn: Callable[..., torch.Tensor],
) -> None:
    # one logit a row: the quality focal loss sums rows (3.4e38 + 3e38 overflows, correctly)
    x = torch.tensor([-3.4e38, 3.4e38, -3e38, 3e38, 0.0]).repeat(3)[:, None].requires_grad_(True)
    targets = torch.tensor([0.0, 1.0, 0.5]).repeat_interleave(5)[:, None]
    loss = fn(x, targets, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()


def test_modules_match_functional_and_build_from_mmdet_configs() -> None:
    logits, labels, one_hot = _random()
    logits = logits.float()
    one_hot = one_hot.float()
    row = torch.rand(40)
    focal = detloss.build_loss(
        {"type": "FocalLoss", "gamma": 1.5, "alpha": 0.5, "loss_weight": 2.0}
    )
    torch.testing.assert_close(
        focal(logits, labels, weight=row, avg_factor=7.0),
        2.0 * detloss.sigmoid_focal_loss(logits, labels, 0.5, 1.5, weight=row, avg_factor=7.0),
    )
    softmax_focal = detloss.build_loss({"type": "FocalLoss", "use_sigmoid": False})
    torch.testing.assert_close(
        softmax_focal(logits, labels % 6), detloss.softmax_focal_loss(logits, labels % 6)
    )
    ce = detloss.build_loss(
        {
            "type": "mmdet.CrossEntropyLoss",
            "class_weight": [1.0] * 5 + [2.0],
            "avg_non_ignore": True,
        }
    )
    torch.testing.assert_close(
        ce(logits, labels % 6, ignore_index=0),
        detloss.cross_entropy(
            logits, labels % 6, class_weight=[1.0] * 5 + [2.0], ignore_index=0, avg_non_ignore=True
        ),
    )
    bce = detloss.CrossEntropyLoss(use_sigmoid=True)
    torch.testing.assert_close(
        bce(logits, labels, reduction_override="sum"),
        detloss.binary_cross_entropy(logits, labels, reduction="sum"),
    )
    qfl = detloss.build_loss({"type": "QualityFocalLoss", "beta": 2.0})
    torch.testing.assert_close(
        qfl(logits, (labels, row), avg_factor=3.0),
        detloss.quality_focal_loss(logits, labels, row, avg_factor=3.0),
    )
    vfl = detloss.build_loss({"type": "VarifocalLoss", "iou_weighted": False})
    torch.testing.assert_close(
        vfl(logits, one_hot * 0.5),
        detloss.varifocal_loss(logits, one_hot * 0.5, iou_weighted=False),
    )
    dfl = detloss.build_loss({"type": "DistributionFocalLoss", "loss_weight": 0.25})
    distances = row * 4
    torch.testing.assert_close(
        dfl(logits, distances), 0.25 * detloss.distribution_focal_loss(logits, distances)
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError),
        (
            lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long)),
            ValueError,
        ),
        (
            lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), alpha=1.5),
            ValueError,
        ),
        (
            lambda: detloss.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), gamma=-1),
            ValueError,
        ),
        (
            lambda: detloss.sigmoid_focal_loss_star(torch.zeros(2, 3), torch.zeros(2, 3), gamma=0),
            ValueError,
        ),
        (lambda: detloss.cross_entropy(torch.zeros(2, 3), torch.zeros(2)), TypeError),
        (
            lambda: detloss.cross_entropy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long)),
            ValueError,
        ),
        (
            lambda: detloss.cross_entropy(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), class_weight=[1.0]
            ),
            ValueError,
        ),
        (
            lambda: detloss.cross_entropy(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), label_smoothing=2
            ),
            ValueError,
        ),
        (
            lambda: detloss.softmax_focal_loss(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), alpha=-1.0
            ),
            ValueError,
        ),
        (
            lambda: detloss.quality_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)),
            TypeError,
        ),
        (lambda: detloss.distribution_focal_loss(torch.zeros(2, 1), torch.zeros(2)), ValueError),
        (lambda: detloss.varifocal_loss(torch.zeros(2, 3), torch.zeros(2, 2)), ValueError),
        (
            lambda: detloss.sigmoid_focal_loss(
                torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3)
            ),
            TypeError,
        ),
        (lambda: detloss.FocalLoss(use_sigmoid=False, activated=True), ValueError),
        (lambda: detloss.CrossEntropyLoss(use_mask=True), ValueError),
        (lambda: detloss.VarifocalLoss(use_sigmoid=False), ValueError),
    ],
)
def test_bad_input_raises_a_clear_error(call: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        call()
