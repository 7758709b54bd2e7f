"""Time and peak memory of the classification losses, forward + backward, on the CPU.

Run from the repository root (not collected by pytest)::

    .venv/bin/python -m tests.bench_classification [--rounds 15] [--compile] [--only focal,ce]

Each row times ``loss(x).backward()`` (float32, 2 threads) as the minimum over ``rounds``
interleaved rounds, and measures the peak of the running sum of the allocations that
``torch.profiler`` records during one call (``profile_memory=True``): the bytes allocated above what
existed before, the gradient of the logits included, as a multiple of the logits' size. Rows with
``autograd`` differentiate the value formula of ``tests/formulas.py``: the comparison that decides
whether a hand-written derivative (``detloss._fast``) is kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from fvcore.nn import sigmoid_focal_loss as fvcore_focal
from fvcore.nn import sigmoid_focal_loss_star as fvcore_focal_star
from torch import Tensor
from torch.utils.benchmark import Timer

import detloss
from detloss.benchmarks.measure import peak_extra_bytes
from tests import formulas

N, C = 100_000, 80
THREADS = 2
CPU = torch.device("cpu")


def make_step(
    loss: Callable[[Tensor], Tensor], logits: Tensor
) -> tuple[Callable[[], None], Tensor]:
    """One forward + backward of ``loss`` on a leaf copy of ``logits``, and that leaf."""
    x = logits.clone().requires_grad_(True)

    def step() -> None:
        loss(x).backward()
        x.grad = None  # freed here, not at the start of the next (measured) call

    return step, x


def inputs() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, C, generator=g) * 3
    labels = torch.full((N,), C)  # background
    positive = torch.rand(N, generator=g) < 0.02
    labels[positive] = torch.randint(0, C, (int(positive.sum()),), generator=g)
    one_hot = F.one_hot(labels, C + 1)[:, :C].float()
    scores = torch.rand(N, generator=g)
    return {
        "logits": logits,
        "labels": labels,
        "one_hot": one_hot,
        "iou": one_hot * scores[:, None],
        "scores": scores,
        "num_pos": positive.sum().float(),
        "logits81": torch.randn(N, C + 1, generator=g) * 3,
        "labels81": torch.randint(0, C + 1, (N,), generator=g),
        "bins": torch.randn(80_000, 17, generator=g) * 3,
        "distances": torch.rand(80_000, generator=g) * 15.99,
    }


def rows(
    d: dict[str, Tensor], compiled: bool
) -> dict[str, list[tuple[str, Callable[[Tensor], Tensor], Tensor]]]:
    npos, oh, iou = d["num_pos"], d["one_hot"], d["iou"]

    def fvcore_mean(x: Tensor) -> Tensor:
        loss: Tensor = fvcore_focal(x, oh, 0.25, 2.0, "sum")
        return loss / npos

    groups: dict[str, list[tuple[str, Callable[[Tensor], Tensor], Tensor]]] = {
        "focal": [
            ("fvcore sigmoid_focal_loss", fvcore_mean, d["logits"]),
            (
                "detloss sigmoid_focal_loss",
                lambda x: detloss.sigmoid_focal_loss(x, oh, 0.25, 2.0, avg_factor=npos),
                d["logits"],
            ),
            (
                "autograd of the focal formula",
                lambda x: formulas.sigmoid_focal(x, oh, 0.25, 2.0).sum() / npos,
                d["logits"],
            ),
        ],
        "ce": [
            ("F.cross_entropy", lambda x: F.cross_entropy(x, d["labels81"]), d["logits81"]),
            (
                "detloss cross_entropy",
                lambda x: detloss.cross_entropy(x, d["labels81"]),
                d["logits81"],
            ),
        ],
        "vfl": [
            (
                "detloss varifocal_loss",
                lambda x: detloss.varifocal_loss(x, iou, avg_factor=npos),
                d["logits"],
            ),
            (
                "autograd of the varifocal formula",
                lambda x: formulas.varifocal(x, iou, 0.75, 2.0, True).sum() / npos,
                d["logits"],
            ),
        ],
        "qfl": [
            (
                "detloss quality_focal_loss",
                lambda x: detloss.quality_focal_loss(x, iou, avg_factor=npos),
                d["logits"],
            ),
            (
                "autograd of the quality focal formula",
                lambda x: formulas.quality_focal(x, iou, 2.0).sum() / npos,
                d["logits"],
            ),
        ],
        "star": [
            (
                "fvcore sigmoid_focal_loss_star",
                lambda x: fvcore_focal_star(x, oh, 0.25, 1.0, "sum") / npos,
                d["logits"],
            ),
            (
                "detloss sigmoid_focal_loss_star",
                lambda x: detloss.sigmoid_focal_loss_star(x, oh, 0.25, 1.0, avg_factor=npos),
                d["logits"],
            ),
        ],
        "softmax_focal": [
            (
                "detloss softmax_focal_loss",
                lambda x: detloss.softmax_focal_loss(x, d["labels81"]),
                d["logits81"],
            ),
            (
                "autograd of the softmax focal formula",
                lambda x: formulas.softmax_focal(x, d["labels81"], 0.25, 2.0).mean(),
                d["logits81"],
            ),
        ],
        "dfl": [
            (
                "detloss distribution_focal_loss",
                lambda x: detloss.distribution_focal_loss(x, d["distances"]),
                d["bins"],
            ),
            (
                "autograd of the distribution focal formula",
                lambda x: formulas.distribution_focal(x, *_dfl_bins(d["distances"])).mean(),
                d["bins"],
            ),
        ],
    }
    if compiled:
        groups["focal_compiled"] = [
            ("compiled fvcore formula", torch.compile(fvcore_mean), d["logits"]),
            (
                "compiled detloss sigmoid_focal_loss",
                torch.compile(
                    lambda x: detloss.sigmoid_focal_loss(x, oh, 0.25, 2.0, avg_factor=npos)
                ),
                d["logits"],
            ),
        ]
    return groups


def _dfl_bins(distances: Tensor) -> tuple[Tensor, Tensor]:
    left = distances.floor().clamp_max(15)
    w_right = (distances - left).unsqueeze(1)
    index = left.long().unsqueeze(1)
    return torch.cat([index, index + 1], dim=1), torch.cat([1 - w_right, w_right], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="add the compiled focal rows")
    parser.add_argument("--only", default="", help="comma-separated groups")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    groups = rows(inputs(), args.compile)
    wanted = [g for g in args.only.split(",") if g] or list(groups)
    for name in wanted:
        entries = groups[name]
        steps = [make_step(loss, logits) for _, loss, logits in entries]
        for step, _ in steps:  # warm-up (and compilation)
            step()
            step()
        peaks = [peak_extra_bytes(step, leaf, CPU) / leaf.nbytes for step, leaf in steps]
        timers = [Timer("step()", globals={"step": step}, num_threads=THREADS) for step, _ in steps]
        best = [float("inf")] * len(steps)
        for _ in range(args.rounds):
            for i, timer in enumerate(timers):
                best[i] = min(best[i], timer.timeit(1).mean)
        print(f"[{name}]")
        for (label, _, _), seconds, peak in zip(entries, best, peaks, strict=True):
            print(f"  {label:40s} {seconds * 1e3:8.1f} ms  peak {peak:5.2f}x logits")


if __name__ == "__main__":
    main()
