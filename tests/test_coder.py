"""The Faster R-CNN delta box coder (detloss.coder)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

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
    with pytest.raises(ValueError, match="ctr_clamp"):
        DeltaXYWHCoder(add_ctr_clamp=True, ctr_clamp=0)
    with pytest.raises(ValueError, match="same shape"):
        coder.encode(torch.zeros(2, 4), torch.zeros(3, 4))


def _mmdet_delta2bbox(
    rois: torch.Tensor, deltas: torch.Tensor, ctr_clamp: float | None
) -> torch.Tensor:
    """mmdetection's decode with unit stds: the centre shift, in box units, clamped to
    +-ctr_clamp with add_ctr_clamp (and dw, dh then clamped only from above)."""
    max_ratio = abs(math.log(16 / 1000))
    pxy, pwh = (rois[:, :2] + rois[:, 2:]) / 2, rois[:, 2:] - rois[:, :2]
    shift, dwh = pwh * deltas[:, :2], deltas[:, 2:]
    if ctr_clamp is None:
        dwh = dwh.clamp(-max_ratio, max_ratio)
    else:
        shift, dwh = shift.clamp(-ctr_clamp, ctr_clamp), dwh.clamp(max=max_ratio)
    gxy, gwh = pxy + shift, pwh * dwh.exp()
    return torch.cat([gxy - gwh / 2, gxy + gwh / 2], dim=-1)


def test_centre_clamp_is_mmdetections_add_ctr_clamp() -> None:
    rois = torch.tensor([[0.0, 0.0, 100.0, 100.0]] * 4)
    deltas = torch.tensor(
        [[0.1, -0.2, 0.5, -0.5], [2.0, -3.0, 0.0, 0.0], [0.0, 0.0, -9.0, 9.0], [0.3, 0.0, 0, 0]]
    )
    yolof = DeltaXYWHCoder(add_ctr_clamp=True, ctr_clamp=32)
    assert not yolof.clamp_below
    torch.testing.assert_close(yolof.decode(rois, deltas), _mmdet_delta2bbox(rois, deltas, 32.0))
    torch.testing.assert_close(
        DeltaXYWHCoder().decode(rois, deltas), _mmdet_delta2bbox(rois, deltas, None)
    )
    # 2.0 * 100 = 200 box units of shift, clamped to 32: the centre moves from 50 to 82.
    assert yolof.decode(rois, deltas)[1, 0].item() == pytest.approx(82.0 - 50.0)
    assert "ctr_clamp=32.0" in repr(yolof)


def test_batched_decode_clips_each_image_to_its_own_shape() -> None:
    proposals = torch.tensor([[[-5.0, -5.0, 50.0, 30.0]], [[-5.0, -5.0, 50.0, 30.0]]])
    deltas = torch.zeros(2, 1, 4)
    expected = torch.tensor([[[0.0, 0.0, 40.0, 20.0]], [[0.0, 0.0, 15.0, 10.0]]])
    coder = DeltaXYWHCoder()
    for max_shape in (
        [(20, 40), (10, 15, 3)],
        torch.tensor([[20, 40, 3], [10, 15, 3]]),
        torch.tensor([[20.0, 40.0], [10.0, 15.0]], dtype=torch.float64),
    ):
        torch.testing.assert_close(coder.decode(proposals, deltas, max_shape), expected)
    # One (height, width) for every image, as numbers or a tensor.
    for one_shape in ((20, 40), [20.0, 40.0, 3], torch.tensor([20, 40])):
        torch.testing.assert_close(coder.decode(proposals, deltas, one_shape), expected[[0, 0]])
    # clip_border=False ignores max_shape (mmdetection's clip_border).
    unclipped = DeltaXYWHCoder(clip_border=False).decode(proposals, deltas, (20, 40))
    torch.testing.assert_close(unclipped, proposals)


def test_max_shape_that_is_neither_a_pair_of_numbers_nor_a_tensor_is_rejected() -> None:
    coder = DeltaXYWHCoder()
    boxes = torch.zeros(2, 3, 4)
    for bad in ("hw", (10,), [(10, 20), (5,)], [(10, 20), "ab"], (True, 3), {"h": 1}, 5):
        with pytest.raises(TypeError, match="max_shape must be"):
            coder.decode(boxes, boxes, bad)  # type: ignore[arg-type]
    for bad_tensor in (torch.zeros(3, 2), torch.zeros(1), torch.zeros(2, 3, 2), torch.tensor(1.0)):
        with pytest.raises(ValueError, match="max_shape of shape"):
            coder.decode(boxes, boxes, bad_tensor)
    with pytest.raises(TypeError, match="real tensor"):
        coder.decode(boxes, boxes, torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="max_shape"):
        coder.decode(boxes, boxes, (-10, 20))


class _RecordOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_means_and_stds_are_applied_without_making_a_tensor_from_host_data() -> None:
    # torch.tensor / new_tensor of Python numbers dispatch lift_fresh: on an accelerator each
    # would be a host-to-device copy per call.
    coder = DeltaXYWHCoder((0.1, -0.1, 0.0, 0.2), (0.1, 0.1, 0.2, 0.2))
    proposal, gt = torch.tensor([PROPOSAL]), torch.tensor([GT])
    with _RecordOps() as recorded:
        deltas = coder.encode(proposal, gt)
        coder.decode(proposal, deltas, (100, 100))
    assert recorded.ops
    assert not [op for op in recorded.ops if "lift_fresh" in op or "_to_copy" in op]
