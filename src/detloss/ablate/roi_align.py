"""RoIAlign (He et al., Mask R-CNN, ICCV 2017) in plain PyTorch, through ``grid_sample``.

Each region is cut into ``size x size`` bins; each bin averages ``sampling x sampling`` points
placed at the centres of its sub-cells, every point read by bilinear interpolation (torchvision's
adaptive ``sampling_ratio=0`` takes ``ceil(region size in feature pixels / size)``: with 4 bins on
the miniature detectors' stride-8 map, 1 up to 32 image pixels and 2 above). With pixel
``j`` of a stride-``s`` feature map centred on image coordinate ``(j + 0.5) s`` (torchvision's
``aligned=True``), ``grid_sample`` with ``align_corners=False`` reads image coordinate ``x`` at
the normalised position ``2 x / (s W) - 1``. Points within half a feature pixel outside the map
read its border (``padding_mode="border"``), as torchvision clamps them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def roi_align(
    features: Tensor, rois: list[Tensor], size: int, stride: int, sampling: int = 1
) -> Tensor:
    """Features ``(R, C, size, size)`` of the regions ``rois[i]`` (``(k_i, 4)`` xyxy in image
    pixels) of image ``i`` of ``features`` ``(B, C, H, W)``, ``R = sum k_i``, in that order."""
    batch, channels, height, width = features.shape
    counts = [len(r) for r in rois]
    most = max(counts, default=0)
    # Every image gets `most` regions (zero boxes pad the shorter lists): one grid_sample call.
    padded = features.new_zeros(batch, most, 4)
    for i, boxes in enumerate(rois):
        padded[i, : len(boxes)] = boxes
    points = size * sampling
    steps = (torch.arange(points, device=features.device, dtype=features.dtype) + 0.5) / points
    x = padded[..., 0:1] + steps * (padded[..., 2:3] - padded[..., 0:1])  # (B, most, points)
    y = padded[..., 1:2] + steps * (padded[..., 3:4] - padded[..., 1:2])
    gx = (2 * x / (stride * width) - 1)[:, :, None, :].expand(-1, -1, points, -1)
    gy = (2 * y / (stride * height) - 1)[:, :, :, None].expand(-1, -1, -1, points)
    grid = torch.stack((gx, gy), dim=-1).reshape(batch, most * points, points, 2)
    sampled = F.grid_sample(
        features, grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # (B, C, most * points, points)
    bins = sampled.reshape(batch, channels, most, size, sampling, size, sampling).mean((4, 6))
    pooled = bins.transpose(1, 2).reshape(batch * most, channels, size, size)
    valid = (
        torch.arange(most, device=features.device)
        < torch.tensor(counts, device=features.device)[:, None]
    )
    return pooled[valid.reshape(-1)]
