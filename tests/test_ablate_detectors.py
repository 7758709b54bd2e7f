"""The ablation's detectors: anchors, matching, NMS, RoIAlign, every loss of the table, and the
Faster R-CNN RPN loss against py-faster-rcnn's Caffe SmoothL1Loss layer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import detloss
from detloss.ablate import data
from detloss.ablate.anchors import IGNORED, NEGATIVE, assigned, grid_anchors, match, nms
from detloss.ablate.losses import CLASSIFICATION, LOSSES, REGRESSION, parse
from detloss.ablate.onestage import OneStageDetector
from detloss.ablate.roi_align import roi_align
from detloss.ablate.twostage import RPN_IOU, TwoStageDetector, sample


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    dataset = data.synthetic(6, seed=2)
    return dataset.images, dataset.boxes, dataset.labels


def test_grid_anchors() -> None:
    anchors = grid_anchors(2, 3, 8, (8.0, 16.0), (0.5, 1.0, 2.0))
    assert anchors.shape == (2 * 3 * 6, 4)
    # cell (row 1, column 2) is location 5; its centre is (20, 12)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    torch.testing.assert_close(centres[5 * 6 : 6 * 6], torch.tensor([[20.0, 12.0]]).expand(6, 2))
    wh = anchors[:6, 2:] - anchors[:6, :2]
    torch.testing.assert_close(wh.prod(1).sqrt(), torch.tensor([8.0] * 3 + [16.0] * 3))
    torch.testing.assert_close(wh[:3, 1] / wh[:3, 0], torch.tensor([0.5, 1.0, 2.0]))


def _match_reference(anchors: torch.Tensor, gt: torch.Tensor, pos: float, neg: float) -> list[int]:
    iou = detloss.box_iou(anchors, gt)
    result = []
    for row in iou.tolist():
        best = max(row)
        result.append(row.index(best) if best >= pos else NEGATIVE if best < neg else IGNORED)
    for j in range(gt.shape[0]):
        column = iou[:, j]
        if column.max() > 0:
            for i in torch.nonzero(column == column.max()).squeeze(1).tolist():
                result[i] = j
    return result


def test_match_against_loops(batch) -> None:
    _, boxes, _ = batch
    anchors = grid_anchors(8, 8, 8, (8.0, 16.0, 32.0), (0.5, 1.0, 2.0))
    matched = match(anchors, boxes, 0.5, 0.4)
    for image, gt in enumerate(boxes):
        assert matched[image].tolist() == _match_reference(anchors, gt, 0.5, 0.4)
    empty = match(anchors, [torch.zeros(0, 4), boxes[0]], 0.5, 0.4)
    assert (empty[0] == NEGATIVE).all()
    assert empty[1].tolist() == matched[0].tolist()


def test_assigned() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = assigned(values, torch.tensor([1, -1, 0, -2]), (9.0, 9.0))
    assert out.tolist() == [[3.0, 4.0], [9.0, 9.0], [1.0, 2.0], [9.0, 9.0]]
    assert assigned(torch.zeros(0), torch.tensor([-1, -1]), 7).tolist() == [7.0, 7.0]


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    order = scores.argsort(descending=True).tolist()
    keep: list[int] = []
    for i in order:
        if all(
            detloss.box_iou(boxes[i : i + 1], boxes[j : j + 1]).item() <= threshold for j in keep
        ):
            keep.append(i)
    return keep


@settings(max_examples=40)
@given(st.integers(0, 10_000), st.integers(1, 40), st.sampled_from([0.3, 0.5, 0.7]))
def test_nms_is_greedy_nms(seed: int, n: int, threshold: float) -> None:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 20
    boxes = torch.cat((xy, xy + 2 + torch.rand(n, 2, generator=g) * 10), 1)
    scores = torch.randperm(n, generator=g).float()  # distinct scores: one greedy answer
    assert nms(boxes, scores, threshold).tolist() == _greedy_nms(boxes, scores, threshold)


def _bilinear(feature: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """torchvision's RoIAlign sample: clamp to the map, then interpolate the 4 neighbours."""
    h, w = feature.shape[-2:]
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return (
        feature[:, y0, x0] * (1 - ly) * (1 - lx)
        + feature[:, y0, x1] * (1 - ly) * lx
        + feature[:, y1, x0] * ly * (1 - lx)
        + feature[:, y1, x1] * ly * lx
    )


def _roi_align_reference(
    feature: torch.Tensor, box: list[float], size: int, stride: int, sampling: int
) -> torch.Tensor:
    x0, y0, x1, y1 = (v / stride - 0.5 for v in box)  # aligned=True
    bin_w, bin_h = (x1 - x0) / size, (y1 - y0) / size
    out = torch.zeros(feature.shape[0], size, size, dtype=feature.dtype)
    for i in range(size):
        for j in range(size):
            for a in range(sampling):
                for b in range(sampling):
                    y = y0 + (i + (a + 0.5) / sampling) * bin_h
                    x = x0 + (j + (b + 0.5) / sampling) * bin_w
                    out[:, i, j] += _bilinear(feature, y, x) / sampling**2
    return out


@pytest.mark.parametrize("sampling", [1, 2])
def test_roi_align_against_torchvision_formula(sampling: int) -> None:
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64)
    rois = [
        torch.tensor([[0.0, 0.0, 40.0, 48.0], [3.5, 7.25, 21.0, 19.0]], dtype=torch.float64),
        torch.tensor([[10.0, 2.0, 13.0, 40.0]], dtype=torch.float64),
    ]
    out = roi_align(features, rois, 3, 8, sampling)
    assert out.shape == (3, 3, 3, 3)
    expected = [
        _roi_align_reference(features[image], box, 3, 8, sampling)
        for image, boxes in enumerate(rois)
        for box in boxes.tolist()
    ]
    torch.testing.assert_close(out, torch.stack(expected))


