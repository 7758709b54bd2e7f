"""The backend switch and the fused path: call-time dispatch, compile cache, fallback."""

from __future__ import annotations

import functools
import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import detloss
from detloss import backend
from detloss.modules import SmoothL1Loss

EAGER_SMOOTH_L1: Callable[..., torch.Tensor] = inspect.unwrap(detloss.smooth_l1_loss)


@pytest.fixture(autouse=True)
def _clean_backend() -> Iterator[None]:
    """Every test starts and ends eager, with no compiled entry and no recorded failure."""
    backend.clear_compile_cache()
    yield
    backend.set_backend("eager")
    backend.clear_compile_cache()
    backend._state.compile_failed = False


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> CompileCounter:
    """Compile through dynamo with a counting backend instead of inductor (fast, same dispatch)."""
    counting = CompileCounter()
    monkeypatch.setattr(
        backend, "_compile", functools.partial(torch.compile, dynamic=True, backend=counting)
    )
    return counting


def _pair(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, requires_grad=True), torch.randn(n, 4, generator=g)


def test_default_backend_is_eager() -> None:
    assert detloss.get_backend() == "eager"


def test_set_backend_and_context_manager_restore() -> None:
    detloss.set_backend("compile")
    assert detloss.get_backend() == "compile"
    seen = []

    def fail_inside() -> None:
        with detloss.use_backend("eager"):
            seen.append(detloss.get_backend())
            raise KeyError("inside")

    with pytest.raises(KeyError):
        fail_inside()
    assert seen == ["eager"]
    assert detloss.get_backend() == "compile"


