"""Stateful losses under DDP: two gloo ranks hold the state of, and train like, one process on the
concatenated batch (GHM-C/GHM-R's moving histogram, Seesaw's class counts, EQLv2's gradients)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.multiprocessing.spawn import spawn
from torch.nn.parallel import DistributedDataParallel

import detloss
from detloss.distributed import global_avg_factor

WORLD = 2
STEPS = 3
ROWS = 20
SPLITS = ((0, 13), (13, ROWS))  # unequal shards
K = 3  # classes of Seesaw and EQLv2; GHM-C's channels


def _ghmc_step(module, out, data):
    return module(out, data["labels"], data["valid"])


def _ghmr_step(module, out, data):
    return module(out, data["deltas"], data["box_weight"])


def _seesaw_step(module, out, data):
    num_pos = (data["labels"] < K).sum()
    return module(out, data["labels"], avg_factor=global_avg_factor(num_pos))


def _eqlv2_step(module, out, data):
    return module(out, data["labels"], avg_factor=global_avg_factor(out.shape[0]))


# name: (classifier outputs, loss module, one step's loss)
SPECS: dict[str, tuple[int, Callable[[], nn.Module], Callable[..., Tensor]]] = {
    "GHMC": (K, lambda: detloss.GHMC(bins=10, momentum=0.75), _ghmc_step),
    "GHMR": (4, lambda: detloss.GHMR(mu=0.02, momentum=0.7, loss_weight=10.0), _ghmr_step),
    "SeesawLoss": (
        K + 2,
        lambda: detloss.SeesawLoss(num_classes=K, return_dict=False),
        _seesaw_step,
    ),
    "EQLV2Loss": (K + 1, lambda: detloss.EQLV2Loss(num_classes=K, gamma=3.0), _eqlv2_step),
}


def _data(step: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(step)
    labels = torch.randint(0, K + 1, (ROWS,), generator=g)
    labels[:3] = torch.tensor([0, 1, 2])  # every class present in the first shard
    return {
        "features": torch.randn(ROWS, 6, generator=g, dtype=torch.float64),
        "labels": labels,
        "valid": (torch.rand(ROWS, generator=g) < 0.8).double(),
        "deltas": torch.randn(ROWS, 4, generator=g, dtype=torch.float64) * 0.05,
        "box_weight": (torch.rand(ROWS, 1, generator=g) < 0.6).double().expand(ROWS, 4),
    }


def _shard(data: dict[str, Tensor], start: int, stop: int) -> dict[str, Tensor]:
    return {key: value[start:stop] for key, value in data.items()}


def _model(outputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(6, outputs).double()


def _train(name: str, model: nn.Module, rows: tuple[int, int]) -> tuple[nn.Module, Tensor]:
    _, make_loss, step_loss = SPECS[name]
    loss_module = make_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for step in range(STEPS):
        data = _shard(_data(step), *rows)
        loss = step_loss(loss_module, model(data["features"]), data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return loss_module, torch.stack(losses)


def _params(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, (outputs, _, _) in SPECS.items():
            model = DistributedDataParallel(_model(outputs))
            loss_module, losses = _train(name, model, SPLITS[rank])
            results[name] = {
                "params": _params(model.module),
                "state": loss_module.state_dict(),
                "losses": losses,
            }
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("stateful_ddp")
    spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{rank}.pt") for rank in range(WORLD)]


@pytest.mark.parametrize("name", list(SPECS))
def test_ddp_equals_one_process_on_the_concatenated_batch(name: str, ranks) -> None:
    model = _model(SPECS[name][0])
    loss_module, losses = _train(name, model, (0, ROWS))
    assert not torch.equal(_params(model), _params(_model(SPECS[name][0])))
    results = [rank[name] for rank in ranks]
    for result in results:
        # The same state on every rank, equal to the single process's.
        for key, value in loss_module.state_dict().items():
            torch.testing.assert_close(result["state"][key], value)
        torch.testing.assert_close(result["params"], _params(model), rtol=0, atol=1e-6)
    # Each rank's loss is W times its share: their mean is the loss of the whole batch.
    mean_loss = torch.stack([result["losses"] for result in results]).mean(0)
    torch.testing.assert_close(mean_loss, losses, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(SPECS))
def test_a_shard_alone_has_another_state(name: str) -> None:
    # Without the sum over the ranks, a rank's state would differ: the test above is not vacuous.
    whole, _ = _train(name, _model(SPECS[name][0]), (0, ROWS))
    shard, _ = _train(name, _model(SPECS[name][0]), SPLITS[0])
    differs = [
        not torch.equal(shard.state_dict()[key], value)
        for key, value in whole.state_dict().items()
        if key != "edges"
    ]
    assert any(differs)
