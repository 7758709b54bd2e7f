"""Checks every functional loss must pass, run over the catalogue in ``tests/catalogue.py``."""

from __future__ import annotations

import pytest
import torch

from tests.catalogue import CASES, LossCase, frozen

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CASE_PARAMS = [pytest.param(case, id=case.id) for case in CASES]
CASE_REDUCTION_PARAMS = [
    pytest.param(case, reduction, id=f"{case.id}-{reduction}")
    for case in CASES
    for reduction in case.reductions
]


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTION_PARAMS)
def test_fullgraph_compile_matches_eager(case: LossCase, reduction: str) -> None:
    compiled = torch.compile(case.fn, fullgraph=True, backend="eager", dynamic=True)
    for n in (7, 3):
        inputs = case.inputs(n, torch.float32, seed=n)
        expected = case(*inputs, reduction=reduction)
        got = compiled(*inputs, **{**case.kwargs, "reduction": reduction})
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTION_PARAMS)
def test_gradcheck_float64(case: LossCase, reduction: str) -> None:
    inputs = case.inputs(5, torch.float64, seed=1)
    with frozen(case, inputs, reduction=reduction):
        assert torch.autograd.gradcheck(
            lambda *diff: case(*_replace(inputs, case.grad_args, diff), reduction=reduction),
            tuple(inputs[i] for i in case.grad_args),
        )


def _replace(
    inputs: tuple[torch.Tensor, ...], positions: tuple[int, ...], new: tuple[torch.Tensor, ...]
):
    out = list(inputs)
    for position, tensor in zip(positions, new, strict=True):
        out[position] = tensor
    return tuple(out)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_eager_backward_twice_with_retain_graph_accumulates(case: LossCase) -> None:
    inputs = case.inputs(6, torch.float64, seed=3)
    loss = case(*inputs)
    loss.backward(retain_graph=True)
    once = [inputs[i].grad.clone() for i in case.grad_args]  # type: ignore[union-attr]
    loss.backward()
    for i, grad in zip(case.grad_args, once, strict=True):
        torch.testing.assert_close(inputs[i].grad, 2 * grad)


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTION_PARAMS)
def test_empty_input_gives_connected_zero(case: LossCase, reduction: str) -> None:
    inputs = case.inputs(0, torch.float32)
    loss = case(*inputs, reduction=reduction)
    if reduction == "none":
        assert loss.numel() == 0
        loss = loss.sum()
    else:
        assert loss.shape == ()
        assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    for i in case.grad_args:
        grad = inputs[i].grad
        assert grad is not None
        assert grad.shape == inputs[i].shape
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_half_precision_is_computed_in_float32(case: LossCase, dtype: torch.dtype) -> None:
    half = case.inputs(64, dtype, seed=2)
    as_float = tuple(t.detach().float() if t.dtype == dtype else t for t in half)
    loss = case(*half, reduction="mean")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, case(*as_float, reduction="mean"))
    loss.backward()
    for i in case.grad_args:
        grad = half[i].grad
        assert grad is not None
        assert grad.dtype == dtype
        assert torch.isfinite(grad).all()
