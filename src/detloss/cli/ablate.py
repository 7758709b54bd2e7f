"""``detloss ablate``: train a detector with each loss and print the ablation table in miniature.

Needs the ``ablate`` extra (pycocotools, pillow; typer, rich, matplotlib). See
:mod:`detloss.ablate` and docs/ablation.md.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.distributed as dist
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from detloss.ablate import data, experiment, report
from detloss.ablate.losses import CLASSIFICATION, REGRESSION, parse
from detloss.ablate.train import AMP_DTYPES, DETECTORS, TrainConfig
from detloss.cli import app

DEFAULT_LOSSES = "smooth_l1,giou,ciou"
DEFAULT_ITERS = 700
PAIRED_COMMAND = "detloss ablate --seeds 5 --iters 1000 --out ablate-paired"


def parse_seeds(value: str) -> list[int]:
    """``"5"``: seeds 0-4; ``"0,3,7"`` or ``"2-4"`` (inclusive ranges) name them."""
    value = value.strip()
    try:
        if value.isdigit():
            count = int(value)
            if count < 1:
                raise ValueError
            return list(range(count))
        seeds: list[int] = []
        for part in value.split(","):
            low, _, high = part.strip().partition("-")
            seeds += range(int(low), int(high or low) + 1)
    except ValueError:
        raise typer.BadParameter(
            f"expected a count (5) or seeds (0,3,7 or 2-4), got {value!r}", param_hint="--seeds"
        ) from None
    if not seeds:
        raise typer.BadParameter(f"no seeds in {value!r}", param_hint="--seeds")
    return list(dict.fromkeys(seeds))


def _names(value: str, valid: tuple[str, ...], option: str) -> tuple[str, ...]:
    try:
        return parse(value, valid, option)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=option) from err


def _device(value: str) -> str:
    try:
        torch.empty(0, device=torch.device(value))
    except (RuntimeError, AssertionError) as err:
        raise typer.BadParameter(f"cannot use device {value!r}: {err}") from err
    return value


def load_data(
    annotations: Path | None,
    images: Path | None,
    val_annotations: Path | None,
    val_images: Path | None,
    size: int,
    synthetic: tuple[int, int, int],
) -> tuple[data.DetectionSet, data.DetectionSet]:
    """The user's COCO files (10% of the images held out without a validation file), or the
    synthetic set: ``synthetic = (training images, validation images, seed)``."""
    if annotations is None:
        train_count, val_count, seed = synthetic
        full = data.synthetic(train_count + val_count, seed, size)
        return data.split(full, val_count / (train_count + val_count))
    if images is None:
        raise typer.BadParameter("--data needs --images (the folder of its images)")
    train_set = data.read_coco(annotations, images, size)
    if val_annotations is None:
        return data.split(train_set, 0.1)
    return train_set, data.read_coco(val_annotations, val_images or images, size)


def results_table(summary: dict[str, Any], title: str) -> Table:
    """Per loss: mean +- std over seeds and the paired differences to the baseline."""
    table = Table(title=title)
    baseline = summary["baseline"]
    for column in ("loss", "seeds", "AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l"):
        table.add_column(column, justify="left" if column == "loss" else "right")
    for metric in report.COMPARED:
        table.add_column(f"Δ{metric} [95% CI]", justify="right")
    table.add_column("max |grad|", justify="right")
    table.caption = f"Δ: paired difference to {baseline}, seed by seed"
    for name, result in summary["losses"].items():
        metrics = result["metrics"]
        cells = [name, str(len(result["seeds"]))]
        for metric in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"):
            spread = metrics[metric]
            cells.append(
                f"{spread['mean']:.1f}"
                + (f" ± {spread['std']:.1f}" if len(result["seeds"]) > 1 else "")
            )
        for metric in report.COMPARED:
            paired = result["paired"][metric]
            if name == baseline:
                cells.append("baseline")
            elif paired is None:
                base = summary["losses"][baseline]["metrics"][metric]["mean"]
                cells.append(f"{metrics[metric]['mean'] - base:+.1f} (one seed)")
            else:
                mark = " *" if paired["excludes_zero"] else ""
                cells.append(
                    f"{paired['mean']:+.1f} [{paired['low']:+.1f}, {paired['high']:+.1f}]{mark}"
                )
        cells.append(f"{result['max_grad_norm']:.0f}")
        table.add_row(*cells)
    return table


def _init_distributed(device: str) -> int:
    """Under torchrun (WORLD_SIZE > 1): join the process group; returns this rank (else 0)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank()


