"""The ``detloss`` command line: simulate, plot, --help, --version and bad arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import detloss
from detloss import simulation as sim
from detloss.cli import app
from detloss.cli.plot import PLOT_LOSSES, loss_curves
from tests.test_simulation import HAVE_IOU_LOSSES, reference_iou

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def flat(text: str) -> str:
    """The output with rich's box characters and line wrapping removed."""
    for char in "│╭╮╰╯─":
        text = text.replace(char, " ")
    return " ".join(text.split())


@pytest.fixture
def box_iou(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(detloss, "box_iou"):
        monkeypatch.setattr(
            detloss, "box_iou", lambda a, b, _kind, **_: reference_iou(a, b), raising=False
        )


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"detloss {detloss.__version__}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["simulate", "plot", "bench"]),
        (["bench"], ["--quick", "--family", "--device", "--threads", "--json", "--plot"]),
        (
            ["simulate"],
            ["--losses", "--points", "--full", "--iters", "--seed", "--device", "--out"],
        ),
        (["plot"], ["--beta", "--range", "--out", "smooth_l1", "balanced_l1"]),
    ],
)
def test_help(args: list[str], expected: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert all(word in result.output for word in expected)


def test_simulate_tiny(tmp_path: Path, box_iou: None) -> None:
    names = list(sim.DEFAULT_LOSSES) if HAVE_IOU_LOSSES else ["smooth_l1", "l1", "l2"]
    args = ["simulate", "--points", "1", "--iters", "5", "--seed", "2", "--dtype", "float32"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--losses", ",".join(names)])
    assert result.exit_code == 0, result.output
    for name in ("curves.png", "final_error.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert (results["cases"], results["points"], results["iterations"]) == (343, 1, 5)
    assert (results["seed"], results["dtype"]) == (2, "float32")
    assert list(results["losses"]) == names
    for res in results["losses"].values():
        assert len(res["error"]) == 5
        assert isinstance(res["final_mean_error"], float)
        assert res["iterations_to_10pct"] is None or isinstance(res["iterations_to_10pct"], int)
    text = flat(result.output)
    assert "final total error" in text
    assert "mean per case" in text
    assert "iterations to 10%" in text
    for name in names:
        final = results["losses"][name]["final_total_error"]
        assert f"{name} {final:.6g}" in text


def test_simulate_bad_loss_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--losses", "giou,focal", "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = flat(result.output)
    assert "focal" in text
    assert f"valid names: {', '.join(sim.SIM_LOSSES)}" in text
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "nodevice"], "cannot use device"),
        (["--points", "0"], "--points"),
        (["--iters", "0"], "--iters"),
        (["--dtype", "float16"], "dtype must be one of float64, float32"),
    ],
)
def test_simulate_bad_arguments(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", "--losses", "l1", *args])
    assert result.exit_code == 2
    assert message in flat(result.output)


def test_plot_defaults_to_every_loss(tmp_path: Path) -> None:
    out = tmp_path / "all.png"
    result = runner.invoke(app, ["plot", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    assert f"({len(PLOT_LOSSES)} curves)" in result.output


def test_plot_the_issue_command(tmp_path: Path) -> None:
    out = tmp_path / "losses.png"
    args = ["plot", "smooth_l1", "l1", "l2", "huber", "balanced_l1", "--beta", "1.0", "0.11"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    # smooth_l1, huber and balanced_l1 at two betas each, l1 and l2 once: 8 curves.
    assert "(8 curves)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["focal"], "valid names: smooth_l1, huber, balanced_l1, l1, l2"),
        (["l1", "--beta", "0"], "betas must be finite and > 0"),
    ],
)
def test_plot_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["plot", *args, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert message in flat(result.output)


def test_loss_curves_come_from_detloss_and_autograd() -> None:
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    curves = {c.label: c for c in loss_curves(["smooth_l1", "l2", "huber"], [1.0, 0.5], x)}
    assert list(curves) == [
        "smooth_l1 (beta=1)",
        "smooth_l1 (beta=0.5)",
        "l2",
        "huber (delta=1)",
        "huber (delta=0.5)",
    ]
    smooth = curves["smooth_l1 (beta=0.5)"]
    torch.testing.assert_close(smooth.loss, detloss.smooth_l1_loss(x, 0 * x, 0.5, reduction="none"))
    # d/dx of 0.5 x^2 / beta is x / beta inside |x| < beta, of |x| - beta/2 is sign(x) outside.
    torch.testing.assert_close(smooth.grad, (x / 0.5).clamp(-1, 1))
    # d/dx x^2 = 2x; Huber's gradient is x clipped to [-delta, delta].
    torch.testing.assert_close(curves["l2"].grad, 2 * x)
    torch.testing.assert_close(curves["huber (delta=0.5)"].grad, x.clamp(-0.5, 0.5))


def test_every_plot_loss_draws() -> None:
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    curves = loss_curves(list(PLOT_LOSSES), [1.0], x)
    assert len(curves) == len(PLOT_LOSSES)
    for curve in curves:
        assert curve.loss.shape == curve.grad.shape == x.shape
        assert torch.isfinite(curve.grad).all()
        assert abs(curve.loss[20]) < 1e-12  # every loss is 0 at x = 0 (x[20] is ~1e-16)


def test_simulate_loss_missing_from_detloss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(detloss, "mse_loss")
    result = runner.invoke(app, ["simulate", "--losses", "l1,l2", "--points", "1"])
    assert result.exit_code == 2
    assert "needs detloss.mse_loss" in flat(result.output)


# --- errors and output paths ------------------------------------------------------------------


def test_bad_arguments_end_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    for args in (["plot", "focal"], ["simulate", "--points", "0"], ["bogus"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("detloss")
        assert ": error: " in lines[0]


@pytest.mark.parametrize("command", ["simulate", "plot"])
def test_unwritable_output_fails_before_any_work(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    name = "sim" if command == "simulate" else "x.png"
    for out, message in (
        (blocker / name, "is not a directory"),
        (tmp_path / "missing" / "deeper" / name, "does not exist"),
    ):
        args = [command, "--out", str(out)]
        if command == "simulate":  # a run long enough that it must not start
            args += ["--losses", "l1", "--points", "2000"]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Simulating" not in result.output
        assert not (tmp_path / "missing").exists()  # no parent directory created


def test_simulate_creates_only_its_output_directory(tmp_path: Path, box_iou: None) -> None:
    args = ["simulate", "--losses", "l1", "--points", "1", "--iters", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "results.json").exists()
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "results.json-like" / "run")])
    assert result.exit_code == 2


# --- figures ----------------------------------------------------------------------------------


def _drawn_inside(fig: Any) -> None:
    """Everything drawn (titles, labels, colour bar, markers) lies within the figure."""
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, drawn artists only
    width, height = fig.get_size_inches()
    slack = 0.02
    assert -slack <= tight.x0, tight
    assert tight.x1 <= width + slack, (tight, width)
    assert -slack <= tight.y0, tight
    assert tight.y1 <= height + slack, (tight, height)


@pytest.mark.parametrize("names", [["giou"], ["l1", "l2"], list(sim.DEFAULT_LOSSES)])
def test_simulation_figures_keep_every_text_inside(names: list[str], box_iou: None) -> None:
    from detloss.cli.simulate import curves_figure, final_error_figure, pyplot

    cases = sim.make_cases(3, seed=0)
    runs = [sim.regress(cases, sim.SIM_LOSSES[name], 10) for name in names]
    results = sim.results_dict(cases, 10, runs)
    for fig in (curves_figure(results), final_error_figure(results)):
        _drawn_inside(fig)
        pyplot().close(fig)


def test_learning_rate_steps_are_marked_where_eta_changes() -> None:
    from detloss.cli.simulate import learning_rate_steps

    assert learning_rate_steps(200) == [(161, 0.01), (181, 0.001)]


def test_coinciding_plot_curves_are_drawn_differently() -> None:
    from detloss.cli.plot import curve_style

    styles = [curve_style(i, 1201) for i in range(8)]
    keys = {(s["ls"], s["marker"], s["markevery"]) for s in styles}
    assert len(keys) == len(styles)