@pytest.mark.parametrize("bad", ["inductor", "COMPILE", None, 1])
def test_unknown_backend_names_the_valid_ones(bad: object) -> None:
    with pytest.raises(ValueError, match=r"backend must be one of \('eager', 'compile'\)") as err:
        detloss.set_backend(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(err.value)
    assert detloss.get_backend() == "eager"


@pytest.mark.parametrize(("value", "expected"), [("compile", "compile"), ("eager", "eager")])
def test_environment_variable_selects_backend_at_import(value: str, expected: str) -> None:
    env = {**os.environ, "DETLOSS_BACKEND": value}
    out = subprocess.run(
        [sys.executable, "-c", "import detloss; print(detloss.get_backend())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected


def test_backend_is_read_at_call_time(counter: CompileCounter) -> None:
    from detloss import smooth_l1_loss  # imported (and the module built) before the switch

    module = SmoothL1Loss(beta=0.5)
    pred, target = _pair(16)
    smooth_l1_loss(pred, target)
    module(pred, target)
    assert counter.frame_count == 0
    detloss.set_backend("compile")
    smooth_l1_loss(pred, target)
    assert counter.frame_count == 1
    module(pred, target)  # its own call structure (beta given): its own entry
    assert counter.frame_count == 2


def test_changing_sizes_and_avg_factor_never_recompiles(counter: CompileCounter) -> None:
    detloss.set_backend("compile")
    for n, avg_factor in [(2, 1.5), (7, 3.0), (1000, 250.0), (33, 0.5)]:
        pred, target = _pair(n)
        expected = EAGER_SMOOTH_L1(pred, target, avg_factor=avg_factor)
        got = detloss.smooth_l1_loss(pred, target, avg_factor=avg_factor)
        torch.testing.assert_close(got, expected)
    assert counter.frame_count == 1


def test_each_call_structure_gets_its_own_entry(counter: CompileCounter) -> None:
    # 3 reductions x (weight or not) x (avg_factor or not) = 12 structures, more than dynamo's
    # recompile limit of 8 per code object: each must still be compiled, once.
    detloss.set_backend("compile")
    pred, target = _pair(10)
    weight = torch.rand(10, 4)
    structures: list[dict[str, Any]] = [
        {"reduction": r, "weight": w, "avg_factor": a}
        for r in ("none", "mean", "sum")
        for w in (None, weight)
        for a in (None, 4.0)
        if not (r == "sum" and a is not None)
    ] + [{"reduction": "none", "weight": weight, "avg_factor": 2.0}]
    for _ in range(2):
        for kwargs in structures:
            got = detloss.smooth_l1_loss(pred, target, **kwargs)
            expected = EAGER_SMOOTH_L1(pred, target, **kwargs)
            torch.testing.assert_close(got, expected)
    assert len(structures) > torch._dynamo.config.recompile_limit
    assert counter.frame_count == len(
        {backend.call_key(EAGER_SMOOTH_L1, (pred, target), s) for s in structures}
    )


def test_call_key_ignores_tensor_and_number_values() -> None:
    fn = detloss.smooth_l1_loss
    a = backend.call_key(fn, (torch.zeros(3, 4), torch.ones(3, 4)), {"avg_factor": 2.0})
    b = backend.call_key(fn, (torch.zeros(9, 4), torch.ones(9, 4)), {"avg_factor": 7.5})
    assert a == b
    assert a != backend.call_key(fn, (torch.zeros(3, 4), torch.ones(3, 4)), {"avg_factor": None})
    assert a != backend.call_key(fn, (torch.zeros(3, 4), torch.ones(3, 4)), {"avg_factor": 2})
    assert backend.call_key(fn, (), {"reduction": "sum"}) != backend.call_key(
        fn, (), {"reduction": "mean"}
    )
    assert backend.call_key(fn, (), {"dim": [1, 2]}) == backend.call_key(fn, (), {"dim": (3, 4)})


def test_bad_input_raises_the_losses_error_and_keeps_compiling(counter: CompileCounter) -> None:
    detloss.set_backend("compile")
    pred, target = _pair(4)
    with pytest.raises(ValueError, match="same shape"):
        detloss.smooth_l1_loss(pred, target[:3])
    inside = torch.ones(4, 4)
    with pytest.raises(IndexError):  # an error of the maths, not of the input checks
        detloss.caffe_smooth_l1_loss(pred, target, inside, inside, dim=(5,))
    assert not backend._state.compile_failed
    detloss.smooth_l1_loss(pred, target)
    assert counter.frame_count >= 1


def test_loss_inside_a_users_compiled_model_is_traced_inline() -> None:
    detloss.set_backend("compile")

    def step(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return detloss.smooth_l1_loss(pred * 2, target, beta=1 / 9) + 1

    pred, target = _pair(8)
    compiled = torch.compile(step, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(pred, target), step(pred, target))


def _failing_compile(fn: Callable[..., Any]) -> Callable[..., Any]:
    raise RuntimeError("torch.compile is not supported on this platform")


def test_impossible_compile_warns_once_and_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "_compile", _failing_compile)
    detloss.set_backend("compile")
    pred, target = _pair(6)
    with pytest.warns(RuntimeWarning, match="smooth_l1_loss failed .*not supported on this"):
        got = detloss.smooth_l1_loss(pred, target)
    torch.testing.assert_close(got, EAGER_SMOOTH_L1(pred, target))
    assert backend._state.compile_failed
    # From now on every loss runs eagerly, silently (pytest turns RuntimeWarnings into errors).
    detloss.smooth_l1_loss(pred, target)
    detloss.l1_loss(pred, target)
    assert detloss.get_backend() == "compile"


def test_missing_cxx_compiler_falls_back_to_eager() -> None:
    """A real inductor failure: no working C++ compiler."""
    detloss.set_backend("compile")
    pred, target = _pair(6)
    patch = torch._inductor.config.patch(
        {"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}
    )
    with patch, pytest.warns(RuntimeWarning, match="C\\+\\+ compiler"):
        got = detloss.mse_loss(pred, target, reduction="sum")
    got.backward()
    expected_grad = 2 * (pred - target).detach()
    torch.testing.assert_close(got, ((pred - target) ** 2).sum())
    torch.testing.assert_close(pred.grad, expected_grad)


def test_fused_matches_eager_with_inductor_across_sizes() -> None:
    """The real fused path (inductor, C++ on CPU): one compilation serves every size."""
    from torch._dynamo.utils import counters

    detloss.set_backend("compile")
    weight = None
    before = counters["stats"]["unique_graphs"]
    for n in (5, 64, 1001):
        fused_pred, target = _pair(n, seed=n)
        eager_pred = fused_pred.detach().clone().requires_grad_(True)
        weight = torch.rand(n, 4, generator=torch.Generator().manual_seed(n))
        fused = detloss.smooth_l1_loss(fused_pred, target, 1 / 9, weight=weight, avg_factor=n / 2)
        with detloss.use_backend("eager"):
            eager = detloss.smooth_l1_loss(
                eager_pred, target, 1 / 9, weight=weight, avg_factor=n / 2
            )
        fused.backward()
        eager.backward()
        torch.testing.assert_close(fused, eager)
        torch.testing.assert_close(fused_pred.grad, eager_pred.grad)
    assert counters["stats"]["unique_graphs"] - before == 1


def test_compiling_many_public_losses_directly_keeps_separate_caches() -> None:
    # Each public loss has its own code object: compiling ten of them with three reductions and
    # two sizes each would exceed one shared cache's recompile limit (8) under fullgraph=True.
    losses = [
        detloss.smooth_l1_loss,
        detloss.l1_loss,
        detloss.mse_loss,
        detloss.huber_loss,
        detloss.balanced_l1_loss,
        detloss.iou_loss,
        detloss.giou_loss,
        detloss.diou_loss,
        detloss.ciou_loss,
        detloss.eiou_loss,
    ]
    pred = torch.rand(8, 4)
    target = pred + 0.1
    for fn in losses:
        compiled = torch.compile(fn, fullgraph=True, backend="eager", dynamic=True)
        for reduction in ("none", "mean", "sum"):
            for n in (8, 5):
                torch.testing.assert_close(
                    compiled(pred[:n], target[:n], reduction=reduction),
                    fn(pred[:n], target[:n], reduction=reduction),
                )


def test_fused_kernels_stay_parallel_after_a_small_first_call() -> None:
    """Inductor would make a C++ loop serial when the compiling call's sizes look too small to
    share among threads, and reuse it for later sizes that pass the same guards; detloss compiles
    with ``cpp.dynamic_threads`` so that each loop has a parallel region whatever the first size."""
    from torch._inductor.utils import run_and_get_code

    pred, target = _pair(16)

    def fused_call() -> None:
        with detloss.use_backend("compile"):
            detloss.smooth_l1_loss(pred, target, 0.5).backward()

    _, sources = run_and_get_code(fused_call)
    kernels = [part for source in sources for part in source.split('extern "C"')[1:]]
    assert len(kernels) >= 2  # forward and backward
    assert all("#pragma omp parallel" in kernel for kernel in kernels)
