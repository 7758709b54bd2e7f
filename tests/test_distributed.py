"""Distributed normalisation: two gloo ranks under DDP train exactly like one process on the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing.spawn import spawn
from torch.nn.parallel import DistributedDataParallel

import detloss
from detloss.distributed import global_avg_factor

WORLD = 2
STEPS = 4
# Unequal positives per rank: rank 0 holds 7 of the 8 positives, rank 1 only 1.
SPLITS = ((0, 10), (10, 20))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    features = torch.randn(20, 6, generator=g, dtype=torch.float64)
    targets = torch.zeros(20, 3, dtype=torch.float64)
    positives = [(0, 0), (1, 1), (2, 2), (3, 0), (5, 1), (7, 2), (9, 0), (14, 1)]
    for row, cls in positives:
        targets[row, cls] = 1.0
    return features, targets


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _train(model: nn.Module, features: torch.Tensor, targets: torch.Tensor, mode: str) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(STEPS):
        num_pos = targets.sum()
        # "naive": each rank normalises by its own positives.
        avg_factor = global_avg_factor(num_pos) if mode == "global" else num_pos.clamp_min(1)
        loss = detloss.sigmoid_focal_loss(model(features), targets, avg_factor=avg_factor)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        features, targets = _data()
        start, stop = SPLITS[rank]
        for mode in ("global", "naive"):
            model = DistributedDataParallel(_model())
            _train(model, features[start:stop], targets[start:stop], mode)
            torch.save(_params(model.module), Path(out_dir) / f"{mode}-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_params(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[torch.Tensor]]:
    out = tmp_path_factory.mktemp("ddp")
    spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return {
        mode: [torch.load(out / f"{mode}-{rank}.pt") for rank in range(WORLD)]
        for mode in ("global", "naive")
    }


def test_global_avg_factor_training_equals_single_process(ddp_params) -> None:
    features, targets = _data()
    reference = _model()
    # Without a process group global_avg_factor is the local count: the concatenated batch.
    _train(reference, features, targets, "global")
    expected = _params(reference)
    for params in ddp_params["global"]:
        torch.testing.assert_close(params, expected, rtol=0, atol=1e-6)
    assert not torch.equal(expected, _params(_model())), "training did not move the parameters"


def test_per_rank_normalisation_does_not_match(ddp_params) -> None:
    features, targets = _data()
    reference = _model()
    _train(reference, features, targets, "global")
    difference = (ddp_params["naive"][0] - _params(reference)).abs().max()
    assert difference > 1e-3


def test_global_avg_factor_without_process_group() -> None:
    assert not dist.is_initialized()
    assert global_avg_factor(0).item() == 1.0
    assert global_avg_factor(torch.tensor(5)).item() == 5.0
    assert global_avg_factor(0.25, min_value=0.0).item() == 0.25
    assert global_avg_factor(torch.tensor(3.0, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="scalar"):
        global_avg_factor(torch.ones(2))
