"""The ablation's data: the synthetic generator, COCO files in and out, the split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detloss.ablate import data


@pytest.fixture(scope="module")
def small() -> data.DetectionSet:
    return data.synthetic(40, seed=3)


def test_synthetic_is_deterministic_per_seed(small: data.DetectionSet) -> None:
    again = data.synthetic(40, seed=3)
    assert torch.equal(small.images, again.images)
    assert small.coco == again.coco
    other = data.synthetic(40, seed=4)
    assert not torch.equal(small.images, other.images)


def test_synthetic_annotations(small: data.DetectionSet) -> None:
    assert small.images.shape == (40, 3, 64, 64)
    assert small.images.dtype == torch.uint8
    assert small.class_names == list(data.SHAPES)
    counts = [len(b) for b in small.boxes]
    assert min(counts) >= 1
    assert max(counts) <= 4
    boxes = torch.cat(small.boxes)
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 2:] <= 64).all()
    assert (boxes[:, 2:] - boxes[:, :2] >= 1).all()
    assert set(torch.cat(small.labels).tolist()) <= {0, 1, 2}
    ids = {image["id"] for image in small.coco["images"]}
    for ann in small.coco["annotations"]:
        assert ann["image_id"] in ids
        assert 0 < ann["area"] <= ann["bbox"][2] * ann["bbox"][3]


def test_synthetic_covers_sizes_and_aspect_ratios() -> None:
    boxes = torch.cat(data.synthetic(300, seed=0).boxes)
    wh = boxes[:, 2:] - boxes[:, :2]
    side = wh.prod(1).sqrt()
    ratio = wh[:, 0] / wh[:, 1]
    assert side.min() < 8
    assert side.max() > 32
    assert ratio.min() < 0.4
    assert ratio.max() > 2.5


def test_box_is_the_tight_box_of_the_visible_mask() -> None:
    g = torch.Generator().manual_seed(5)
    objects = [obj for _ in range(5) for obj in data._draw_image(64, g)[1]]
    assert len(objects) > 5
    for _, mask in objects:
        (x, y, w, h), area = data.mask_box(mask)
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        inside = mask[y0:y1, x0:x1]
        assert inside.sum() == mask.sum() == area
        # every edge of the box touches the mask
        for edge in (inside[0], inside[-1], inside[:, 0], inside[:, -1]):
            assert edge.any()


def test_later_shapes_leave_earlier_ones_visible() -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        _, objects = data._draw_image(64, g)
        masks = [mask for _, mask in objects]
        for i, mask in enumerate(masks):
            assert mask.any()
            for later in masks[i + 1 :]:
                assert not (mask & later).any()  # masks are the visible parts: disjoint


def test_coco_round_trip(tmp_path: Path, small: data.DetectionSet) -> None:
    path = data.write_coco(small, tmp_path)
    read = data.read_coco(path, tmp_path, 64)
    assert torch.equal(read.images, small.images)
    assert read.coco == small.coco
    for a, b in zip(read.boxes, small.boxes, strict=True):
        assert torch.equal(a, b)
    assert read.area_thresholds == data.COCO_AREA_THRESHOLDS


def test_read_coco_resizes_and_scales(tmp_path: Path, small: data.DetectionSet) -> None:
    path = data.write_coco(small, tmp_path)
    read = data.read_coco(path, tmp_path, 32)
    assert read.images.shape == (40, 3, 32, 32)
    torch.testing.assert_close(read.scales, torch.full((40, 2), 2.0))
    for a, b in zip(read.boxes, small.boxes, strict=True):
        torch.testing.assert_close(a * 2, b)


def test_crowd_and_empty_boxes_are_not_targets(small: data.DetectionSet) -> None:
    coco = {**small.coco, "annotations": [dict(a) for a in small.coco["annotations"]]}
    coco["annotations"][0]["iscrowd"] = 1
    coco["annotations"][1]["bbox"] = [3.0, 3.0, 0.0, 5.0]
    dataset = data.from_coco(coco, small.images, 64, data.COCO_AREA_THRESHOLDS)
    assert sum(len(b) for b in dataset.boxes) == sum(len(b) for b in small.boxes) - 2


def test_split_and_round_trip_through_dict(small: data.DetectionSet) -> None:
    train, val = data.split(small, 0.25)
    assert (len(train), len(val)) == (30, 10)
    assert val.image_ids == small.image_ids[30:]
    assert {a["image_id"] for a in val.coco["annotations"]} <= set(val.image_ids)
    restored = data.DetectionSet.from_dict(val.to_dict())
    assert torch.equal(restored.images, val.images)
    assert restored.coco == val.coco
    with pytest.raises(ValueError, match="cannot hold out"):
        data.split(data.synthetic(1, seed=0), 0.5)