@app.command()
def ablate(
    losses: Annotated[
        str,
        typer.Option(help=f"Regression losses, comma-separated: {', '.join(REGRESSION)}."),
    ] = DEFAULT_LOSSES,
    cls: Annotated[
        str,
        typer.Option(
            "--cls",
            help=f"Classification losses (one-stage): {', '.join(CLASSIFICATION)}.",
        ),
    ] = "focal",
    detector: Annotated[
        str, typer.Option(help="onestage (RetinaNet-style) or twostage (Faster R-CNN-style).")
    ] = "onestage",
    seeds: Annotated[
        str, typer.Option(help="A count (5: seeds 0-4) or seeds (0,3,7 or 2-4), shared by all.")
    ] = "1",
    iters: Annotated[int, typer.Option(min=1, help="Iterations per run.")] = DEFAULT_ITERS,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per iteration.")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak AdamW learning rate.")] = 3e-3,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Single-thread worker processes [all runs at once up to 2 per CPU core].",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1...")] = "cpu",
    amp: Annotated[
        str | None, typer.Option(help="Mixed precision: bf16 or fp16 (autocast).")
    ] = None,
    data_path: Annotated[
        Path | None,
        typer.Option("--data", exists=True, dir_okay=False, help="COCO annotations (json)."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(exists=True, file_okay=False, help="Folder of --data's images.")
    ] = None,
    val_data: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Validation annotations [10% of --data]."),
    ] = None,
    val_images: Annotated[
        Path | None, typer.Option(exists=True, file_okay=False, help="[--images]")
    ] = None,
    size: Annotated[
        int, typer.Option(min=16, help="Images are resized to size x size (multiple of 8).")
    ] = 64,
    synthetic_train: Annotated[
        int, typer.Option(min=1, help="Synthetic training images (without --data).")
    ] = 4000,
    synthetic_val: Annotated[
        int, typer.Option(min=1, help="Synthetic validation images (without --data).")
    ] = 500,
    data_seed: Annotated[int, typer.Option(help="Seed of the synthetic images.")] = 1234,
    baseline: Annotated[
        str | None, typer.Option(help="The loss the others are compared with [the first].")
    ] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Output directory.")] = Path("ablate"),
) -> None:
    """Train a detector with each loss on the same seeds; print and plot the COCO metrics, with
    the paired differences to a baseline loss.

    Writes results.json, metrics.png, curves.png and samples.png into --out.
    """
    start = time.perf_counter()
    reg_names = _names(losses, REGRESSION, "--losses")
    cls_names = _names(cls, CLASSIFICATION, "--cls")
    if detector not in DETECTORS:
        raise typer.BadParameter(f"choose from {', '.join(DETECTORS)}", param_hint="--detector")
    if amp is not None and amp not in AMP_DTYPES:
        raise typer.BadParameter(f"choose from {', '.join(AMP_DTYPES)}", param_hint="--amp")
    if size % 8:
        raise typer.BadParameter(f"{size} is not a multiple of 8", param_hint="--size")
    seed_list = parse_seeds(seeds)
    _device(device)
    cls_names = cls_names[:1] if detector == "twostage" else cls_names
    configs = [
        TrainConfig(
            detector,
            reg,
            c,
            seed,
            iters,
            batch_size,
            lr,
            amp=amp,
            device=device,
            label=reg if len(cls_names) == 1 else f"{reg}+{c}",
        )
        for seed in seed_list
        for reg in reg_names
        for c in cls_names
    ]
    names = list(dict.fromkeys(c.name for c in configs))
    if baseline is not None and baseline not in names:
        raise typer.BadParameter(f"not among {', '.join(names)}", param_hint="--baseline")

    rank = _init_distributed(device)
    console = Console(quiet=rank != 0)
    if not console.is_terminal:  # logs and pipes: keep each row of the table on one line
        console.width = max(console.width, 170)
    train_set, val_set = load_data(
        data_path, images, val_data, val_images, size, (synthetic_train, synthetic_val, data_seed)
    )
    out.mkdir(parents=True, exist_ok=True)
    data_file = out / f"datasets-rank{rank}.pt"
    experiment.save_datasets(data_file, train_set, val_set)
    distributed = dist.is_initialized()
    # Single-thread processes time-share a core well: up to 2 per core, the last round of runs
    # shares the cores instead of leaving some idle.
    parallel = workers or 2 * (os.cpu_count() or 1)
    parallel = 1 if distributed else min(parallel, len(configs))
    console.print(
        f"{len(configs)} runs ({', '.join(names)} x {len(seed_list)} seed(s)) of {iters} "
        f"iterations x {batch_size} images, {detector} detector, "
        f"{len(train_set)} training / {len(val_set)} validation images of {size}x{size}, "
        + (f"{dist.get_world_size()} ranks" if distributed else f"{parallel} worker(s)")
    )
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        tasks = [progress.add_task(f"{c.name} seed {c.seed}", total=iters) for c in configs]
        runs = experiment.run_all(
            configs,
            data_file,
            parallel,
            lambda index, done: progress.update(tasks[index], completed=done),
        )
    data_file.unlink()
    if rank != 0:
        dist.destroy_process_group()
        return
    summary = report.aggregate(runs, baseline or names[0])
    seconds = time.perf_counter() - start
    record = {"summary": summary, "runs": runs, "seconds": seconds, "load": os.getloadavg()}
    (out / "results.json").write_text(json.dumps(record) + "\n")
    report.plot_metrics(summary, out / "metrics.png")
    report.plot_curves(runs, out / "curves.png")
    count = len(runs[0]["samples"])
    report.plot_samples(
        runs,
        val_set.images[:count],
        val_set.boxes[:count],
        val_set.class_names,
        out / "samples.png",
    )
    title = (
        f"{detector} detector, {iters} iterations x {batch_size}, seeds "
        f"{', '.join(map(str, seed_list))}: COCO metrics x100 on {len(val_set)} images"
    )
    console.print(results_table(summary, title))
    if len(seed_list) == 1:
        console.print(
            "One seed: this table ranks nothing. Seeds move AP by about 1 at this size, so a "
            "difference counts only against the spread of differences on paired seeds. The "
            f"paired 5-seed table (18 CPU-minutes: ~10 minutes on 2 idle cores): {PAIRED_COMMAND}"
        )
    else:
        console.print(
            f"Differences are paired by seed; * marks a 95% interval (Student t, "
            f"{len(seed_list) - 1} degrees of freedom) that excludes zero."
        )
    console.print(
        f"Wrote {out / 'results.json'}, metrics.png, curves.png, samples.png in {seconds:.0f} s "
        f"(load average {os.getloadavg()[0]:.1f})."
    )
    if distributed:
        dist.destroy_process_group()
