"""Training a detector with one pair of losses: seeded, optionally mixed-precision and distributed.

A seed fixes everything but the losses: the initial weights (drawn before the model sees a loss),
the order of the images and their horizontal flips (drawn from a generator of their own). So
two runs with the same seed and different losses differ only through the losses: a paired
comparison.

Under ``torch.distributed`` (``torchrun``; gloo on CPU, NCCL on CUDA) every rank draws the same
global batch and trains on its share of it inside ``DistributedDataParallel``; the losses divide
by the global mean number of positives (:func:`detloss.global_avg_factor`), so the gradient is
the one process's gradient of the whole batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from detloss.ablate.data import DetectionSet
from detloss.ablate.losses import LOSSES, LossTable
from detloss.ablate.onestage import OneStageDetector
from detloss.ablate.twostage import TwoStageDetector

DETECTORS: tuple[str, ...] = ("onestage", "twostage")
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``lr`` peaks after ``warmup`` iterations, then decays by a cosine."""

    detector: str = "onestage"
    reg: str = "giou"
    cls: str = "focal"
    seed: int = 0
    iters: int = 1400
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    clip: float = 10.0
    amp: str | None = None
    device: str = "cpu"
    float64: bool = False
    label: str | None = None
    """The run's name in tables; default :attr:`name`'s ``reg+cls`` (``reg`` for two-stage)."""

    @property
    def name(self) -> str:
        if self.label is not None:
            return self.label
        return self.reg if self.detector == "twostage" else f"{self.reg}+{self.cls}"


@dataclass
class TrainResult:
    """The trained model and, per iteration, the losses (averaged over ranks) and gradient norm."""

    model: nn.Module
    losses: dict[str, list[float]] = field(default_factory=dict)
    grad_norm: list[float] = field(default_factory=list)
    skipped: int = 0
    """Iterations whose loss or gradient was not finite (the step was skipped)."""
    seconds: float = 0.0


def build_detector(
    config: TrainConfig, num_classes: int, size: int, table: LossTable = LOSSES
) -> nn.Module:
    """The detector of ``config`` with its losses looked up in ``table``."""
    if config.detector == "onestage":
        return OneStageDetector(num_classes, size, table[config.reg], table[config.cls])
    if config.detector == "twostage":
        return TwoStageDetector(
            num_classes, size, table[config.reg], table["rpn"], table["fast_rcnn"]
        )
    raise ValueError(f"detector must be one of {DETECTORS}, got {config.detector!r}")


def batch_order(num_images: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless ``(indices, flips)`` batches: epochs of seeded permutations, a coin flip per image."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(num_images, generator=generator)
        flips = torch.rand(num_images, generator=generator) < 0.5
        for start in range(0, num_images - batch_size + 1, batch_size):
            yield order[start : start + batch_size], flips[start : start + batch_size]


def make_batch(
    dataset: DetectionSet, indices: Tensor, flips: Tensor, device: torch.device
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Images ``(B, 3, S, S)`` uint8 (flipped where ``flips``), boxes and labels on ``device``."""
    images = dataset.images[indices]
    images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    boxes, labels = [], []
    for i, flip in zip(indices.tolist(), flips.tolist(), strict=True):
        box = dataset.boxes[i]
        if flip:
            box = torch.stack(
                (dataset.size - box[:, 2], box[:, 1], dataset.size - box[:, 0], box[:, 3]), 1
            )
        boxes.append(box.to(device))
        labels.append(dataset.labels[i].to(device))
    return images.to(device), boxes, labels


def learning_rate(config: TrainConfig, iteration: int) -> float:
    """Linear warm-up from ``lr / 10``, then cosine decay to ``lr / 100``."""
    if iteration < config.warmup:
        return config.lr * (0.1 + 0.9 * iteration / config.warmup)
    progress = (iteration - config.warmup) / max(1, config.iters - config.warmup)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(
    config: TrainConfig,
    dataset: DetectionSet,
    *,
    table: LossTable = LOSSES,
    on_iteration: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train the detector of ``config`` on ``dataset`` (each rank its share of every batch)."""
    rank, world = _world()
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} ranks")
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    model = build_detector(config, len(dataset.class_names), dataset.size, table)
    model = model.to(device, torch.float64 if config.float64 else torch.float32)
    trained: nn.Module = DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)
    amp = AMP_DTYPES[config.amp] if config.amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    share = config.batch_size // world
    mine = slice(rank * share, (rank + 1) * share)

    result = TrainResult(model)
    start = time.perf_counter()
    batches = batch_order(len(dataset), config.batch_size, config.seed)
    for iteration, (indices, flips) in zip(range(config.iters), batches, strict=False):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, iteration)
        images, boxes, labels = make_batch(dataset, indices[mine], flips[mine], device)
        with torch.autocast(device.type, amp or torch.float32, enabled=amp is not None):
            losses = trained(images, (boxes, labels))
        total = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(optimizer)
        norm = nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        finite = bool(torch.isfinite(norm))
        if finite or scaler.is_enabled():
            scaler.step(optimizer)  # the fp16 scaler itself skips non-finite gradients
        result.skipped += not finite
        scaler.update()
        _record(result, losses, total, norm, world)
        if on_iteration is not None:
            on_iteration(iteration + 1)
    result.seconds = time.perf_counter() - start
    return result


def _record(
    result: TrainResult, losses: dict[str, Tensor], total: Tensor, norm: Tensor, world: int
) -> None:
    """Append this iteration's losses, averaged over the ranks (= the whole batch's losses)."""
    values = torch.stack([total, *losses.values()]).detach().double()
    if world > 1:
        dist.all_reduce(values)
        values /= world
    for name, value in zip(["total", *losses], values.tolist(), strict=True):
        result.losses.setdefault(name, []).append(value)
    result.grad_norm.append(float(norm))
