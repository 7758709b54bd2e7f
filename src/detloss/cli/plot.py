"""``detloss plot``: regression losses and their gradients against the residual.

Every value comes from detloss's own functions (``reduction="none"`` against a zero target) and
every gradient from autograd, so the figure shows what training sees, not a re-typed formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from torch import Tensor

import detloss
from detloss.cli import app
from detloss.cli.paths import output_file
from detloss.cli.simulate import pyplot


@dataclass(frozen=True)
class PlotLoss:
    """``fn(x, target, parameter)``; ``parameter`` is None for losses without one."""

    fn: Callable[[Tensor, Tensor, float | None], Tensor]
    parameter: str | None


PLOT_LOSSES: dict[str, PlotLoss] = {
    "smooth_l1": PlotLoss(
        lambda x, t, b: detloss.smooth_l1_loss(x, t, b, reduction="none"), "beta"
    ),
    "huber": PlotLoss(
        lambda x, t, b: detloss.huber_loss(x, t, 1.0 if b is None else b, reduction="none"),
        "delta",
    ),
    "balanced_l1": PlotLoss(
        lambda x, t, b: detloss.balanced_l1_loss(
            x, t, beta=1.0 if b is None else b, reduction="none"
        ),
        "beta",
    ),
    "l1": PlotLoss(lambda x, t, _b: detloss.l1_loss(x, t, reduction="none"), None),
    "l2": PlotLoss(lambda x, t, _b: detloss.mse_loss(x, t, reduction="none"), None),
}
"""The losses ``detloss plot`` draws, by name; ``--beta`` sets each one's ``parameter``."""
_NAMES = ", ".join(PLOT_LOSSES)


@dataclass(frozen=True)
class Curve:
    label: str
    loss: Tensor
    grad: Tensor


def loss_curves(names: Sequence[str], betas: Sequence[float], residual: Tensor) -> list[Curve]:
    """Loss and d loss / dx at each ``residual`` x, one curve per loss and (if it has one) beta."""
    curves = []
    for name in names:
        spec = PLOT_LOSSES[name]
        for beta in betas if spec.parameter is not None else [None]:
            x = residual.detach().clone().requires_grad_(True)
            loss = spec.fn(x, torch.zeros_like(x), beta)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            label = name if beta is None else f"{name} ({spec.parameter}={beta:g})"
            curves.append(Curve(label, loss.detach(), grad))
    return curves


def _split_arguments(
    arguments: Sequence[str], betas: Sequence[float]
) -> tuple[list[str], list[float]]:
    """Loss names and betas: numbers among the arguments follow ``--beta`` (``--beta 1.0 0.11``)."""
    names: list[str] = []
    more_betas: list[float] = []
    for argument in arguments:
        try:
            more_betas.append(float(argument))
        except ValueError:
            names.append(argument)
    unknown = [name for name in names if name not in PLOT_LOSSES]
    if unknown:
        raise typer.BadParameter(
            f"unknown loss name(s): {', '.join(unknown)}; valid names: {', '.join(PLOT_LOSSES)}",
            param_hint="LOSSES",
        )
    all_betas = [*betas, *more_betas] or [1.0]
    bad = [b for b in all_betas if not b > 0 or b == float("inf")]
    if bad:
        raise typer.BadParameter(f"betas must be finite and > 0, got {bad}", param_hint="--beta")
    return names or list(PLOT_LOSSES), all_betas


_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("", "o", "s", "^", "v", "D", "x", "+")


def curve_style(index: int, points: int) -> dict[str, Any]:
    """Line style, marker and marker positions of the ``index``-th curve: curves that coincide
    (Smooth L1 at beta = 1 and Huber at delta = 1) stay distinguishable, each drawn thinner and
    with markers at other points than the ones before it."""
    every = max(points // 12, 1)
    return {
        "ls": _LINE_STYLES[index % len(_LINE_STYLES)],
        "marker": _MARKERS[index % len(_MARKERS)],
        "markevery": (index * every // 5 % every, every),
        "markersize": 5,
        "lw": max(2.6 - 0.3 * index, 1.0),
    }


@app.command()
def plot(
    losses: Annotated[
        list[str] | None,
        typer.Argument(help=f"Loss names (default: all): {_NAMES}.", show_default=False),
    ] = None,
    beta: Annotated[
        list[float] | None,
        typer.Option(
            "--beta", help="Beta (delta for huber) values: --beta 1.0 0.11 (default 1.0)."
        ),
    ] = None,
    x_range: Annotated[
        float, typer.Option("--range", min=0.01, help="Plot x in [-range, range].")
    ] = 3.0,
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="Output image.")] = Path(
        "losses.png"
    ),
) -> None:
    """Plot regression losses and their gradients against the residual x = pred - target."""
    names, betas = _split_arguments(losses or [], beta or [])
    output_file(out)
    residual = torch.linspace(-x_range, x_range, 1201, dtype=torch.float64)
    curves = loss_curves(names, betas, residual)
    plt = pyplot()
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    for i, curve in enumerate(curves):
        style = curve_style(i, len(residual))
        ax_loss.plot(residual, curve.loss, label=curve.label, **style)
        ax_grad.plot(residual, curve.grad, label=curve.label, **style)
    ax_loss.set_title("loss")
    ax_grad.set_title("gradient (autograd)")
    ax_loss.set_ylabel("loss(x)")
    ax_grad.set_ylabel("d loss / dx")
    for ax in (ax_loss, ax_grad):
        ax.set_xlabel("x = pred - target")
        ax.grid(True, alpha=0.3)
    ax_loss.legend(fontsize="small")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    typer.echo(f"Wrote {out} ({len(curves)} curves)")
