"""Run a list of trainings and evaluate each: in this process, or in single-thread worker processes.

Independent runs scale across cores far better as processes of one thread each than as one
process of several threads (a multi-threaded run collapses when another process takes a core).
Workers read the datasets from a file and report their progress through a queue.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import queue
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from detloss.ablate.data import DetectionSet
from detloss.ablate.evaluate import coco_metrics, coco_results, predict
from detloss.ablate.train import TrainConfig, TrainResult, train

SAMPLE_IMAGES = 6
"""Validation images whose detections each run keeps for the report's figure."""
CURVE_POINTS = 200
"""Loss curves are kept as at most this many means of consecutive iterations."""
PROGRESS_EVERY = 10

Progress = Callable[[int, int], None]
"""``on_progress(run index, iterations done)``."""


def save_datasets(path: Path, train_set: DetectionSet, val_set: DetectionSet) -> None:
    torch.save({"train": train_set.to_dict(), "val": val_set.to_dict()}, path)


def load_datasets(path: Path) -> tuple[DetectionSet, DetectionSet]:
    saved = torch.load(path, weights_only=True)
    return DetectionSet.from_dict(saved["train"]), DetectionSet.from_dict(saved["val"])


def binned(values: Sequence[float], points: int = CURVE_POINTS) -> tuple[int, list[float]]:
    """``(bin width, means of consecutive bins)`` with at most ``points`` bins."""
    width = max(1, -(-len(values) // points))
    means = [
        sum(values[i : i + width]) / len(values[i : i + width])
        for i in range(0, len(values), width)
    ]
    return width, means


def summarize_run(
    config: TrainConfig, result: TrainResult, val_set: DetectionSet
) -> dict[str, Any]:
    """The run's JSON record: config, COCO metrics, binned loss curves, sample detections."""
    detections = predict(result.model, val_set, torch.device(config.device))
    width, _ = binned(result.grad_norm)
    samples = [
        {
            "boxes": boxes[scores >= 0.3].tolist(),
            "scores": scores[scores >= 0.3].tolist(),
            "labels": labels[scores >= 0.3].tolist(),
        }
        for boxes, scores, labels in detections[:SAMPLE_IMAGES]
    ]
    return {
        "name": config.name,
        "config": dataclasses.asdict(config),
        "metrics": coco_metrics(val_set, coco_results(val_set, detections)),
        "curve_bin": width,
        "losses": {name: binned(values)[1] for name, values in result.losses.items()},
        "grad_norm": binned(result.grad_norm)[1],
        "max_grad_norm": max(result.grad_norm),
        "skipped_steps": result.skipped,
        "train_seconds": result.seconds,
        "samples": samples,
    }


def run_one(
    config: TrainConfig,
    train_set: DetectionSet,
    val_set: DetectionSet,
    on_iteration: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` and evaluate it on ``val_set``."""
    result = train(config, train_set, on_iteration=on_iteration)
    return summarize_run(config, result, val_set)


def _worker_init() -> None:
    torch.set_num_threads(1)


def _worker_run(
    index: int, config: TrainConfig, data_path: str, progress: queue.Queue[tuple[int, int]]
) -> dict[str, Any]:
    train_set, val_set = load_datasets(Path(data_path))

    def report(iteration: int) -> None:
        if iteration % PROGRESS_EVERY == 0 or iteration == config.iters:
            progress.put((index, iteration))

    return run_one(config, train_set, val_set, report)


def run_all(
    configs: Sequence[TrainConfig],
    data_path: Path,
    workers: int,
    on_progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every run's record, in the order of ``configs``; ``workers > 1`` runs them in that many
    spawned single-thread processes (``workers <= 1``: here, one after the other)."""
    if workers <= 1:
        train_set, val_set = load_datasets(data_path)
        return [
            run_one(config, train_set, val_set, _reporter(on_progress, index))
            for index, config in enumerate(configs)
        ]
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_worker_init
        ) as pool,
    ):
        progress: queue.Queue[tuple[int, int]] = manager.Queue()
        futures = [
            pool.submit(_worker_run, index, config, str(data_path), progress)
            for index, config in enumerate(configs)
        ]
        pending = set(futures)
        while pending:
            _, pending = concurrent.futures.wait(pending, timeout=0.2)
            _drain(progress, on_progress)
        _drain(progress, on_progress)
        return [future.result() for future in futures]


def _reporter(on_progress: Progress | None, index: int) -> Callable[[int], None] | None:
    if on_progress is None:
        return None
    return lambda iteration: on_progress(index, iteration)


def _drain(progress: queue.Queue[tuple[int, int]], on_progress: Progress | None) -> None:
    while True:
        try:
            index, iteration = progress.get_nowait()
        except queue.Empty:
            return
        if on_progress is not None:
            on_progress(index, iteration)
