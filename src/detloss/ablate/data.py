"""Detection data for the ablation: a seeded synthetic generator and COCO-format files.

Both sources end up as a :class:`DetectionSet`: square images of one size in memory, boxes and
labels in those pixels, and the COCO ground truth in the images' own pixels (what the evaluator
compares against, after predictions are scaled back).

The synthetic images (:func:`synthetic_coco`) hold 1-4 shapes (rectangles, ellipses, triangles)
of random colours, sizes from 5 pixels to most of the image and aspect ratios from 1:4 to 4:1,
drawn over one another (occlusion), on a textured, noisy background crossed by distractor
strokes. A box is the tight box of the shape's visible pixels and ``area`` their count, as COCO.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

SHAPES: tuple[str, ...] = ("rectangle", "ellipse", "triangle")
COCO_AREA_THRESHOLDS: tuple[float, float] = (32.0, 96.0)
"""COCO's small / medium / large boundaries: square roots of the areas, in pixels."""
SYNTHETIC_AREA_THRESHOLDS: tuple[float, float] = (12.0, 24.0)
"""The synthetic set's boundaries (64-pixel images): small below 12^2 pixels, large above 24^2."""
MIN_VISIBLE = 0.4
"""A new shape is redrawn elsewhere if it would hide more than 60% of an earlier one."""


@dataclass(frozen=True)
class DetectionSet:
    """Images resized to ``size x size`` with their targets, and the COCO ground truth.

    ``boxes[i]`` is ``(k, 4)`` float32 xyxy in the resized pixels, ``labels[i]`` ``(k,)`` int64 in
    ``[0, num_classes)``; ``scales[i]`` = (original width, original height) / ``size``, so a box
    times ``scales[i]`` (x and y) is in the original image, where ``coco`` lives.
    """

    images: Tensor
    boxes: list[Tensor]
    labels: list[Tensor]
    scales: Tensor
    coco: dict[str, Any]
    area_thresholds: tuple[float, float]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.coco["categories"]]

    @property
    def category_ids(self) -> list[int]:
        return [c["id"] for c in self.coco["categories"]]

    @property
    def image_ids(self) -> list[int]:
        return [image["id"] for image in self.coco["images"]]

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors, lists and numbers (``torch.save`` / ``torch.load(weights_only=True)``)."""
        return {
            "images": self.images,
            "boxes": self.boxes,
            "labels": self.labels,
            "scales": self.scales,
            "coco": self.coco,
            "area_thresholds": list(self.area_thresholds),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> DetectionSet:
        thresholds = value["area_thresholds"]
        return cls(
            value["images"],
            value["boxes"],
            value["labels"],
            value["scales"],
            value["coco"],
            (float(thresholds[0]), float(thresholds[1])),
        )


def from_coco(
    coco: dict[str, Any],
    images: Sequence[Tensor] | Tensor,
    size: int,
    area_thresholds: tuple[float, float],
) -> DetectionSet:
    """A :class:`DetectionSet` from a COCO dict and its images (uint8 ``(3, H, W)``, in the order
    of ``coco["images"]``), each resized to ``size x size``. Crowd annotations are not targets."""
    label_of = {c["id"]: label for label, c in enumerate(coco["categories"])}
    by_image: dict[int, list[dict[str, Any]]] = {image["id"]: [] for image in coco["images"]}
    for ann in coco["annotations"]:
        if not ann.get("iscrowd", 0):
            by_image[ann["image_id"]].append(ann)
    resized, boxes, labels, scales = [], [], [], []
    for info, image in zip(coco["images"], images, strict=True):
        height, width = image.shape[-2:]
        scale = torch.tensor([width / size, height / size])
        if (height, width) != (size, size):
            image = F.interpolate(
                image[None].float(), (size, size), mode="bilinear", antialias=True
            )[0]
            image = image.round().clamp(0, 255).to(torch.uint8)
        anns = [a for a in by_image[info["id"]] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        xyxy = torch.cat((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), dim=1) / scale.repeat(2)
        resized.append(image)
        boxes.append(xyxy)
        labels.append(torch.tensor([label_of[a["category_id"]] for a in anns], dtype=torch.int64))
        scales.append(scale)
    return DetectionSet(
        torch.stack(resized), boxes, labels, torch.stack(scales), coco, area_thresholds
    )


def read_coco(annotations: Path, image_dir: Path, size: int) -> DetectionSet:
    """A COCO-format dataset (``annotations.json`` and the folder of its ``file_name``s)."""
    from PIL import Image

    coco = json.loads(annotations.read_text())
    images = []
    for info in coco["images"]:
        with Image.open(image_dir / info["file_name"]) as file:
            pixels = torch.frombuffer(bytearray(file.convert("RGB").tobytes()), dtype=torch.uint8)
        images.append(pixels.reshape(file.height, file.width, 3).permute(2, 0, 1))
    return from_coco(coco, images, size, COCO_AREA_THRESHOLDS)


def write_coco(dataset: DetectionSet, directory: Path) -> Path:
    """Write ``annotations.json`` and the images as PNG into ``directory``; returns the json path."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for info, image in zip(dataset.coco["images"], dataset.images, strict=True):
        Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(
            directory / info["file_name"]
        )
    path = directory / "annotations.json"
    path.write_text(json.dumps(dataset.coco))
    return path


