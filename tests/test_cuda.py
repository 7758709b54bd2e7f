"""The catalogue's checks on a CUDA device: the same numbers as on the CPU, ``torch.compile``
(Triton) == eager, no host-device synchronisation, empty and half-precision inputs. Skipped without CUDA (CI
has none; run ``pytest tests/test_cuda.py`` on a machine with a GPU)."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from torch import Tensor

from detloss.benchmarks.families import FAMILIES
from detloss.benchmarks.measure import run_family
from tests.catalogue import CASES, LossCase

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

CUDA = torch.device("cuda")
CASE_PARAMS = [pytest.param(case, id=case.id) for case in CASES]
CASE_REDUCTION_PARAMS = [
    pytest.param(case, reduction, id=f"{case.id}-{reduction}")
    for case in CASES
    for reduction in case.reductions
]
# A GPU sums in another order than the CPU: float32 results agree to rounding of the sums.
assert_close_to_sum_order = functools.partial(torch.testing.assert_close, rtol=2e-5, atol=2e-5)


def _on(device: torch.device, case: LossCase, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Detached copies of ``inputs`` on ``device``, the gradient inputs requiring grad."""
    return tuple(
        t.detach().to(device).requires_grad_(i in case.grad_args) for i, t in enumerate(inputs)
    )


def _value_and_grads(
    case: LossCase, inputs: tuple[Tensor, ...], reduction: str
) -> tuple[Tensor, ...]:
    loss = case(*inputs, reduction=reduction)
    grads = torch.autograd.grad(loss.sum(), [inputs[i] for i in case.grad_args])
    return (loss.detach(), *grads)


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTION_PARAMS)
def test_cuda_matches_cpu(case: LossCase, reduction: str) -> None:
    inputs = case.inputs(257, torch.float32, seed=4)
    expected = _value_and_grads(case, _on(torch.device("cpu"), case, inputs), reduction)
    got = _value_and_grads(case, _on(CUDA, case, inputs), reduction)
    for g, e in zip(got, expected, strict=True):
        assert g.device.type == "cuda"
        assert_close_to_sum_order(g.cpu(), e)


def _compiled(case: LossCase) -> LossCase:
    return dataclasses.replace(case, fn=torch.compile(case.fn, dynamic=True))


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_cuda_compiled_matches_eager(case: LossCase) -> None:
    inputs = _on(CUDA, case, case.inputs(1000, torch.float32, seed=5))
    expected = _value_and_grads(case, inputs, "mean")
    got = _value_and_grads(_compiled(case), inputs, "mean")
    for g, e in zip(got, expected, strict=True):
        assert_close_to_sum_order(g, e)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTION_PARAMS)
def test_cuda_loss_never_synchronises_with_the_host(
    case: LossCase, reduction: str, compiled: bool
) -> None:
    run = _compiled(case) if compiled else case
    inputs = _on(CUDA, case, case.inputs(300, torch.float32, seed=6))
    _value_and_grads(run, inputs, reduction)  # compiles, outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _value_and_grads(run, inputs, reduction)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_cuda_empty_input_gives_connected_zero(case: LossCase) -> None:
    inputs = _on(CUDA, case, case.inputs(0, torch.float32))
    loss, *grads = _value_and_grads(case, inputs, "mean")
    assert loss.device.type == "cuda"
    assert loss.cpu().item() == 0.0
    for i, grad in zip(case.grad_args, grads, strict=True):
        assert grad.shape == inputs[i].shape


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_cuda_half_precision_is_computed_in_float32(case: LossCase, dtype: torch.dtype) -> None:
    half = _on(CUDA, case, case.inputs(64, dtype, seed=2))
    loss, *grads = _value_and_grads(case, half, "mean")
    assert loss.dtype == torch.float32
    as_float = tuple(t.float() if t.dtype == dtype else t for t in half)
    assert_close_to_sum_order(loss, case(*as_float, reduction="mean"))
    for grad in grads:
        assert grad.dtype == dtype
        assert torch.isfinite(grad).all()


def test_cuda_bench_measures_every_family_quick() -> None:
    for family in FAMILIES:
        rows = run_family(family, CUDA, quick=True, compiled=False, rounds=2)
        assert [row.impl for row in rows] == [impl.name for impl in family.impls]
        for row in rows:
            assert row.device == "cuda"
            assert row.min_ms > 0
            assert row.peak_extra_bytes >= row.input_bytes
