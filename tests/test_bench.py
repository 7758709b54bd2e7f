"""``detloss bench`` runs, reports every family's rows and compares like with like (no timed
assertion anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor
from typer.testing import CliRunner, Result

from detloss.benchmarks import cli, measure, output
from detloss.benchmarks.families import FAMILIES, Family, Loss
from detloss.benchmarks.measure import Row
from detloss.cli import app

ROW_KEYS = {
    "family": str,
    "impl": str,
    "mode": str,
    "detloss": bool,
    "device": str,
    "shape": list,
    "input_bytes": int,
    "first_call_ms": float,
    "min_ms": float,
    "median_ms": float,
    "peak_extra_bytes": int,
}


def _bench(*args: str) -> Result:
    """``detloss bench`` on one thread (the tests' setting, which the command would change)."""
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, ["bench", "--threads", "1", *args])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("bench")
    result = _bench(
        "--quick", "--no-compile", "--rounds", "1",
        "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md"),
        "--plot", str(out / "bench.png"),
    )  # fmt: skip
    return result, out


def test_quick_run_has_every_family_and_implementation(quick_run: tuple[Result, Path]) -> None:
    result, out = quick_run
    assert result.exit_code == 0, result.output
    assert "detloss bench: forward + backward, float32, cpu, threads: 1" in result.output
    data = json.loads((out / "bench.json").read_text())
    assert data["schema"] == measure.SCHEMA
    assert (data["meta"]["quick"], data["meta"]["compiled"], data["meta"]["rounds"]) == (
        True,
        False,
        1,
    )
    assert data["meta"]["device"] == "cpu"
    assert data["meta"]["torch_threads"] == 1
    expected = [(f.name, i.name, "eager") for f in FAMILIES for i in f.impls]
    assert [(r["family"], r["impl"], r["mode"]) for r in data["rows"]] == expected
    for row in data["rows"]:
        for key, kind in ROW_KEYS.items():
            assert isinstance(row[key], kind), (key, row)
        assert row["min_ms"] > 0
        assert row["median_ms"] >= row["min_ms"]
        assert row["peak_extra_bytes"] >= row["input_bytes"]  # the input gradient at least
        assert isinstance(row["vs_fastest_peer"], float)
    assert {r["impl"] for r in data["rows"] if r["detloss"]} == {"detloss"}


def test_quick_run_writes_markdown_and_plot(quick_run: tuple[Result, Path]) -> None:
    result, out = quick_run
    assert result.exit_code == 0, result.output
    text = (out / "bench.md").read_text()
    for family in FAMILIES:
        assert f"### {family.name}: {family.title}" in text
    assert text.count("| **detloss** | eager |") == len(FAMILIES)
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("bench.json", "bench.md", "bench.png"):
        assert f"wrote {out / name}" in result.output


def test_compiled_rows(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    result = _bench("--quick", "--family", "cross_entropy", "--rounds", "1", "--json", str(path))
    assert result.exit_code == 0, result.output
    rows = json.loads(path.read_text())["rows"]
    assert [(r["impl"], r["mode"]) for r in rows] == [
        ("detloss", "eager"),
        ("F.cross_entropy", "eager"),
        ("detloss", "compiled"),
        ("F.cross_entropy", "compiled"),
    ]
    assert all(r["first_call_ms"] > 0 and r["min_ms"] > 0 for r in rows)


@pytest.mark.parametrize("option", ["--json", "--markdown", "--plot"])
@pytest.mark.parametrize("where", ["missing directory", "a directory", "below a file"])
def test_unwritable_output_fails_before_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, where: str
) -> None:
    # the check of the other commands (detloss.cli.paths): one line, exit code 2, nothing created
    def no_timing(*_: object, **__: object) -> None:
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(cli, "run", no_timing)
    (tmp_path / "a-file").write_text("")
    path, message = {
        "missing directory": (
            tmp_path / "missing" / "out",
            f"the directory {str(tmp_path / 'missing')!r} does not exist",
        ),
        "a directory": (tmp_path, f"{str(tmp_path)!r} is a directory, not a file"),
        "below a file": (
            tmp_path / "a-file" / "out",
            f"the directory {str(tmp_path / 'a-file')!r} is not a directory",
        ),
    }[where]
    result = _bench("--quick", option, str(path))
    assert result.exit_code == 2
    assert result.stderr == f"detloss bench: error: Invalid value for {option}: {message}\n"
    assert result.stdout == ""
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--family", "nope"), "unknown family nope; choose from smooth_l1, giou, ciou"),
        (("--device", "nodevice"), "cannot use device 'nodevice'"),
        (("--device", "meta"), "cannot use device 'meta': the benchmark measures memory on cpu"),
    ],
)
def test_bad_options_fail_with_one_line(args: tuple[str, ...], message: str) -> None:
    result = _bench("--quick", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"detloss bench: error: {message}")
    assert result.stderr.count("\n") == 1