def split(dataset: DetectionSet, val_fraction: float) -> tuple[DetectionSet, DetectionSet]:
    """The last ``val_fraction`` of the images (at least one) for validation, the rest to train."""
    n_val = max(1, round(len(dataset) * val_fraction))
    if n_val >= len(dataset):
        raise ValueError(f"cannot hold out {n_val} of {len(dataset)} images for validation")
    return _subset(dataset, slice(0, len(dataset) - n_val)), _subset(
        dataset, slice(len(dataset) - n_val, len(dataset))
    )


def _subset(dataset: DetectionSet, part: slice) -> DetectionSet:
    images = dataset.coco["images"][part]
    ids = {image["id"] for image in images}
    coco = {
        **dataset.coco,
        "images": images,
        "annotations": [a for a in dataset.coco["annotations"] if a["image_id"] in ids],
    }
    return DetectionSet(
        dataset.images[part],
        dataset.boxes[part],
        dataset.labels[part],
        dataset.scales[part],
        coco,
        dataset.area_thresholds,
    )


def synthetic(num_images: int, seed: int, size: int = 64) -> DetectionSet:
    """``num_images`` synthetic images of ``size x size``, the same for the same seed."""
    coco, images = synthetic_coco(num_images, seed, size)
    return from_coco(coco, images, size, SYNTHETIC_AREA_THRESHOLDS)


def synthetic_coco(num_images: int, seed: int, size: int = 64) -> tuple[dict[str, Any], Tensor]:
    """A COCO dict and its ``(num_images, 3, size, size)`` uint8 images."""
    g = torch.Generator().manual_seed(seed)
    images: list[Tensor] = []
    annotations: list[dict[str, Any]] = []
    for image_id in range(1, num_images + 1):
        image, objects = _draw_image(size, g)
        images.append(image)
        for label, mask in objects:
            bbox, area = mask_box(mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": f"detloss synthetic shapes, seed {seed}"},
        "images": [
            {"id": i, "file_name": f"{i:06d}.png", "width": size, "height": size}
            for i in range(1, num_images + 1)
        ],
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(SHAPES)],
    }
    return coco, torch.stack(images)