def test_roi_align_gradient_reaches_the_features() -> None:
    features = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    rois = [torch.tensor([[4.0, 4.0, 20.0, 28.0]], dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, 2, 8, 2), (features,))


def test_table_names_and_parse() -> None:
    assert set(REGRESSION) == {
        "smooth_l1", "l1", "balanced_l1", "iou", "giou", "diou", "ciou", "eiou", "siou"
    }  # fmt: skip
    assert set(CLASSIFICATION) == {"focal", "bce", "ce", "varifocal", "qfl"}
    assert parse(" giou, ciou,giou", REGRESSION, "--losses") == ("giou", "ciou")
    with pytest.raises(ValueError, match="--losses: unknown name"):
        parse("giou,focal", REGRESSION, "--losses")


@pytest.mark.parametrize("reg", REGRESSION)
@pytest.mark.parametrize("cls", CLASSIFICATION)
def test_one_stage_every_loss_pair(batch, reg: str, cls: str) -> None:
    images, boxes, labels = batch
    torch.manual_seed(0)
    model = OneStageDetector(3, 64, LOSSES[reg], LOSSES[cls])
    losses = model(images, (boxes, labels))
    assert set(losses) == {"cls", "reg"}
    total = losses["cls"] + losses["reg"]
    assert torch.isfinite(total)
    assert losses["reg"] > 0
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("reg", ["smooth_l1", "giou"])
def test_two_stage_losses_and_detections(batch, reg: str) -> None:
    images, boxes, labels = batch
    torch.manual_seed(0)
    model = TwoStageDetector(3, 64, LOSSES[reg], LOSSES["rpn"], LOSSES["fast_rcnn"])
    losses = model(images, (boxes, labels))
    assert set(losses) == {"rpn_cls", "rpn_reg", "roi_cls", "roi_reg"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    detections = model(images)
    assert len(detections) == len(images)
    for det_boxes, scores, det_labels in detections:
        assert det_boxes.shape == (len(scores), 4)
        assert len(scores) <= 100
        assert ((det_labels >= 0) & (det_labels < 3)).all()
        assert (scores >= 0.05).all()


def test_detectors_reject_losses_in_the_wrong_role() -> None:
    with pytest.raises(ValueError, match="reg_loss"):
        OneStageDetector(3, 64, LOSSES["focal"], LOSSES["focal"])
    with pytest.raises(ValueError, match="cls_loss"):
        OneStageDetector(3, 64, LOSSES["giou"], LOSSES["l1"])


def test_sample() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([1] * 10 + [0] * 50 + [-1] * 5)
    sampled = sample(labels, 16, 0.25)
    assert (sampled == 1).sum() == 4
    assert (sampled == 0).sum() == 12
    assert ((sampled == -1) | (sampled == labels)).all()
    few = sample(torch.tensor([1, 0, 0]), 16, 0.5)
    assert few.tolist() == [1, 0, 0]


def _caffe_smooth_l1_layer(
    pred: torch.Tensor,
    target: torch.Tensor,
    inside: torch.Tensor,
    outside: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """py-faster-rcnn's SmoothL1Loss layer (one image, batch size 1): with d = inside * (pred -
    target), f = 0.5 (sigma d)^2 where |d| < 1 / sigma^2, else |d| - 0.5 / sigma^2; the sum of
    outside * f."""
    d = inside * (pred - target)
    s2 = sigma * sigma
    f = torch.where(d.abs() < 1 / s2, 0.5 * s2 * d * d, d.abs() - 0.5 / s2)
    return (outside * f).sum()


def test_rpn_loss_is_the_caffe_layer_with_inside_and_outside_weights(batch) -> None:
    """rpn_loss(sigma=3) on one image's sampled anchors is py-faster-rcnn's RPN loss: the Caffe
    layer with inside weights 1 on positives' coordinates and outside weights 1 / sampled."""
    images, boxes, _ = batch
    torch.manual_seed(0)
    model = TwoStageDetector(3, 64, LOSSES["smooth_l1"], LOSSES["rpn"], LOSSES["fast_rcnn"])
    features = model.backbone(images[:1])
    hidden = model.rpn_conv(features)
    objectness = model.rpn_objectness(hidden).permute(0, 2, 3, 1).reshape(-1)
    deltas = model.rpn_deltas(hidden).permute(0, 2, 3, 1).reshape(-1, 4)
    torch.manual_seed(1)
    losses = model.rpn_losses(objectness[None], deltas[None], boxes[:1])

    matched = match(model.anchors, boxes[:1], *RPN_IOU)[0]
    targets = model.rpn_coder.encode(model.anchors, assigned(boxes[0], matched, (0, 0, 1, 1)))
    torch.manual_seed(1)
    rpn_labels = sample(
        (matched >= 0).long() - (matched == IGNORED).long(), 256, 0.5
    )  # the same draw as inside rpn_losses
    inside = (rpn_labels == 1).float()[:, None].expand(-1, 4)
    outside = torch.full_like(inside, 1 / (rpn_labels >= 0).sum().item())
    expected = _caffe_smooth_l1_layer(deltas, targets, inside, outside, sigma=3.0)
    torch.testing.assert_close(losses["rpn_reg"], expected)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        objectness[rpn_labels >= 0], rpn_labels[rpn_labels >= 0].float()
    )
    torch.testing.assert_close(losses["rpn_cls"], bce)
