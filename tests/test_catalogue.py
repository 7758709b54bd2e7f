"""Checks every functional loss must pass, run over the catalogue in ``tests/catalogue.py``."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch._dynamo.testing import EagerAndRecordGraphs

import detloss
from tests.catalogue import CASES, LossCase, frozen
from tests.dynamo import global_inputs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CASE_PARAMS = [pytest.param(case, id=case.id) for case in CASES]
CASE_REDUCTION_PARAMS = [
    pytest.param(case, reduction, id=f"{case.id}-{reduction}")
    for case in CASES
    for reduction in case.reductions
]


def public_losses() -> set[str]:
    """Every public function that takes a ``reduction`` (the shared reduction itself excepted)."""
    return {
        name
        for name in detloss.__all__
        if inspect.isfunction(fn := getattr(detloss, name))
        and "reduction" in inspect.signature(fn).parameters
    } - {"weight_reduce_loss"}


def test_every_public_functional_loss_is_catalogued() -> None:
    catalogued = {case.fn.__name__ for case in CASES}
    public = public_losses()
    assert len(public) >= 15
    assert public <= catalogued, f"not in tests/catalogue.py: {sorted(public - catalogued)}"


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dynamic_compile_takes_only_the_arguments_and_does_not_recompile(case: LossCase) -> None:
    backend = EagerAndRecordGraphs()
    compiled = torch.compile(case.fn, fullgraph=True, dynamic=True, backend=backend)
    for n in (17, 23, 31):  # sizes that equal no other dimension (duck sizing)
        inputs = case.inputs(n, torch.float32, seed=n)
        torch.testing.assert_close(compiled(*inputs, **case.kwargs), case(*inputs))
    assert len(backend.graphs) == 1, "recompiled when the size changed"
    assert global_inputs(backend) == []


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


# GHM's weights are piecewise constant in the inputs (a histogram of gradient norms): finite
# differences see them change only across a bin edge, so they need the declaration without
# changing the gradient of general inputs.
PIECEWISE_CONSTANT = {"detloss.ghm._harmonising_weight"}


@pytest.mark.parametrize(
    "path", sorted({path for case in CASES for path in case.detached} - PIECEWISE_CONSTANT)
)
def test_each_detached_term_changes_the_gradient(path: str) -> None:
    # Without holding it fixed the finite differences see the detached term vary in at least one
    # case: the declaration is needed, and the frozen gradcheck above checks the surrogate gradient.
    def exact_gradcheck(case: LossCase) -> bool:
        inputs = case.inputs(40, torch.float64, seed=1)
        return torch.autograd.gradcheck(
            lambda *diff: case(*_replace(inputs, case.grad_args, diff)),
            tuple(inputs[i] for i in case.grad_args),
            raise_exception=False,
        )

    assert not all(exact_gradcheck(case) for case in CASES if path in case.detached)


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
