"""``detloss bench`` works (never a timing assertion) and compares like with like."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor
from typer.testing import CliRunner

from detloss import bench
from detloss.cli import app

RESULT_KEYS = {
    "family": str,
    "impl": str,
    "device": str,
    "shape": list,
    "status": str,
    "note": str,
    "input_bytes": int,
}
MEASURED_KEYS = ("median_ms", "min_ms", "first_call_ms")


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["bench", *args])
    return result.exit_code, result.output


def test_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    code, output = _invoke("--quick", "--no-fused", "--device", "cpu", "--json", str(path))
    assert code == 0, output
    assert "detloss bench: forward + backward, float32, cpu" in output
    assert "streaming floor" in output
    assert "targets" in output
    assert "kernel ms" not in output
    assert "targets, measured on cpu" in output
    assert "set for the full sizes on a 2-core CPU: these are quick sizes." in output
    data = json.loads(path.read_text())
    assert data["schema"] == "detloss-bench/1"
    assert data["meta"]["quick"] is True
    assert data["meta"]["fused"] is False
    assert data["meta"]["devices"] == ["cpu"]
    assert set(data["meta"]["memory"]) == {"cpu"}
    families = {f.name for f in bench.build_families()}
    assert {r["family"] for r in data["results"]} == families
    for row in data["results"]:
        for key, kind in RESULT_KEYS.items():
            assert isinstance(row[key], kind), (key, row)
        if row["status"] == "ok":
            assert all(row[k] > 0 for k in MEASURED_KEYS), row
            assert row["peak_extra_bytes"] is None or row["peak_extra_bytes"] >= 0
            assert row["kernel_ms"] is None  # GPU time: CUDA rows only
        else:
            assert row["status"] == "skipped"
            assert row["note"]
            assert all(row[k] is None for k in MEASURED_KEYS)
    assert all(
        r["status"] == "skipped" and r["note"] == "--no-fused"
        for r in data["results"]
        if r["impl"] == bench.FUSED
    )
    floors = [r for r in data["results"] if r["impl"] == bench.FLOOR]
    assert len(floors) == len(families - {r["family"] for r in data["results"] if r["impl"] == "*"})
    for target in data["targets"]:
        assert set(target) == {"name", "family", "value", "op", "bound", "met"}
        assert target["met"] is None if target["value"] is None else isinstance(target["met"], bool)


def test_fused_rows_run_through_the_compile_backend(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    code, output = _invoke(
        "--quick", "--family", "smooth_l1", "--repeats", "1", "--json", str(path)
    )
    assert code == 0, output
    rows = {r["impl"]: r for r in json.loads(path.read_text())["results"]}
    assert rows[bench.FUSED]["status"] == "ok"
    assert rows[bench.EAGER]["status"] == "ok"
    assert set(rows) == {bench.EAGER, bench.FUSED, bench.FVCORE, bench.NATIVE, bench.TEXTBOOK,
                         bench.FLOOR}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--family", "nope"), "unknown family"), (("--device", "nodevice"), "cannot use device")],
)
def test_bad_options_are_rejected(args: tuple[str, ...], message: str) -> None:
    code, output = _invoke("--quick", *args)
    assert code == 2
    assert message in output


@pytest.mark.parametrize("family", bench.build_families(), ids=lambda f: f.name)
def test_every_implementation_computes_the_same_loss(family: bench.Family) -> None:
    """The side-by-side rows are the same loss (else the ratios compare different work)."""
    if family.missing:
        pytest.skip(family.missing)
    inputs = family.make(64, torch.device("cpu"), torch.Generator().manual_seed(0))
    values = {
        impl.name: impl.fn(inputs).detach()
        for impl in family.impls
        if impl.backward and not impl.compiles
    }
    assert len(values) >= 2
    first = next(iter(values.values()))
    for name, value in values.items():
        torch.testing.assert_close(value, first, rtol=1e-5, atol=1e-6, msg=name)


def test_missing_detloss_loss_skips_the_family_with_a_note() -> None:
    family = bench.build_families()[0]
    missing = bench.Family(**{**family.__dict__, "missing": "detloss.x is not available"})
    rows = bench.run_family(missing, torch.device("cpu"), quick=True)
    assert [(r.status, r.note) for r in rows] == [("skipped", "detloss.x is not available")]


def _row(family: str, impl: str, ms: float, peak: int | None = None) -> bench.Row:
    return bench.Row(family, impl, "cpu", [1], "ok", median_ms=ms, peak_extra_bytes=peak,
                     input_bytes=100, first_call_ms=ms)  # fmt: skip


def test_targets_are_ratios_of_the_rows() -> None:
    rows = [
        _row("smooth_l1", bench.FLOOR, 1.0),
        _row("smooth_l1", bench.FUSED, 2.0),  # 2x the floor: met (<= 2.5)
        _row("smooth_l1", bench.TEXTBOOK, 20.0),  # 10x the fused: missed (>= 15)
        _row("focal", bench.EAGER, 1.0, peak=300),  # 3x the logits: missed (<= 2)
    ]
    targets = {(t.family, t.name): t for t in bench.check_targets(rows)}
    floor = targets[("smooth_l1", "fused / streaming floor")]
    assert (floor.value, floor.met) == (2.0, True)
    textbook = targets[("smooth_l1", "textbook / fused")]
    assert (textbook.value, textbook.met) == (10.0, False)
    memory = targets[("focal", "eager peak memory / logits")]
    assert (memory.value, memory.met) == (3.0, False)
    assert targets[("giou", "fvcore / fused")].met is None
    assert targets[("*", "first fused call, slowest (s)")].value == pytest.approx(2e-3)


CPU = torch.device("cpu")
N = 1000  # float32 elements: 4000 bytes a tensor


def _peak(fn: bench.LossFn, inputs: bench.Inputs, *, backward: bool = False) -> int | None:
    return bench.peak_extra_bytes(bench.Impl("t", fn, backward=backward), inputs, CPU)


def test_peak_memory_of_known_allocations() -> None:
    def two_then_one(_: bench.Inputs) -> Tensor:
        a = torch.empty(N)
        b = torch.empty(2 * N)  # a and b alive: 12000 bytes, the peak
        del a, b
        return torch.empty(N // 2)  # 2000 bytes

    assert _peak(two_then_one, {}) == 12 * N


def test_peak_memory_of_a_chain() -> None:
    """``a * b * c`` keeps ``a * b`` alive while it writes the product: two tensors of 4N bytes."""
    x = {k: torch.rand(N) for k in "abc"}
    assert _peak(lambda x: x["a"] * x["b"] * x["c"], x) == 2 * 4 * N


def test_peak_memory_counts_the_gradient_and_starts_above_what_exists() -> None:
    """The forward's product (4N) dies before the backward's gradient (4N) is created; the sum,
    the seed gradient and the expanded ones are scalars. Existing tensors are not counted."""
    x = {"a": torch.rand(N, requires_grad=True), "b": torch.rand(N)}
    peak = _peak(lambda x: (x["a"] * x["b"]).sum(), x, backward=True)
    assert peak is not None
    assert 4 * N <= peak <= 4 * N + 64
    assert x["a"].grad is not None


def test_peak_memory_is_the_same_in_every_run() -> None:
    family = next(f for f in bench.build_families() if f.name == "focal")
    inputs = family.make(family.quick_n, CPU, torch.Generator().manual_seed(0))
    peaks = {
        impl.name: [bench.peak_extra_bytes(impl, inputs, CPU) for _ in range(3)]
        for impl in family.impls
        if not impl.compiles
    }
    logits = inputs["logits"].numel() * 4
    for name, values in peaks.items():
        assert values == [values[0]] * 3, (name, values)
        assert values[0] is not None
        assert values[0] >= logits, (name, values)  # the gradient (the floor: its output)


def test_peak_memory_methods() -> None:
    assert bench.memory_method(CPU) == bench.CPU_MEMORY
    assert bench.memory_method(torch.device("cuda")) == bench.CUDA_MEMORY
    meta = torch.device("meta")
    assert bench.memory_method(meta) == ""
    assert bench.peak_extra_bytes(bench.Impl("t", lambda _: torch.zeros(1)), {}, meta) is None
