"""COCO evaluation of a detector (pycocotools): AP, AP50, AP75 and AP by object size, x100."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import nn

from detloss.ablate.anchors import Detections
from detloss.ablate.data import DetectionSet

METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
"""The first six numbers of pycocotools' summary, in its order."""


@torch.no_grad()
def predict(
    model: nn.Module, dataset: DetectionSet, device: torch.device, batch_size: int = 100
) -> Detections:
    """Detections of every image, in the resized images' pixels, on the CPU."""
    was_training = model.training
    model.eval()
    detections: Detections = []
    for start in range(0, len(dataset), batch_size):
        images = dataset.images[start : start + batch_size].to(device)
        detections += [tuple(t.cpu() for t in d) for d in model(images)]
    model.train(was_training)
    return detections


def coco_results(dataset: DetectionSet, detections: Detections) -> list[dict[str, Any]]:
    """COCO result entries: boxes scaled back to each original image, ``[x, y, w, h]``."""
    results = []
    categories = dataset.category_ids
    for image_id, scale, (boxes, scores, labels) in zip(
        dataset.image_ids, dataset.scales, detections, strict=True
    ):
        xyxy = boxes.float() * scale.repeat(2)
        xywh = torch.cat((xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]), dim=1)
        for box, score, label in zip(xywh.tolist(), scores.tolist(), labels.tolist(), strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": categories[label],
                    "bbox": [round(v, 3) for v in box],
                    "score": round(score, 5),
                }
            )
    return results


def coco_metrics(dataset: DetectionSet, results: list[dict[str, Any]]) -> dict[str, float]:
    """:data:`METRICS` x100 with the dataset's small/medium/large boundaries; -100 where COCO
    has nothing to measure (no object of that size), all 0 without a single detection."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return dict.fromkeys(METRICS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = dataset.coco
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        small, medium = (t * t for t in dataset.area_thresholds)
        evaluator.params.areaRng = [[0, 1e10], [0, small], [small, medium], [medium, 1e10]]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: 100 * float(v) for name, v in zip(METRICS, evaluator.stats, strict=False)}


def evaluate(model: nn.Module, dataset: DetectionSet, device: torch.device) -> dict[str, float]:
    """Predict every image of ``dataset`` and score the detections with COCO's metrics."""
    return coco_metrics(dataset, coco_results(dataset, predict(model, dataset, device)))
