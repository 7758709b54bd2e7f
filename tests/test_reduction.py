"""The shared reduction mechanism: weight, reduction, avg_factor, empty inputs, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch._dynamo.testing import EagerAndRecordGraphs

from detloss.reduction import AVG_FACTOR_EPS, REDUCTIONS, weight_reduce_loss
from tests.dynamo import global_inputs


def _loss(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_eps_is_float32_machine_epsilon() -> None:
    assert torch.finfo(torch.float32).eps == AVG_FACTOR_EPS


@pytest.mark.parametrize("bad", ["avg", "MEAN", None, 1, "elementwise_mean"])
def test_unknown_reduction_names_the_valid_ones(bad: object) -> None:
    with pytest.raises(
        ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\)"
    ) as err:
        weight_reduce_loss(_loss(3), reduction=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(err.value)


def test_reductions_without_weight() -> None:
    loss = _loss(5, 4)
    torch.testing.assert_close(weight_reduce_loss(loss, reduction="none"), loss)
    torch.testing.assert_close(weight_reduce_loss(loss, reduction="sum"), loss.sum())
    torch.testing.assert_close(weight_reduce_loss(loss, reduction="mean"), loss.mean())


@pytest.mark.parametrize("weight_shape", [(5, 4), (5, 1), (4,), (1, 1), ()])
def test_weight_broadcasts_to_the_loss(weight_shape: tuple[int, ...]) -> None:
    loss = _loss(5, 4)
    weight = torch.rand(weight_shape, dtype=torch.float64)
    weighted = loss * weight
    torch.testing.assert_close(weight_reduce_loss(loss, weight, "none"), weighted)
    torch.testing.assert_close(weight_reduce_loss(loss, weight, "sum"), weighted.sum())
    # mmdetection's "mean" is over all elements, zero-weight ones included (not a weighted mean).
    torch.testing.assert_close(weight_reduce_loss(loss, weight, "mean"), weighted.sum() / 20)


@pytest.mark.parametrize("weight_shape", [(3,), (5, 3), (2, 5, 4), (5, 4, 1)])
def test_weight_that_cannot_broadcast_names_both_shapes(weight_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="weight of shape") as err:
        weight_reduce_loss(_loss(5, 4), torch.ones(weight_shape))
    assert str(tuple(weight_shape)) in str(err.value)
    assert "(5, 4)" in str(err.value)


def test_weight_must_be_a_tensor() -> None:
    with pytest.raises(TypeError, match="weight must be a torch.Tensor, got list"):
        weight_reduce_loss(_loss(2), [1.0, 2.0])  # type: ignore[arg-type]


def test_weight_dtype_follows_the_loss() -> None:
    loss = _loss(4).float()
    out = weight_reduce_loss(loss, torch.tensor([1, 0, 1, 1]), "none")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, loss * torch.tensor([1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("avg_factor", [3.0, 7, torch.tensor(12.5), torch.tensor(4)])
def test_avg_factor_divides_the_sum_with_float32_eps(avg_factor: float | torch.Tensor) -> None:
    loss = _loss(5, 4)
    expected = loss.sum() / (float(avg_factor) + AVG_FACTOR_EPS)
    torch.testing.assert_close(
        weight_reduce_loss(loss, reduction="mean", avg_factor=avg_factor), expected
    )


def test_avg_factor_is_ignored_by_none() -> None:
    loss = _loss(3, 2)
    torch.testing.assert_close(weight_reduce_loss(loss, reduction="none", avg_factor=10.0), loss)


def test_avg_factor_with_sum_is_an_error() -> None:
    with pytest.raises(ValueError, match='avg_factor cannot be used with reduction="sum"'):
        weight_reduce_loss(_loss(3), reduction="sum", avg_factor=2.0)


def test_zero_avg_factor_with_zero_weights_gives_zero_not_nan() -> None:
    loss = _loss(6, 4).requires_grad_(True)
    out = weight_reduce_loss(loss, torch.zeros(6, 1), "mean", avg_factor=0.0)
    assert out.item() == 0.0
    out.backward()
    assert loss.grad is not None
    assert torch.equal(loss.grad, torch.zeros_like(loss))


@pytest.mark.parametrize(
    ("reduction", "avg_factor"), [("sum", None), ("mean", None), ("mean", 0.0), ("mean", 5.0)]
)
def test_empty_loss_reduces_to_a_connected_exact_zero(
    reduction: str, avg_factor: float | None
) -> None:
    source = torch.zeros(0, 4, requires_grad=True)
    out = weight_reduce_loss(source * 2, reduction=reduction, avg_factor=avg_factor)
    assert out.shape == ()
    assert out.item() == 0.0
    assert out.requires_grad
    out.backward()
    assert source.grad is not None
    assert source.grad.shape == (0, 4)


def test_empty_loss_with_none_is_empty() -> None:
    out = weight_reduce_loss(torch.zeros(0, 4), torch.ones(0, 1), "none")
    assert out.shape == (0, 4)


@pytest.mark.parametrize("dynamic", [True, False])
@pytest.mark.parametrize("avg", [None, 3.0, torch.tensor(3.0)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compiles_without_graph_breaks(
    reduction: str, avg: float | torch.Tensor | None, dynamic: bool
) -> None:
    if reduction == "sum" and avg is not None:
        pytest.skip("an error, tested above")
    compiled = torch.compile(weight_reduce_loss, fullgraph=True, backend="eager", dynamic=dynamic)
    loss, weight = _loss(5, 4), torch.rand(5, 1, dtype=torch.float64)
    torch.testing.assert_close(
        compiled(loss, weight, reduction, avg), weight_reduce_loss(loss, weight, reduction, avg)
    )


@given(
    values=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=0, max_size=30),
    scale=st.floats(0, 10),
)
def test_sum_and_mean_follow_their_definitions(values: list[float], scale: float) -> None:
    loss = torch.tensor(values, dtype=torch.float64)
    weight = torch.full_like(loss, scale)
    total = (loss * weight).sum()
    torch.testing.assert_close(weight_reduce_loss(loss, weight, "sum"), total)
    torch.testing.assert_close(
        weight_reduce_loss(loss, weight, "mean"), total / max(len(values), 1)
    )


@pytest.mark.parametrize(
    ("avg_factor", "error", "match"),
    [
        (-1.0, ValueError, r"avg_factor must be a finite number >= 0, got -1.0"),
        (float("nan"), ValueError, "avg_factor"),
        (float("inf"), ValueError, "avg_factor"),
        ("5", TypeError, "avg_factor must be a real number, got str"),
        (True, TypeError, "avg_factor must be a real number, got bool"),
        (torch.ones(2), ValueError, r"one element, got a tensor of shape \(2,\)"),
        (torch.ones(1, 1), ValueError, r"shape \(1, 1\)"),
        (torch.tensor(True), TypeError, "real tensor"),
    ],
)
def test_bad_avg_factor_is_rejected_up_front(avg_factor: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        weight_reduce_loss(_loss(3, 2), avg_factor=avg_factor)  # type: ignore[arg-type]


@pytest.mark.parametrize("loss_dtype", [torch.float16, torch.float32])
def test_a_float64_avg_factor_tensor_keeps_the_loss_dtype(loss_dtype: torch.dtype) -> None:
    loss = _loss(3, 2).to(loss_dtype)
    for factor in (torch.tensor(4.0, dtype=torch.float64), torch.tensor([4]), torch.tensor(4)):
        out = weight_reduce_loss(loss, avg_factor=factor)
        assert out.shape == ()
        assert out.dtype == loss_dtype
        torch.testing.assert_close(out, loss.sum() / (4 + AVG_FACTOR_EPS))


def test_weight_given_as_a_list_names_the_type() -> None:
    with pytest.raises(TypeError, match="weight must be a torch.Tensor, got list"):
        weight_reduce_loss(_loss(3, 2), [1.0, 2.0])  # type: ignore[arg-type]


def test_compiled_avg_factor_division_takes_only_the_call_arguments() -> None:
    # torch.compile(dynamic=True) turns a module-level float read while tracing into a graph
    # input (a tensor built on every call); the eps must fold to a constant instead.
    backend = EagerAndRecordGraphs()
    compiled = torch.compile(weight_reduce_loss, backend=backend, dynamic=True, fullgraph=True)
    out = compiled(_loss(5, 4).float(), None, "mean", 3.0)
    torch.testing.assert_close(out, _loss(5, 4).float().sum() / (3.0 + AVG_FACTOR_EPS))
    assert global_inputs(backend) == []
