"""The Faster R-CNN delta box coder (detloss.coder)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import detloss
from detloss import DeltaXYWHCoder
from detloss.boxes import BOX_FORMATS
from tests.boxgen import in_format

PROPOSAL = (0.0, 0.0, 10.0, 20.0)  # centre (5, 10), size (10, 20)
# gt: centre (10, 5), size (20, 10): t = (5/10, -5/20, log 2, log 1/2)
GT = (0.0, 0.0, 20.0, 10.0)
DELTAS = (0.5, -0.25, math.log(2.0), math.log(0.5))


@pytest.mark.parametrize("box_format", BOX_FORMATS)
def test_encode_decode_hand_values(box_format: str) -> None:
    coder = DeltaXYWHCoder(box_format=box_format)
    proposal = torch.tensor([in_format(PROPOSAL, box_format)], dtype=torch.float64)
    gt = torch.tensor([in_format(GT, box_format)], dtype=torch.float64)
    deltas = coder.encode(proposal, gt)
    torch.testing.assert_close(deltas, torch.tensor([DELTAS], dtype=torch.float64))
    torch.testing.assert_close(coder.decode(proposal, deltas), gt)


def test_means_and_stds_normalise_the_deltas() -> None:
    means, stds = (0.1, -0.1, 0.0, 0.2), (0.1, 0.1, 0.2, 0.2)
    coder = DeltaXYWHCoder(means, stds)
    proposal, gt = torch.tensor([PROPOSAL]), torch.tensor([GT])
    expected = (torch.tensor([DELTAS]) - torch.tensor(means)) / torch.tensor(stds)
    torch.testing.assert_close(coder.encode(proposal, gt), expected)
    torch.testing.assert_close(coder.decode(proposal, expected), gt)


def test_torchvision_weights_are_inverse_stds_clamped_from_above_only() -> None:
    coder = DeltaXYWHCoder.from_weights((10.0, 10.0, 5.0, 5.0))
    assert coder.stds == (0.1, 0.1, 0.2, 0.2)
    assert coder.means == (0.0, 0.0, 0.0, 0.0)
    assert not coder.clamp_below
    proposal, gt = torch.tensor([PROPOSAL]), torch.tensor([GT])
    # torchvision: (wx dx, wy dy, ww dw, wh dh)
    torch.testing.assert_close(
        coder.encode(proposal, gt), torch.tensor([DELTAS]) * torch.tensor([10.0, 10.0, 5.0, 5.0])
    )
    assert "clamp_below=False" in repr(coder)


def test_decode_clamps_dw_dh_so_exp_never_overflows() -> None:
    proposal = torch.tensor([PROPOSAL, PROPOSAL])
    deltas = torch.tensor([[0.0, 0.0, 1e4, 1e4], [0.0, 0.0, -1e4, -1e4]])
    # exp(clamp) = 1000/16 = 62.5: a 10 x 20 proposal becomes at most 625 x 1250 and, with the
    # two-sided clamp (mmdetection), at least 0.16 x 0.32; centre (5, 10).
    mmdet = DeltaXYWHCoder().decode(proposal, deltas)
    expected = torch.tensor(
        [[5 - 312.5, 10 - 625.0, 5 + 312.5, 10 + 625.0], [4.92, 9.84, 5.08, 10.16]]
    )
    torch.testing.assert_close(mmdet, expected)
    torchvision = DeltaXYWHCoder.from_weights().decode(proposal, deltas)
    torch.testing.assert_close(torchvision[0], expected[0])
    torch.testing.assert_close(torchvision[1], torch.tensor([5.0, 10.0, 5.0, 10.0]))


def test_decode_clips_to_the_image() -> None:
    proposal = torch.tensor([[-5.0, -5.0, 50.0, 30.0]])
    boxes = DeltaXYWHCoder().decode(proposal, torch.zeros(1, 4), max_shape=(20, 40, 3))
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 40.0, 20.0]]))


def test_zero_size_boxes_encode_to_finite_deltas() -> None:
    coder = DeltaXYWHCoder()
    proposal = torch.tensor([[0.0, 0.0, 100.0, 100.0], [5.0, 5.0, 5.0, 5.0]])
    gt = torch.tensor([[10.0, 10.0, 10.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    deltas = coder.encode(proposal, gt)
    assert torch.isfinite(deltas).all()
    # zero width raised to min_size = 1e-6: dw = log(1e-6 / 100)
    torch.testing.assert_close(deltas[0, 2], torch.tensor(math.log(1e-6 / 100)))


coord = st.floats(-1e3, 1e3)
side = st.floats(1.0, 500.0)


@given(
    st.tuples(coord, coord, side, side),
    st.tuples(coord, coord, st.floats(0.2, 5.0), st.floats(0.2, 5.0)),
    st.sampled_from(BOX_FORMATS),
    st.booleans(),
)
def test_decode_inverts_encode(
    proposal_cxcywh: tuple[float, ...],
    gt_offset_and_ratio: tuple[float, ...],
    box_format: str,
    torchvision_style: bool,
) -> None:
    cx, cy, w, h = proposal_cxcywh
    dx, dy, rw, rh = gt_offset_and_ratio
    proposal = torch.tensor([[cx, cy, w, h]], dtype=torch.float64)
    gt = torch.tensor([[cx + dx, cy + dy, w * rw, h * rh]], dtype=torch.float64)
    proposal = detloss.convert_boxes(proposal, "cxcywh", box_format)
    gt = detloss.convert_boxes(gt, "cxcywh", box_format)
    coder = (
        DeltaXYWHCoder.from_weights((10.0, 10.0, 5.0, 5.0), box_format=box_format)
        if torchvision_style
        else DeltaXYWHCoder((0.0, 0.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.2), box_format=box_format)
    )
    torch.testing.assert_close(coder.decode(proposal, coder.encode(proposal, gt)), gt)


def test_dtypes_and_broadcasting() -> None:
    coder = DeltaXYWHCoder()
    proposals = torch.tensor([[PROPOSAL]]).expand(3, 1, 4)
    deltas = torch.zeros(3, 5, 4, dtype=torch.float16)
    out = coder.decode(proposals.long(), deltas)
    assert out.shape == (3, 5, 4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor(PROPOSAL).expand(3, 5, 4))
    encoded = coder.encode(torch.tensor([PROPOSAL]).half(), torch.tensor([GT]).half())
    assert encoded.dtype == torch.float32
    torch.testing.assert_close(encoded, torch.tensor([DELTAS]))


def test_encode_and_decode_compile_without_graph_breaks() -> None:
    coder = DeltaXYWHCoder((0.0, 0.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.2))
    proposal, gt = torch.tensor([PROPOSAL]), torch.tensor([GT])
    encode = torch.compile(coder.encode, fullgraph=True, backend="eager")
    decode = torch.compile(coder.decode, fullgraph=True, backend="eager")
    deltas = encode(proposal, gt)
    torch.testing.assert_close(deltas, coder.encode(proposal, gt))
    torch.testing.assert_close(decode(proposal, deltas, (100, 100)), gt)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="stds"):
        DeltaXYWHCoder(stds=(1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"means must be 4 numbers"):
        DeltaXYWHCoder(means=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="clamp"):
        DeltaXYWHCoder(clamp=0.0)
    with pytest.raises(ValueError, match="weights"):
        DeltaXYWHCoder.from_weights((10.0, 10.0, 5.0, -5.0))
    with pytest.raises(ValueError, match="box_format"):
        DeltaXYWHCoder(box_format="xyxyxy")
    coder = DeltaXYWHCoder()
    with pytest.raises(ValueError, match=r"deltas must have shape \(\.\.\., 4\)"):
        coder.decode(torch.zeros(2, 4), torch.zeros(2, 8))
    with pytest.raises(ValueError, match="do not broadcast"):
        coder.decode(torch.zeros(2, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="max_shape"):
        coder.decode(torch.zeros(2, 4), torch.zeros(2, 4), max_shape=(10,))
    with pytest.raises(ValueError, match="same shape"):
        coder.encode(torch.zeros(2, 4), torch.zeros(3, 4))
