"""``detloss bench``: forward + backward time and peak memory of detloss against its peers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, NoReturn

import torch
import typer
from rich.console import Console

from detloss.benchmarks import output
from detloss.benchmarks.families import FAMILIES, Family
from detloss.benchmarks.measure import run
from detloss.cli import app
from detloss.cli.paths import output_file

NAMES = [family.name for family in FAMILIES]


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2 (a usage error)."""
    typer.echo(f"detloss bench: error: {message}", err=True)
    raise typer.Exit(2)


def _families(names: list[str] | None) -> list[Family]:
    unknown = sorted(set(names or []) - set(NAMES))
    if unknown:
        fail(f"unknown family {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [family for family in FAMILIES if not names or family.name in names]


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        fail(f"cannot use device {name!r}: {str(err).splitlines()[0]}")
    if device.type not in ("cpu", "cuda"):
        fail(f"cannot use device {name!r}: the benchmark measures memory on cpu and cuda only")
    return device


@app.command("bench")
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes, 3 rounds: seconds.")] = False,
    family: Annotated[
        list[str] | None,
        typer.Option("--family", help=f"Only this family (repeatable): {', '.join(NAMES)}."),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    threads: Annotated[int, typer.Option(min=1, help="torch.set_num_threads.")] = 2,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Timed rounds [30; --quick 3].", show_default=False)
    ] = None,
    compiled: Annotated[
        bool, typer.Option("--compile/--no-compile", help="Also time each loss torch.compile'd.")
    ] = True,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the rows as JSON.")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write one markdown table per family.")
    ] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Draw time and memory (matplotlib).")
    ] = None,
) -> None:
    """Time forward + backward of detloss's losses and of every peer formulation of each loss
    (PyTorch, fvcore, torchvision's and mmdetection's formulas), eager and compiled, with the
    peak extra memory of one call."""
    families = _families(family)
    target = _device(device)
    outputs = {"--json": json_path, "--markdown": markdown_path, "--plot": plot_path}
    for option, path in outputs.items():
        if path is not None:
            output_file(path, option)
    if plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        fail("--plot needs matplotlib (pip install 'detloss[bench]')")
    torch.set_num_threads(threads)
    console = Console()
    if not console.is_terminal:  # logs and pipes: one line per row
        console.width = max(console.width, 150)
    with console.status("benchmarking") as status:
        report = run(
            families,
            target,
            quick=quick,
            compiled=compiled,
            rounds=rounds or (3 if quick else 30),
            on_family=lambda f: status.update(f"benchmarking {f.name}"),
        )
    console.print(output.rich_table(report))
    console.print(
        "x fastest peer: min time over the fastest non-detloss row of the same family and mode. "
        f"Peak extra memory of one call ({report.meta['memory']}), the input gradient included; "
        "x input: in units of the first input (pred or logits)."
    )
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if markdown_path is not None:
        markdown_path.write_text(output.markdown(report))
    if plot_path is not None:
        output.plot(report, plot_path)
    for path in (json_path, markdown_path, plot_path):
        if path is not None:
            console.print(f"wrote {path}")
