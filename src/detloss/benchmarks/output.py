"""A benchmark report as a terminal table, as markdown tables, and as one figure."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from detloss.benchmarks.families import FAMILIES
from detloss.benchmarks.measure import Report, Row, vs_fastest_peer

COLUMNS = (
    "implementation",
    "mode",
    "min ms",
    "median ms",
    "x fastest peer",
    "first call ms",
    "peak extra MB",
    "x input",
)
TITLES = {family.name: family.title for family in FAMILIES}
DETLOSS_COLOUR, PEER_COLOUR = "tab:orange", "tab:gray"


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def cells(rows: list[Row], row: Row) -> list[str]:
    """``row`` under :data:`COLUMNS`; ratios against the other rows of its family."""
    return [
        row.impl,
        row.mode,
        _ms(row.min_ms),
        _ms(row.median_ms),
        _times(vs_fastest_peer(rows, row)),
        _ms(row.first_call_ms),
        f"{row.peak_extra_bytes / 2**20:.2f}",
        _times(row.peak_extra_bytes / row.input_bytes),
    ]


def _families(report: Report) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in report.rows:
        grouped.setdefault(row.family, []).append(row)
    return grouped


def _shape(rows: list[Row]) -> str:
    return "x".join(map(str, rows[0].shape))


def rich_table(report: Report) -> Table:
    """Every row, family by family, detloss's in bold."""
    meta = report.meta
    table = Table(
        title=f"detloss bench: forward + backward, float32, {meta['device']}, "
        f"threads: {meta['torch_threads']}, min and median of {meta['rounds']} rounds"
    )
    for column in ("family", *COLUMNS):
        table.add_column(column, justify="left" if column in ("family", COLUMNS[0]) else "right")
    for name, rows in _families(report).items():
        for i, row in enumerate(rows):
            family = f"{name} {_shape(rows)}" if i == 0 else ""
            table.add_row(
                family,
                *cells(rows, row),
                style="bold" if row.detloss else None,
                end_section=i == len(rows) - 1,
            )
    return table


def markdown(report: Report) -> str:
    """One markdown table per family."""
    parts = []
    for name, rows in _families(report).items():
        lines = [
            f"### {name}: {TITLES.get(name, name)}, {_shape(rows)}",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        for row in rows:
            row_cells = cells(rows, row)
            if row.detloss:
                row_cells[0] = f"**{row_cells[0]}**"
            lines.append("| " + " | ".join(row_cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def plot(report: Report, path: Path) -> None:
    """One figure: per family, min time (top) and peak extra memory (bottom) per implementation."""
    from detloss.cli.simulate import pyplot  # matplotlib is slow to import: only here

    plt = pyplot()
    families = _families(report)
    fig, axes = plt.subplots(2, len(families), figsize=(3.8 * len(families), 6.5), squeeze=False)
    for column, (name, rows) in enumerate(families.items()):
        labels = [f"{row.impl}\n({row.mode})" if row.mode != "eager" else row.impl for row in rows]
        colours = [DETLOSS_COLOUR if row.detloss else PEER_COLOUR for row in rows]
        time_ax, memory_ax = axes[0][column], axes[1][column]
        for ax, values, unit in (
            (time_ax, [row.min_ms for row in rows], "ms"),
            (memory_ax, [row.peak_extra_bytes / row.input_bytes for row in rows], "x"),
        ):
            bars = ax.barh(range(len(rows)), values, color=colours)
            for bar, row in zip(bars, rows, strict=True):
                bar.set_hatch("//" if row.mode == "compiled" else "")
            ax.bar_label(bars, [f"{v:.3g} {unit}" for v in values], fontsize="x-small", padding=2)
            ax.set_yticks(range(len(rows)), labels, fontsize="x-small")
            ax.invert_yaxis()
            ax.margins(x=0.25)
            ax.grid(True, axis="x", alpha=0.3)
        time_ax.set_title(f"{name} {_shape(rows)}", fontsize="medium")
        time_ax.set_xlabel("min ms, forward + backward", fontsize="small")
        memory_ax.set_xlabel("peak extra memory, x input", fontsize="small")
    meta = report.meta
    fig.suptitle(
        f"detloss (orange) and its peers (grey; hatched: torch.compile), {meta['device']}, "
        f"threads: {meta['torch_threads']}, torch {meta['torch']}",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