def _row(family: str, impl: str, ms: float, *, mode: str = "eager") -> Row:
    return Row(family, impl, mode, impl == "detloss", "cpu", [10, 4], 160, 5.0, ms, 2 * ms, 320)


def test_ratio_to_the_fastest_peer_of_the_same_family_and_mode() -> None:
    rows = [
        _row("a", "detloss", 3.0),
        _row("a", "slow peer", 6.0),
        _row("a", "fast peer", 2.0),
        _row("a", "detloss", 1.0, mode="compiled"),
        _row("a", "fast peer", 4.0, mode="compiled"),
        _row("b", "detloss", 9.0),
    ]
    ratios = [measure.vs_fastest_peer(rows, row) for row in rows]
    assert ratios == [1.5, 3.0, 1.0, 0.25, 1.0, None]
    report = measure.Report(meta={}, rows=rows)
    assert [r["vs_fastest_peer"] for r in report.to_json()["rows"]] == ratios


def test_table_cells() -> None:
    rows = [_row("a", "detloss", 3.0), _row("a", "peer", 2.0)]
    assert output.cells(rows, rows[0]) == [
        "detloss", "eager", "3", "6", "1.50x", "5", "0.00", "2.00x",
    ]  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_implementation_computes_the_same_loss(family: Family) -> None:
    """The rows of a family are the same loss and gradient, so their times compare the same work."""
    args = family.make((64, *family.shape[1:]), torch.Generator().manual_seed(0))
    results = {}
    for impl in family.impls:
        leaf = args[0].clone().requires_grad_(True)
        loss = impl.fn(leaf, *args[1:])
        (grad,) = torch.autograd.grad(loss, leaf)
        results[impl.name] = (loss.detach(), grad)
    assert len(results) >= 2
    expected = results["detloss"]
    for name, result in results.items():
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6, msg=name)


CPU = torch.device("cpu")
N = 1000  # float32 elements: 4000 bytes a tensor


def test_peak_memory_of_known_allocations() -> None:
    def two_then_one() -> None:
        a = torch.empty(N)
        b = torch.empty(2 * N)  # a and b alive: 12000 bytes, the peak
        del a, b
        torch.empty(N // 2)

    assert measure.peak_extra_bytes(two_then_one, torch.zeros(1), CPU) == 12 * N


def test_peak_memory_counts_the_gradient_not_what_exists() -> None:
    """The product (4N) dies before the gradient (4N) is created; the rest are scalars."""
    a, b = torch.rand(N, requires_grad=True), torch.rand(N)
    a.grad = torch.ones(N)  # cleared before the call: not counted

    def step() -> None:
        torch.autograd.backward((a * b).sum())

    peak = measure.peak_extra_bytes(step, a, CPU)
    assert 4 * N <= peak <= 4 * N + 64
    assert a.grad is not None


def test_peak_memory_is_the_same_in_every_run() -> None:
    family = next(f for f in FAMILIES if f.name == "focal")
    args = family.make(family.quick_shape, torch.Generator().manual_seed(0))
    leaf = args[0].requires_grad_(True)
    for impl in family.impls:

        def step(fn: Loss = impl.fn) -> None:
            loss: Tensor = fn(*args)
            torch.autograd.backward(loss)

        peaks = [measure.peak_extra_bytes(step, leaf, CPU) for _ in range(3)]
        assert peaks == [peaks[0]] * 3, (impl.name, peaks)
        assert peaks[0] >= leaf.numel() * 4, (impl.name, peaks)
