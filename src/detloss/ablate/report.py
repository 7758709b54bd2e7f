"""The ablation's summary: per loss the spread over seeds and the paired difference to a baseline,
and its figures (metrics with the seeds' spread and the differences, loss curves, detections)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from detloss.ablate.evaluate import METRICS
from detloss.ablate.stats import PairedDifference, Spread

COMPARED: tuple[str, ...] = ("AP", "AP75")
"""The metrics whose paired differences the table and the figure show."""


def aggregate(runs: Sequence[dict[str, Any]], baseline: str) -> dict[str, Any]:
    """Per loss (run name, in order of appearance): seeds, per metric the values (seed order),
    mean and std, and for :data:`COMPARED` the paired difference to ``baseline`` (None with one
    seed, and for the baseline itself)."""
    names = list(dict.fromkeys(run["name"] for run in runs))
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the runs {names}")
    by_name = {
        name: sorted((r for r in runs if r["name"] == name), key=lambda r: int(r["config"]["seed"]))
        for name in names
    }
    base_seeds = [r["config"]["seed"] for r in by_name[baseline]]
    summary: dict[str, Any] = {}
    for name, group in by_name.items():
        seeds = [r["config"]["seed"] for r in group]
        metrics = {}
        for metric in METRICS:
            values = [r["metrics"][metric] for r in group]
            metrics[metric] = {"values": values, **dataclasses.asdict(Spread.of(values))}
        paired: dict[str, Any] = {}
        for metric in COMPARED:
            difference = None
            if name != baseline and seeds == base_seeds:
                difference = PairedDifference.of(
                    metrics[metric]["values"], [r["metrics"][metric] for r in by_name[baseline]]
                )
            paired[metric] = None if difference is None else dataclasses.asdict(difference)
            if difference is not None:
                paired[metric]["excludes_zero"] = difference.excludes_zero
        summary[name] = {
            "seeds": seeds,
            "metrics": metrics,
            "paired": paired,
            "max_grad_norm": max(r["max_grad_norm"] for r in group),
            "skipped_steps": sum(r["skipped_steps"] for r in group),
            "train_seconds": sum(r["train_seconds"] for r in group),
        }
    return {"baseline": baseline, "losses": summary}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(summary: dict[str, Any], path: Path) -> None:
    """AP and AP75 per loss (every seed a dot, the mean a bar) and the paired differences to the
    baseline with their 95% intervals (with one seed, the single difference without one)."""
    plt = pyplot()
    names = list(summary["losses"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(4 + 1.4 * len(names), 4.5))
    for k, (metric, colour) in enumerate(zip(COMPARED, ("tab:blue", "tab:orange"), strict=True)):
        shift = (k - 0.5) * 0.3
        for i, name in enumerate(names):
            stats = summary["losses"][name]["metrics"][metric]
            label = metric if i == 0 else None
            left.bar(i + shift, stats["mean"], 0.28, color=colour, alpha=0.35, label=label)
            left.plot([i + shift] * len(stats["values"]), stats["values"], ".", color=colour)
            paired = summary["losses"][name]["paired"][metric]
            if paired is not None:
                error = [[paired["mean"] - paired["low"]], [paired["high"] - paired["mean"]]]
                right.errorbar(i + shift, paired["mean"], error, fmt="o", color=colour, capsize=4)
            elif name != summary["baseline"]:
                base = summary["losses"][summary["baseline"]]["metrics"][metric]["mean"]
                right.plot(i + shift, stats["mean"] - base, "x", color=colour)
    left.set_ylabel("COCO metric (x100); dots: seeds")
    left.legend()
    right.axhline(0, color="black", lw=0.8)
    right.set_ylabel(f"paired difference to {summary['baseline']} (95% CI)")
    for ax in (left, right):
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(runs: Sequence[dict[str, Any]], path: Path) -> None:
    """Training loss per iteration: the total and each term, one line per run (log scale)."""
    plt = pyplot()
    terms = list(runs[0]["losses"])
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3.6), squeeze=False)
    names = list(dict.fromkeys(run["name"] for run in runs))
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for ax, term in zip(axes[0], terms, strict=True):
        for run in runs:
            values = run["losses"][term]
            x = [(i + 0.5) * run["curve_bin"] for i in range(len(values))]
            first = run["config"]["seed"] == runs[0]["config"]["seed"]
            label = run["name"] if first else None
            ax.plot(x, values, color=colours[run["name"]], lw=1, alpha=0.8, label=label)
        ax.set_title(term)
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(
    runs: Sequence[dict[str, Any]],
    images: Tensor,
    truth: Sequence[Tensor],
    class_names: Sequence[str],
    path: Path,
) -> None:
    """Validation images with the true boxes (white, dashed) and each loss's detections of score
    >= 0.3 (coloured by class), one row per loss, from its first seed."""
    plt = pyplot()
    rows = [run for run in runs if run["config"]["seed"] == runs[0]["config"]["seed"]]
    cols = min(len(images), len(rows[0]["samples"]))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.9 * len(rows)), squeeze=False)
    for row, run in zip(axes, rows, strict=True):
        for j, ax in enumerate(row):
            ax.imshow(images[j].permute(1, 2, 0).numpy())
            for x0, y0, x1, y1 in truth[j].tolist():
                ax.add_patch(_box(plt, x0, y0, x1, y1, "white", "--"))
            sample = run["samples"][j]
            for (x0, y0, x1, y1), label in zip(sample["boxes"], sample["labels"], strict=True):
                ax.add_patch(_box(plt, x0, y0, x1, y1, f"C{label}", "-"))
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(run["name"], fontsize="small")
    handles = [plt.Line2D([], [], color=f"C{i}", label=n) for i, n in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _box(plt: Any, x0: float, y0: float, x1: float, y1: float, colour: str, style: str) -> Any:
    # Pixel i covers [i - 0.5, i + 0.5] in imshow's coordinates; box coordinates are edges.
    return plt.Rectangle(
        (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, ls=style, lw=1
    )
