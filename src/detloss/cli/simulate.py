"""``detloss simulate``: the DIoU paper's box-regression simulation (see :mod:`detloss.simulation`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from detloss import simulation
from detloss.cli import app
from detloss.cli.paths import output_directory

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_NAMES = ", ".join(simulation.SIM_LOSSES)
_DEFAULT_LOSSES = ",".join(simulation.DEFAULT_LOSSES)


def _device(value: str) -> torch.device:
    try:
        device = torch.device(value)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise typer.BadParameter(f"cannot use device {value!r}: {err}") from err
    return device


def _dtype(value: str) -> torch.dtype:
    if value not in _DTYPES:
        raise typer.BadParameter(f"dtype must be one of {', '.join(_DTYPES)}, got {value!r}")
    return _DTYPES[value]


def _losses(value: str) -> tuple[str, ...]:
    """Parsed names, each checked to exist in this detloss (with box_iou for the step factor)."""
    try:
        names = simulation.parse_losses(value)
        for function in ("box_iou", *(simulation.SIM_LOSSES[n].function for n in names)):
            simulation.detloss_function(function)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--losses") from err
    return names


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend, imported on first use (it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_rate_steps(iterations: int) -> list[tuple[int, float]]:
    """``(k, eta)``: the step size changes to ``eta`` from iteration ``k`` (1-based) on."""
    etas = [simulation.eta_at(k, iterations) for k in range(iterations)]
    return [(k + 1, eta) for k, eta in enumerate(etas) if k > 0 and eta != etas[k - 1]]


def curves_figure(results: dict[str, Any]) -> Any:
    """Total error against iteration, one line per loss, log scale (losses on x, y, w, h dashed),
    with the learning-rate steps marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for name, res in results["losses"].items():
        error = res["error"]
        on_boxes = "box_format" in simulation.SIM_LOSSES[name].kwargs
        ax.plot(range(1, len(error) + 1), error, label=name, ls="-" if on_boxes else "--")
    ax.axhline(results["initial_error"], color="grey", lw=0.8, ls=":", label="initial")
    for k, eta in learning_rate_steps(results["iterations"]):
        ax.axvline(k - 0.5, color="black", lw=0.8, ls="-.", alpha=0.6)
        ax.annotate(
            f" eta = {eta:g}",
            (k - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            va="top",
            fontsize="small",
            rotation=90,
            bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1},
        )
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("total error  sum |B - B_gt|_1")
    ax.set_title(f"Regression of {results['cases']:,} cases ({results['points']} anchor centres)")
    ax.legend(ncol=2, fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def final_error_figure(results: dict[str, Any]) -> Any:
    """Per anchor centre, the final error summed over its 343 cases; one panel per loss."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    plt = pyplot()
    centres = results["centres"]
    xs = [c[0] for c in centres]
    ys = [c[1] for c in centres]
    names = list(results["losses"])
    values = [results["losses"][name]["point_final_error"] for name in names]
    flat = [v for vs in values for v in vs]
    # One colour scale for all panels, so the panels compare; floor it to keep log(0) away.
    vmax = max(max(flat), 1e-6)
    norm = LogNorm(vmin=max(min(flat), vmax * 1e-6), vmax=vmax)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    # constrained layout fits the titles and the colour bar whatever the number of panels; a
    # single panel gets the width the title needs
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(3.6 * cols, 5.0) + 1.2, 3.3 * rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    size = min(60.0, max(1.0, 4000 / max(len(xs), 1)))  # marker area: points overlap little
    reach = simulation.RADIUS + 0.4  # the centres lie within RADIUS; room for the markers
    for ax, name, vs in zip(axes.flat, names, values, strict=False):
        clipped = [max(v, norm.vmin) for v in vs]
        ax.scatter(xs, ys, c=clipped, s=size, norm=norm, cmap="viridis", lw=0, clip_on=False)
        ax.set_title(f"{name}: total {sum(vs):.3g}", fontsize="medium")
        ax.set_aspect("equal")
        ax.set_xlim(simulation.CENTRE - reach, simulation.CENTRE + reach)
        ax.set_ylim(simulation.CENTRE - reach, simulation.CENTRE + reach)
        ax.set_xlabel("anchor centre x", fontsize="small")
        ax.set_ylabel("anchor centre y", fontsize="small")
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.suptitle("Final error per anchor centre\n(summed over its 343 cases)")
    fig.colorbar(
        ScalarMappable(norm=norm, cmap="viridis"),
        ax=axes.ravel().tolist(),
        shrink=0.8,
        label="final error (floored at max / 1e6)",
    )
    return fig


def save(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` and release it."""
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def results_table(results: dict[str, Any]) -> Table:
    """Final total error, mean per case and iterations to 10% of the initial error, per loss."""
    table = Table(
        title=(
            f"{results['cases']:,} cases, {results['iterations']} iterations, "
            f"initial total error {results['initial_error']:.6g}"
        )
    )
    table.add_column("loss")
    table.add_column("final total error", justify="right")
    table.add_column("mean per case", justify="right")
    table.add_column("iterations to 10%", justify="right")
    table.add_column("time (s)", justify="right")
    for name, res in results["losses"].items():
        reached = res["iterations_to_10pct"]
        table.add_row(
            name,
            f"{res['final_total_error']:.6g}",
            f"{res['final_mean_error']:.3e}",
            "never" if reached is None else str(reached),
            f"{res['seconds']:.1f}",
        )
    return table


def _advance(progress: Progress, task: TaskID, _iteration: int) -> None:
    progress.advance(task)


def run_simulation(
    losses: Sequence[str],
    points: int,
    iterations: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    console: Console,
) -> dict[str, Any]:
    """All ``losses`` on the same cases, with a rich progress bar; returns the results dict."""
    cases = simulation.make_cases(points, seed=seed, dtype=dtype, device=device)
    runs = []
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        for name in losses:
            task = progress.add_task(name, total=iterations)
            runs.append(
                simulation.regress(
                    cases,
                    simulation.SIM_LOSSES[name],
                    iterations,
                    on_iteration=functools.partial(_advance, progress, task),
                )
            )
    return simulation.results_dict(cases, iterations, runs)


@app.command()
def simulate(
    losses: Annotated[
        str, typer.Option("--losses", help=f"Comma-separated loss names, from: {_NAMES}.")
    ] = _DEFAULT_LOSSES,
    points: Annotated[
        int, typer.Option("--points", min=1, help="Anchor centres (343 cases each).")
    ] = simulation.DEFAULT_POINTS,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help=f"The paper's size: {simulation.FULL_POINTS} points (overrides --points).",
        ),
    ] = False,
    iters: Annotated[
        int, typer.Option("--iters", min=1, help="Iterations T.")
    ] = simulation.DEFAULT_ITERATIONS,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the anchor centres.")] = 0,
    device: Annotated[
        str, typer.Option("--device", help="Torch device, e.g. cpu or cuda.")
    ] = "cpu",
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            file_okay=False,
            help="Output directory, created if missing (its parent must exist).",
        ),
    ] = Path("simulation"),
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads for torch. The default 1 is fastest for small batches and on a "
            "busy machine; more threads pay off for --full on an idle one.",
        ),
    ] = 1,
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help="float64 (as the paper's MATLAB code) or float32 (faster, ~1e-6 floor)."
        ),
    ] = "float64",
) -> None:
    """Regress anchors to targets with each loss, as in the DIoU paper's simulation (Zheng et al. 2020).

    Writes curves.png, final_error.png and results.json into --out and prints a table.
    """
    names = _losses(losses)
    torch_device = _device(device)
    torch_dtype = _dtype(dtype)
    output_directory(out)
    if full:
        points = simulation.FULL_POINTS
    torch.set_num_threads(threads)
    console = Console()
    console.print(
        f"Simulating {points * simulation.CASES_PER_POINT:,} cases x {iters} iterations "
        f"with {', '.join(names)} on {torch_device} in {dtype}"
    )
    results = run_simulation(names, points, iters, seed, torch_device, torch_dtype, console)
    (out / "results.json").write_text(json.dumps(results) + "\n")
    save(curves_figure(results), out / "curves.png")
    save(final_error_figure(results), out / "final_error.png")
    console.print(results_table(results))
    console.print(f"Wrote {out / 'curves.png'}, {out / 'final_error.png'}, {out / 'results.json'}")
