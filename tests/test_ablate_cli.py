"""``detloss ablate`` end to end at toy sizes: tables, JSON, figures, COCO input, bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from detloss.ablate import data
from detloss.cli import app
from detloss.cli.ablate import PAIRED_COMMAND, parse_seeds
from tests.test_cli import flat

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})
TOY = ["--iters", "3", "--batch-size", "4", "--synthetic-train", "12", "--synthetic-val", "6"]


def test_parse_seeds() -> None:
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("2-4,9") == [2, 3, 4, 9]
    for bad in ("0", "a", "3-x", ""):
        with pytest.raises(typer.BadParameter):
            parse_seeds(bad)


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["ablate", "--help"])
    assert result.exit_code == 0
    for option in ("--losses", "--cls", "--detector", "--seeds", "--iters", "--workers",
                   "--device", "--amp", "--data", "--images", "--out", "--baseline"):  # fmt: skip
        assert option in result.output


def test_paired_two_seed_table(tmp_path: Path) -> None:
    args = ["ablate", "--losses", "smooth_l1,giou", "--seeds", "2", "--workers", "1", *TOY]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "results.json").read_text())
    summary = record["summary"]
    assert summary["baseline"] == "smooth_l1"
    assert list(summary["losses"]) == ["smooth_l1", "giou"]
    assert len(record["runs"]) == 4
    giou = summary["losses"]["giou"]
    assert giou["seeds"] == [0, 1]
    paired = giou["paired"]["AP"]
    assert paired["n"] == 2
    assert paired["low"] <= paired["mean"] <= paired["high"]
    values = [r["metrics"]["AP"] for r in record["runs"]]
    assert giou["metrics"]["AP"]["values"] == [values[1], values[3]]
    for name in ("metrics.png", "curves.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert not list(tmp_path.glob("datasets-*.pt"))
    text = flat(result.output)
    assert "ΔAP [95% CI]" in text
    assert "paired difference to smooth_l1" in text
    assert "Differences are paired by seed" in text
    assert "ranks nothing" not in text


def test_one_seed_says_it_ranks_nothing_in_worker_processes(tmp_path: Path) -> None:
    args = ["ablate", "--losses", "giou,ciou", "--cls", "ce,focal", "--workers", "2", *TOY]
    result = runner.invoke(app, [*args, "--baseline", "ciou+ce", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert summary["baseline"] == "ciou+ce"
    assert list(summary["losses"]) == ["giou+ce", "giou+focal", "ciou+ce", "ciou+focal"]
    assert summary["losses"]["giou+ce"]["paired"]["AP"] is None
    text = flat(result.output)
    assert "this table ranks nothing" in text
    assert PAIRED_COMMAND in text
    assert "(one seed)" in text


def test_two_stage_on_a_coco_folder(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    annotations = data.write_coco(data.synthetic(20, seed=9), folder)
    args = ["ablate", "--detector", "twostage", "--losses", "smooth_l1", "--workers", "1"]
    args += ["--data", str(annotations), "--images", str(folder), "--iters", "2"]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    (run,) = record["runs"]
    assert run["name"] == "smooth_l1"
    assert set(run["losses"]) == {"total", "rpn_cls", "rpn_reg", "roi_cls", "roi_reg"}
    assert "18 training / 2 validation images" in flat(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--losses", "giou,focal"], "unknown name(s) focal"),
        (["--cls", "giou"], "unknown name(s) giou"),
        (["--seeds", "x"], "expected a count"),
        (["--detector", "yolo"], "onestage, twostage"),
        (["--amp", "fp8"], "bf16, fp16"),
        (["--size", "60"], "not a multiple of 8"),
        (["--device", "nodevice"], "cannot use device"),
        (["--baseline", "eiou"], "not among"),
    ],
)
def test_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["ablate", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in flat(result.output)
    assert not (tmp_path / "results.json").exists()


def test_data_needs_images(tmp_path: Path) -> None:
    annotations = data.write_coco(data.synthetic(3, seed=0), tmp_path)
    result = runner.invoke(app, ["ablate", "--data", str(annotations), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--data needs --images" in flat(result.output)
