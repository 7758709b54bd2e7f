"""Box generators and hand-computed box pairs shared by the box, IoU-loss and coder tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor

import detloss

TINY = 1e-12  # eps for exact hand-computed comparisons in float64


def random_boxes(
    n: int, g: torch.Generator, box_format: str = "xyxy", scale: float = 100.0
) -> tuple[Tensor, Tensor]:
    """``n`` valid pairs in float64, in ``box_format``: sizes in ``[0.05, 0.55] * scale``, offsets
    up to ``0.4 * scale`` (so most pairs overlap and some are disjoint)."""
    lo = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
    wh = (torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.5 + 0.05) * scale
    t_lo = lo + (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * 0.8 * scale
    t_wh = (torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.5 + 0.05) * scale

    def write(lo: Tensor, wh: Tensor) -> Tensor:
        if box_format == "xyxy":
            return torch.cat((lo, lo + wh), dim=-1)
        if box_format == "xywh":
            return torch.cat((lo, wh), dim=-1)
        return torch.cat((lo + wh / 2, wh), dim=-1)

    return write(lo, wh), write(t_lo, t_wh)


def in_format(xyxy: tuple[float, ...], box_format: str) -> tuple[float, ...]:
    """A hand-written xyxy box in ``box_format`` (plain arithmetic, independent of detloss)."""
    x1, y1, x2, y2 = xyxy
    if box_format == "xyxy":
        return xyxy
    if box_format == "xywh":
        return (x1, y1, x2 - x1, y2 - y1)
    return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)


def _ciou_of(iou: float, diou: float, v: float) -> float:
    return diou - v / ((1 - iou) + v) * v


# v for (0, 0, 2, 1) against (0, 0, 1, 2): 4/pi^2 (atan(1/2) - atan(2))^2.
_V_CROSS = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2.0)) ** 2

# name: (box1, box2, {kind: value}); derivations in the comments.
HAND = {
    # I = 1, U = 4 + 4 - 1 = 7; enclosing (0,0,3,3): C = 9; centres (1,1), (2,2): rho^2 = 2, c^2 = 18.
    # Same aspect ratio: v = 0, CIoU = DIoU.
    "overlapping": (
        (0.0, 0.0, 2.0, 2.0),
        (1.0, 1.0, 3.0, 3.0),
        {"iou": 1 / 7, "giou": 1 / 7 - 2 / 9, "diou": 1 / 7 - 2 / 18, "ciou": 1 / 7 - 2 / 18},
    ),
    # I = 0, U = 2, C = 2; centres (0.5, 0.5), (1.5, 0.5): rho^2 = 1, c^2 = 4 + 1.
    "touching": (
        (0.0, 0.0, 1.0, 1.0),
        (1.0, 0.0, 2.0, 1.0),
        {"iou": 0.0, "giou": 0.0, "diou": -1 / 5, "ciou": -1 / 5},
    ),
    # I = 0, U = 2, C = 3; rho^2 = 4, c^2 = 9 + 1.
    "disjoint": (
        (0.0, 0.0, 1.0, 1.0),
        (2.0, 0.0, 3.0, 1.0),
        {"iou": 0.0, "giou": -1 / 3, "diou": -4 / 10, "ciou": -4 / 10},
    ),
    # I = 4, U = 16 = C; same centre; same aspect ratio.
    "nested": (
        (0.0, 0.0, 4.0, 4.0),
        (1.0, 1.0, 3.0, 3.0),
        {"iou": 0.25, "giou": 0.25, "diou": 0.25, "ciou": 0.25},
    ),
    "identical": (
        (1.0, 2.0, 4.0, 7.0),
        (1.0, 2.0, 4.0, 7.0),
        {"iou": 1.0, "giou": 1.0, "diou": 1.0, "ciou": 1.0},
    ),
    # I = 1, U = 3, C = 4; centres (1, 0.5), (0.5, 1): rho^2 = 0.5, c^2 = 8.
    "crossed": (
        (0.0, 0.0, 2.0, 1.0),
        (0.0, 0.0, 1.0, 2.0),
        {
            "iou": 1 / 3,
            "giou": 1 / 3 - 1 / 4,
            "diou": 1 / 3 - 1 / 16,
            "ciou": _ciou_of(1 / 3, 1 / 3 - 1 / 16, _V_CROSS),
        },
    ),
}


def tricky_boxes(n: int, g: torch.Generator, box_format: str = "xyxy") -> tuple[Tensor, Tensor]:
    """``n`` float64 pairs with small integer corners in [0, 4] drawn in any order, so that ties
    (equal coordinates), zero-size, inverted (x2 < x1), identical, touching, disjoint and nested
    boxes are all frequent; followed by the :data:`HAND` pairs and a point inside a box. In
    ``box_format`` (inverted boxes get negative sizes in xywh/cxcywh)."""
    corners = torch.randint(0, 5, (n, 2, 4), generator=g).to(torch.float64)
    named = [(b1, b2) for b1, b2, _ in HAND.values()] + [
        ((2.0, 2.0, 2.0, 2.0), (0.0, 0.0, 4.0, 4.0))
    ]
    pred = torch.cat((corners[:, 0], torch.tensor([b1 for b1, _ in named], dtype=torch.float64)))
    target = torch.cat((corners[:, 1], torch.tensor([b2 for _, b2 in named], dtype=torch.float64)))
    return (
        detloss.convert_boxes(pred, "xyxy", box_format),
        detloss.convert_boxes(target, "xyxy", box_format),
    )
