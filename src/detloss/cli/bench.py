"""``detloss bench``: forward + backward time and memory of each loss family (see :mod:`detloss.bench`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from detloss import bench
from detloss.cli import app


def _devices(values: Sequence[str] | None) -> list[torch.device]:
    if not values:
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    devices = []
    for value in values:
        try:
            device = torch.device(value)
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as err:
            raise typer.BadParameter(f"cannot use device {value!r}: {err}") from err
        devices.append(device)
    return devices


def _families(names: Sequence[str] | None) -> list[bench.Family]:
    families = bench.build_families()
    if not names:
        return families
    known = {f.name: f for f in families}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise typer.BadParameter(f"unknown family {unknown}; choose from {sorted(known)}")
    return [known[n] for n in names]


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x" if value < 100 else f"{value:.0f}x"


def results_table(report: bench.Report, device: str) -> Table:
    """Times, ratios and memory of every row measured on ``device`` (and GPU time on CUDA)."""
    table = Table(title=f"detloss bench: forward + backward, float32, {device}")
    rows = [r for r in report.rows if r.device == device]
    kernels = any(r.kernel_ms is not None for r in rows)
    columns = ["family", "implementation", "shape", "median ms", "x floor", "speed-up"]
    columns += ["kernel ms", "kernel x floor"] if kernels else []
    columns += ["first call ms", "peak extra MB", "x input"]
    for name in columns:
        table.add_column(name, justify="left" if name in ("family", "implementation") else "right")
    for row in rows:
        if row.status != "ok":
            table.add_row(
                row.family, row.impl, "x".join(map(str, row.shape)), f"skipped: {row.note}"
            )
            continue
        floor = bench.find(rows, row.family, bench.FLOOR, device)
        reference = bench.reference_impl(row.family)
        ref = bench.find(rows, row.family, reference, device)
        if row.family == "box_layout":
            ref = bench.find(rows, row.family, "textbook GIoU, (N, 4) columns", device)
        assert row.median_ms is not None
        cells = [
            row.family,
            row.impl,
            "x".join(map(str, row.shape)),
            _ms(row.median_ms),
            _x(_over(row.median_ms, floor.median_ms if floor else None)),
            _x(_over(ref.median_ms, row.median_ms) if ref and ref is not row else None),
        ]
        if kernels:
            floor_kernels = floor.kernel_ms if floor else None
            cells += [_ms(row.kernel_ms), _x(_over(row.kernel_ms, floor_kernels))]
        cells += [
            _ms(row.first_call_ms),
            "" if row.peak_extra_bytes is None else f"{row.peak_extra_bytes / 2**20:.1f}",
            _x(_over(row.peak_extra_bytes, row.input_bytes)),
        ]
        table.add_row(*cells)
    return table


def _over(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def targets_table(report: bench.Report) -> Table:
    """Issue 5's targets: measured value, bound, met or not."""
    devices = report.meta.get("devices") or ["?"]
    table = Table(title=f"targets, measured on {devices[0]}")
    for name in ("family", "target", "measured", "bound", "met"):
        table.add_column(name, justify="right" if name in ("measured", "bound") else "left")
    for target in report.targets():
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "n/a"}[target.met]
        value = "" if target.value is None else f"{target.value:.2f}"
        table.add_row(target.family, target.name, value, f"{target.op} {target.bound:g}", met)
    return table


@app.command("bench")
def bench_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes, few repeats: seconds.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here.")
    ] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            "--device", help="Device to run on (repeatable). Default: cpu, and cuda if present."
        ),
    ] = None,
    family: Annotated[
        list[str] | None, typer.Option("--family", help="Only this loss family (repeatable).")
    ] = None,
    fused: Annotated[
        bool, typer.Option("--fused/--no-fused", help="Include the torch.compile rows.")
    ] = True,
    warmup: Annotated[
        int | None, typer.Option(min=1, help="Untimed calls first [3; quick 1].")
    ] = None,
    repeats: Annotated[int | None, typer.Option(min=1, help="Timed calls [15; quick 3].")] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads (torch.set_num_threads) [torch's default]."),
    ] = None,
) -> None:
    """Time forward + backward of each loss family against fvcore, PyTorch, textbook code and the
    streaming floor (one torch.addcmul over tensors of the input's size)."""
    devices = _devices(device)
    if threads is not None:
        torch.set_num_threads(threads)
    families = _families(family)
    console = Console()
    if not console.is_terminal:  # logs and pipes: keep the table's rows on one line each
        console.width = max(console.width, 150)
    with console.status("benchmarking...") as status:
        report = bench.run_benchmark(
            families,
            devices,
            quick=quick,
            fused=fused,
            warmup=warmup or (1 if quick else 3),
            repeats=repeats or (3 if quick else 15),
            on_row=lambda row: status.update(f"benchmarking... {row.family}: {row.impl} done"),
        )
    for d in devices:
        console.print(results_table(report, str(d)))
    memory = "; ".join(
        f"{d}: {method or 'not measurable here'}" for d, method in report.meta["memory"].items()
    )
    console.print(
        "speed-up: the reference's time over this row's (fvcore for giou and focal, the textbook "
        f"form otherwise; (N, 4) columns for box_layout). Peak extra memory of one call, {memory}. "
        "It includes the input gradient: 1.0x the input is the minimum for a row that differentiates."
        + (
            " kernel ms (CUDA): the GPU's own time in one call (kernels and copies, torch.profiler);"
            " at these sizes the median time is mostly the host's, launching them."
            if any(row.kernel_ms is not None for row in report.rows)
            else ""
        )
    )
    console.print(targets_table(report))
    console.print(
        "The targets (issue 5) are set for the full sizes on a 2-core CPU"
        + (": these are quick sizes." if quick else ".")
    )
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2))
        console.print(f"wrote {json_path}")
