"""Box formats, conversion, box_iou and validation (detloss.boxes), and the pair geometry's
conventions at kinks (detloss._geometry)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

import detloss
from detloss._geometry import _halves, _pair_max, _pair_min
from detloss.boxes import BOX_FORMATS, BOX_IOU_KINDS, IOU_KINDS, _corners
from tests.boxgen import HAND, TINY, in_format, random_boxes


@pytest.mark.parametrize("box_format", BOX_FORMATS)
@pytest.mark.parametrize("kind", IOU_KINDS)
@pytest.mark.parametrize("name", sorted(HAND))
def test_box_iou_hand_values(name: str, kind: str, box_format: str) -> None:
    box1, box2, expected = HAND[name]
    b1 = torch.tensor([in_format(box1, box_format)], dtype=torch.float64)
    b2 = torch.tensor([in_format(box2, box_format)], dtype=torch.float64)
    aligned = detloss.box_iou(b1, b2, kind, aligned=True, box_format=box_format, eps=TINY)
    matrix = detloss.box_iou(b1, b2, kind, box_format=box_format, eps=TINY)
    torch.testing.assert_close(aligned, torch.tensor([expected[kind]], dtype=torch.float64))
    assert matrix.shape == (1, 1)
    torch.testing.assert_close(matrix[0], aligned)
    # Symmetric in its arguments.
    torch.testing.assert_close(
        detloss.box_iou(b2, b1, kind, aligned=True, box_format=box_format, eps=TINY), aligned
    )


@pytest.mark.parametrize("kind", IOU_KINDS)
def test_matrix_equals_aligned_value_of_every_pair(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    b1, _ = random_boxes(5, g)
    b2, _ = random_boxes(7, g)
    matrix = detloss.box_iou(b1, b2, kind)
    assert matrix.shape == (5, 7)
    pairs = detloss.box_iou(
        b1.repeat_interleave(7, dim=0), b2.repeat(5, 1), kind, aligned=True
    ).view(5, 7)
    torch.testing.assert_close(matrix, pairs)


def test_box_iou_ranges_on_random_boxes() -> None:
    g = torch.Generator().manual_seed(1)
    b1, b2 = random_boxes(200, g)
    iou = detloss.box_iou(b1, b2, "iou", aligned=True)
    giou = detloss.box_iou(b1, b2, "giou", aligned=True)
    diou = detloss.box_iou(b1, b2, "diou", aligned=True)
    ciou = detloss.box_iou(b1, b2, "ciou", aligned=True)
    # C - U of a nested pair is 0 in exact arithmetic; U = A + A_gt - I rounds, so GIoU may
    # exceed IoU by a rounding error there.
    rounding = 4 * torch.finfo(torch.float64).eps
    assert ((iou >= 0) & (iou <= 1)).all()
    assert ((giou >= -1) & (giou <= iou + rounding)).all()
    assert ((diou > -1) & (diou <= iou)).all()
    assert (ciou <= diou).all()
    assert (iou == 0).any(), "the random pairs should include disjoint boxes"


CONVERSIONS = {
    "xyxy": (1.0, 2.0, 5.0, 8.0),
    "xywh": (1.0, 2.0, 4.0, 6.0),
    "cxcywh": (3.0, 5.0, 4.0, 6.0),
}


@pytest.mark.parametrize("out_fmt", BOX_FORMATS)
@pytest.mark.parametrize("in_fmt", BOX_FORMATS)
def test_convert_boxes_hand_values(in_fmt: str, out_fmt: str) -> None:
    boxes = torch.tensor(CONVERSIONS[in_fmt]).expand(2, 3, 4)
    got = detloss.convert_boxes(boxes, in_fmt, out_fmt)
    assert got.shape == (2, 3, 4)
    torch.testing.assert_close(got, torch.tensor(CONVERSIONS[out_fmt]).expand(2, 3, 4))


@given(st.lists(st.floats(-1e4, 1e4, width=32), min_size=4, max_size=4))
def test_convert_boxes_round_trip(values: list[float]) -> None:
    boxes = torch.tensor([values], dtype=torch.float64)
    for fmt in ("xywh", "cxcywh"):
        back = detloss.convert_boxes(detloss.convert_boxes(boxes, "xyxy", fmt), fmt, "xyxy")
        torch.testing.assert_close(back, boxes, rtol=1e-12, atol=1e-9)


def test_integer_boxes_give_floating_results() -> None:
    ints = torch.tensor([[0, 0, 2, 2], [1, 1, 3, 3]])
    floats = ints.float()
    converted = detloss.convert_boxes(ints, "xyxy", "cxcywh")
    assert converted.dtype == torch.float32
    torch.testing.assert_close(converted, detloss.convert_boxes(floats, "xyxy", "cxcywh"))
    for kind in IOU_KINDS:
        got = detloss.box_iou(ints, ints.flip(0), kind)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, detloss.box_iou(floats, floats.flip(0), kind))


def test_float16_boxes_with_large_coordinates_are_computed_in_float32() -> None:
    # Areas of 2000 x 3000 boxes (6e6) overflow float16 (max 65504); so does x1 + x2 = 9e4.
    half = torch.tensor([[1000.0, 0.0, 3000.0, 3000.0], [30000.0, 0.0, 60000.0, 8.0]]).half()
    other = torch.tensor([[2000.0, 1000.0, 4000.0, 5000.0], [40000.0, 0.0, 50000.0, 8.0]])
    for kind in IOU_KINDS:
        got = detloss.box_iou(half, other, kind, aligned=True)
        assert got.dtype == torch.float32
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, detloss.box_iou(half.float(), other, kind, aligned=True))
    # I = 1000 * 2000, U = 6e6 + 8e6 - 2e6: IoU = 1/6; second pair nested: IoU = 1/3.
    torch.testing.assert_close(
        detloss.box_iou(half, other, aligned=True), torch.tensor([1 / 6, 1 / 3])
    )
    cx = detloss.convert_boxes(half, "xyxy", "cxcywh")
    assert cx.dtype == torch.float16
    # (30000 + 60000) / 2 in float16 would be inf / 2; 45000 rounds to 44992 in float16.
    assert cx[1, 0] == torch.tensor(45000.0).half()


def test_degenerate_boxes_have_zero_iou_and_finite_values() -> None:
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    inverted = torch.tensor([[3.0, 3.0, 1.0, 1.0]])  # x2 < x1: read as an empty box
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    for a, b in ((point, point), (point, box), (inverted, box), (inverted, inverted)):
        assert detloss.box_iou(a, b, "iou", aligned=True).item() == 0.0
        for kind in IOU_KINDS:
            assert torch.isfinite(detloss.box_iou(a, b, kind, aligned=True)).all()
    # Point (1, 1) inside box (0,0,4,4): GIoU = 0 - (16 - 16)/16 = 0; DIoU = -(1 + 1)/32.
    assert detloss.box_iou(point, box, "giou", aligned=True).item() == pytest.approx(0.0)
    assert detloss.box_iou(point, box, "diou", aligned=True).item() == pytest.approx(-2 / 32)


def test_validate_boxes() -> None:
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    assert detloss.validate_boxes(good) is good
    with pytest.raises(ValueError, match=r"1 invalid xyxy box.*x2 < x1.*index \(1,\)"):
        detloss.validate_boxes(torch.tensor([[0.0, 0.0, 1.0, 1.0], [3.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        detloss.validate_boxes(torch.tensor([[0.0, 0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="xywh"):
        detloss.validate_boxes(torch.tensor([[0.0, 0.0, -1.0, 1.0]]), "xywh")
    with pytest.raises(ValueError, match="boxes1"):
        detloss.box_iou(good.flip(-1), good, aligned=True, check_boxes=True)
    with pytest.raises(ValueError, match="boxes2"):
        detloss.box_iou(good, good.flip(-1), check_boxes=True)
    # Off by default: no value is read and invalid boxes give a finite result.
    assert torch.isfinite(detloss.box_iou(good, good.flip(-1), "ciou")).all()


def test_bad_arguments_raise_clear_errors() -> None:
    boxes = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"box_format must be one of .*got 'xyhw'"):
        detloss.box_iou(boxes, boxes, box_format="xyhw")
    with pytest.raises(ValueError, match="in_fmt"):
        detloss.convert_boxes(boxes, "xy", "xyxy")
    with pytest.raises(ValueError, match="out_fmt"):
        detloss.convert_boxes(boxes, "xyxy", "cxcy")
    with pytest.raises(ValueError, match=r"kind must be one of \('iou', 'iof', .*'eiou'"):
        detloss.box_iou(boxes, boxes, "eiou")
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\), got \(3, 5\)"):
        detloss.box_iou(torch.zeros(3, 5), boxes)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\), got \(\)"):
        detloss.convert_boxes(torch.tensor(1.0), "xyxy", "xywh")
    with pytest.raises(ValueError, match=r"\(3, 4\) and boxes2 \(2, 4\) do not broadcast"):
        detloss.box_iou(boxes, torch.zeros(2, 4), aligned=True)
    with pytest.raises(ValueError, match=r"aligned=False needs .*same batch.*\(2, 3, 4\)"):
        detloss.box_iou(torch.zeros(2, 3, 4), boxes)
    with pytest.raises(ValueError, match=r"aligned=False needs .*got \(4,\)"):
        detloss.box_iou(torch.zeros(4), boxes)
    with pytest.raises(ValueError, match="iou_eps"):
        detloss.box_iou(boxes, boxes, iou_eps=-1.0)
    with pytest.raises(ValueError, match="eps"):
        detloss.box_iou(boxes, boxes, eps=0.0)
    with pytest.raises(TypeError, match="bool"):
        detloss.box_iou(boxes.bool(), boxes)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        detloss.box_iou([[0, 0, 1, 1]], boxes)  # type: ignore[arg-type]


@pytest.mark.parametrize("aligned", [True, False])
def test_box_iou_compiles_without_graph_breaks(aligned: bool) -> None:
    g = torch.Generator().manual_seed(2)
    b1, b2 = random_boxes(6, g, "cxcywh")

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return detloss.box_iou(a, b, "ciou", aligned=aligned, box_format="cxcywh")

    compiled = torch.compile(fn, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(b1, b2), fn(b1, b2))


def test_modules_are_attributes_of_the_package() -> None:
    assert detloss.boxes.box_iou is detloss.box_iou
    assert detloss.coder.DeltaXYWHCoder is detloss.DeltaXYWHCoder


# Small integers make ties (equal coordinates, zero sizes) frequent.
_coords = st.lists(st.integers(-3, 3), min_size=8, max_size=8)


@given(_coords)
def test_maxima_minima_and_sizes_pass_the_gradient_to_the_first_argument_at_ties(
    values: list[int],
) -> None:
    # The geometry's convention at kinks: at a tie the gradient goes to the first argument (the
    # prediction), and a size of exactly 0 passes it.
    a = torch.tensor(values[:4], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(values[4:], dtype=torch.float64, requires_grad=True)
    up = torch.arange(1.0, 5.0, dtype=torch.float64)
    zero = torch.zeros(4, dtype=torch.float64)

    def width(lo: Tensor, hi: Tensor) -> Tensor:
        # x2 < x1 is read as x2 = x1: the width is max(x2 - x1, 0)
        box = _halves(_corners(torch.stack((lo, lo, hi, hi), -1), "xyxy"))
        return (box.x2 - box.x1) * 2

    cases = (
        (
            _pair_max,
            torch.maximum(a, b),
            torch.where(a >= b, up, zero),
            torch.where(a < b, up, zero),
        ),
        (
            _pair_min,
            torch.minimum(a, b),
            torch.where(a <= b, up, zero),
            torch.where(a > b, up, zero),
        ),
        (
            width,
            (b - a).clamp(min=0),
            torch.where(b >= a, -up, zero),
            torch.where(b >= a, up, zero),
        ),
    )
    for ours, value, grad_a, grad_b in cases:
        got = ours(a, b)
        grads = torch.autograd.grad(got, (a, b), up)
        torch.testing.assert_close(got, value.detach(), rtol=0, atol=0)
        torch.testing.assert_close(grads[0], grad_a, rtol=0, atol=0)
        torch.testing.assert_close(grads[1], grad_b, rtol=0, atol=0)


def test_iof_is_the_intersection_over_the_first_boxs_area() -> None:
    # mmdetection's bbox_overlaps(mode="iof"): overlap / area of boxes1.
    b1 = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 4.0]])
    b2 = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 4.0], [5.0, 5.0, 6.0, 6.0]])
    expected = torch.tensor([[1 / 4, 1.0, 0.0], [1.0, 1.0, 0.0], [4 / 16, 16 / 16, 0.0]])
    torch.testing.assert_close(detloss.box_iou(b1, b2, "iof", eps=TINY), expected)
    torch.testing.assert_close(
        detloss.box_iou(b1, b2, "iof", aligned=True, eps=TINY), torch.tensor([0.25, 1.0, 0.0])
    )


@pytest.mark.parametrize("kind", BOX_IOU_KINDS)
def test_batched_matrices_are_the_matrix_of_each_batch_entry(kind: str) -> None:
    g = torch.Generator().manual_seed(3)
    b1 = torch.stack([random_boxes(5, g)[0] for _ in range(3)])
    b2 = torch.stack([random_boxes(7, g)[1] for _ in range(3)])
    batched = detloss.box_iou(b1, b2, kind)
    assert batched.shape == (3, 5, 7)
    for i in range(3):
        torch.testing.assert_close(batched[i], detloss.box_iou(b1[i], b2[i], kind))
    # Aligned pairs broadcast: (5, 1, 4) against (1, 7, 4) is the matrix.
    torch.testing.assert_close(
        detloss.box_iou(b1[0, :, None], b2[0, None], kind, aligned=True), batched[0]
    )


def test_iou_eps_is_the_ious_own_denominator() -> None:
    # torchvision's distance_box_iou: I / U without eps, eps only in the diagonal.
    b1 = torch.tensor([[0.0, 0.0, 0.02, 0.02]], dtype=torch.float64)
    b2 = torch.tensor([[0.01, 0.01, 0.03, 0.03]], dtype=torch.float64)
    iou = 0.0001 / 0.0007
    diou = iou - 0.0002 / (0.0018 + 1e-7)
    got = detloss.box_iou(b1, b2, "diou", eps=1e-7, iou_eps=detloss.boxes.NO_EPS)
    torch.testing.assert_close(got, torch.tensor([[diou]], dtype=torch.float64))
    # The default eps in the IoU changes these small boxes' value by 1e-7 / 7e-4.
    assert (detloss.box_iou(b1, b2, "diou", eps=1e-7) - got).abs().item() > 1e-5
    # NO_EPS: zero-area pairs give 0, not NaN.
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert detloss.box_iou(point, point, "giou", eps=detloss.boxes.NO_EPS).item() == 0.0