def mask_box(mask: Tensor) -> tuple[list[float], float]:
    """COCO's ``[x, y, w, h]`` tight box of a non-empty pixel mask (pixel ``i`` spans ``[i, i + 1]``)
    and its area, the number of pixels."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    x0, y0 = xs.min().item(), ys.min().item()
    w, h = xs.max().item() + 1 - x0, ys.max().item() + 1 - y0
    return [float(x0), float(y0), float(w), float(h)], float(mask.sum().item())


def _uniform(g: torch.Generator, low: float = 0.0, high: float = 1.0, n: int = 1) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def _log_uniform(g: torch.Generator, low: float, high: float) -> float:
    return math.exp(_uniform(g, math.log(low), math.log(high)).item())


def _draw_image(size: int, g: torch.Generator) -> tuple[Tensor, list[tuple[int, Tensor]]]:
    """One image and its objects' visible masks (shapes drawn later hide earlier ones)."""
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    noise = torch.randn(2, 3, size, size, generator=g).double()
    canvas = _background(size, g, x, y, noise[0])
    labels: list[int] = []
    visible: list[Tensor] = []
    for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
        for _attempt in range(10):
            label = int(torch.randint(len(SHAPES), (1,), generator=g))
            mask = _shape_mask(SHAPES[label], size, g, x, y)
            kept = [v & ~mask for v in visible]
            if mask.any() and all(
                k.sum() >= MIN_VISIBLE * v.sum() for k, v in zip(kept, visible, strict=True)
            ):
                break
        else:
            continue
        colour = _contrasting_colour(canvas, mask, g)
        canvas = torch.where(mask, colour[:, None, None] + 0.06 * noise[1], canvas)
        visible = [*kept, mask]
        labels.append(label)
    pixels = (canvas.clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels, list(zip(labels, visible, strict=True))


def _background(size: int, g: torch.Generator, x: Tensor, y: Tensor, noise: Tensor) -> Tensor:
    """Smooth random texture plus pixel noise, crossed by 2-6 strokes 1-2 pixels wide."""
    coarse = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
    texture = F.interpolate(coarse, (size, size), mode="bicubic", align_corners=False)[0]
    canvas = 0.15 + 0.7 * texture + 0.05 * noise
    for _ in range(int(torch.randint(2, 7, (1,), generator=g))):
        a, b = _uniform(g, 0, size, 2), _uniform(g, 0, size, 2)
        half_width = _uniform(g, 0.5, 1.0).item()
        stroke = _segment_distance(x, y, a, b) < half_width
        canvas = torch.where(stroke, _uniform(g, n=3)[:, None, None], canvas)
    return canvas


def _segment_distance(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distance of each pixel centre to the segment from ``a`` to ``b``."""
    ab = b - a
    t = (((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / ab.square().sum().clamp_min(1e-9)).clamp(0, 1)
    return torch.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1])


def _shape_mask(shape: str, size: int, g: torch.Generator, x: Tensor, y: Tensor) -> Tensor:
    """A shape with sqrt(area) log-uniform in [5, 0.7 size], w:h log-uniform in [1/4, 4], sides
    between 3 pixels and 0.95 size."""
    side = _log_uniform(g, 5.0, 0.7 * size)
    ratio = _log_uniform(g, 0.25, 4.0)
    w = min(max(side * math.sqrt(ratio), 3.0), 0.95 * size)
    h = min(max(side / math.sqrt(ratio), 3.0), 0.95 * size)
    x0 = _uniform(g, 0, size - w).item()
    y0 = _uniform(g, 0, size - h).item()
    x1, y1 = x0 + w, y0 + h
    if shape == "rectangle":
        return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    if shape == "ellipse":
        return ((x - (x0 + x1) / 2) / (w / 2)) ** 2 + ((y - (y0 + y1) / 2) / (h / 2)) ** 2 <= 1
    # A triangle with one side on an edge of the box and its apex on the opposite edge.
    corners = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float64)
    edge = int(torch.randint(4, (1,), generator=g))
    p, q = corners[edge], corners[(edge + 1) % 4]
    far_p, far_q = corners[(edge + 3) % 4], corners[(edge + 2) % 4]
    apex = far_p + _uniform(g).item() * (far_q - far_p)
    return _inside_triangle(x, y, p, q, apex)


def _inside_triangle(x: Tensor, y: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    def side(p: Tensor, q: Tensor) -> Tensor:
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    return ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))


def _contrasting_colour(canvas: Tensor, mask: Tensor, g: torch.Generator) -> Tensor:
    """A random colour at least 0.25 (mean absolute, per channel) from the pixels it covers."""
    under = canvas[:, mask].mean(dim=1)
    colour = _uniform(g, n=3)
    for _ in range(20):
        if (colour - under).abs().mean() >= 0.25:
            break
        colour = _uniform(g, n=3)
    return colour
