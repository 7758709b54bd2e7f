"""The ablation's training under DistributedDataParallel: two gloo ranks, each with half of every
global batch, follow one process's loss curve on the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import spawn

from detloss.ablate import data, onestage
from detloss.ablate.train import TrainConfig, train

WORLD = 2
CONFIG = TrainConfig("onestage", "giou", "focal", seed=1, iters=6, batch_size=8, float64=True)


def _dataset() -> data.DetectionSet:
    return data.synthetic(16, seed=7)


def _params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        dataset = _dataset()
        result = train(CONFIG, dataset)
        torch.save(
            {"losses": result.losses, "params": _params(result.model)},
            Path(out_dir) / f"global-{rank}.pt",
        )
        # The control: each rank divides by its own positives instead of the global mean.
        onestage.avg_factor = lambda num_pos: num_pos.clamp_min(1).double()  # type: ignore[attr-defined]
        local = train(CONFIG, dataset)
        torch.save({"losses": local.losses}, Path(out_dir) / f"local-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    out = tmp_path_factory.mktemp("ablate-ddp")
    spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return {
        mode: [torch.load(out / f"{mode}-{rank}.pt") for rank in range(WORLD)]
        for mode in ("global", "local")
    }


def test_two_ranks_follow_one_process(ranks) -> None:
    single = train(CONFIG, _dataset())
    for rank in ranks["global"]:
        for name, curve in single.losses.items():
            torch.testing.assert_close(
                torch.tensor(rank["losses"][name]), torch.tensor(curve), rtol=1e-9, atol=1e-9
            )
        torch.testing.assert_close(rank["params"], _params(single.model), rtol=0, atol=1e-9)
    total = single.losses["total"]
    assert total[-1] < total[0]


def test_per_rank_normalisation_departs(ranks) -> None:
    single = train(CONFIG, _dataset())
    local = torch.tensor(ranks["local"][0]["losses"]["total"])
    assert (local - torch.tensor(single.losses["total"])).abs().max() > 1e-4
