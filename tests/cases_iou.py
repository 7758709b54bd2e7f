"""Catalogue entries for the IoU-family losses (see ``tests/catalogue.py``)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import BOX, at_least_one, fraction, nonnegative, positive
from tests.boxgen import random_boxes
from tests.catalogue import LossCase, MakeInputs


def _maker(box_format: str = "xyxy", scale: float = 100.0) -> MakeInputs:
    def make(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
        pred, target = random_boxes(n, g, box_format, scale)
        return pred.to(dtype), target.to(dtype)

    return make


def _near(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    """Pairs with IoU above 0.5 and different aspect ratios (CIoU's gated alpha * v acts)."""
    pred, _ = random_boxes(n, g, "cxcywh", 100.0)
    jitter = (torch.rand(n, 4, generator=g, dtype=torch.float64) - 0.5) * 0.1
    scale = torch.tensor([0.0, 0.0, 1.4, 0.8], dtype=torch.float64)
    target = pred * (jitter + scale) + torch.cat((pred[:, :2], torch.zeros(n, 2)), dim=-1)
    return (
        detloss.convert_boxes(pred, "cxcywh", "xyxy").to(dtype),
        detloss.convert_boxes(target, "cxcywh", "xyxy").to(dtype),
    )


_case = functools.partial(LossCase, grad_args=(0, 1), scaled=(0, 1))
# CIoU's alpha is a constant for the gradient by definition (the paper's surrogate gradient).
_ciou_case = functools.partial(_case, detached=("detloss._geometry._ciou_alpha",))
# Only pred requiring a gradient: the gradient of detloss._fast.iou.
_pred_case = functools.partial(LossCase, grad_args=(0,), scaled=(0, 1))
_xyxy = _maker()
# Coordinates in the thousands: float16 areas would overflow (65504) if computed in half precision.
_large_cxcywh = _maker("cxcywh", scale=4000.0)

IOU_CASES = [
    _case("iou_log", detloss.iou_loss, _xyxy),
    _case(
        "iou_linear_xywh",
        detloss.iou_loss,
        _maker("xywh"),
        {"mode": "linear", "box_format": "xywh"},
    ),
    _case(
        "iou_square_cxcywh",
        detloss.iou_loss,
        _maker("cxcywh"),
        {"mode": "square", "box_format": "cxcywh"},
    ),
    _case("giou", detloss.giou_loss, _xyxy),
    _case("giou_large_cxcywh", detloss.giou_loss, _large_cxcywh, {"box_format": "cxcywh"}),
    _case("diou_xywh", detloss.diou_loss, _maker("xywh"), {"box_format": "xywh"}),
    _ciou_case("ciou", detloss.ciou_loss, _xyxy),
    _ciou_case("ciou_mmdet_gate", detloss.ciou_loss, _near, {"alpha_gate": 0.5}),
    _ciou_case("ciou_large_cxcywh", detloss.ciou_loss, _large_cxcywh, {"box_format": "cxcywh"}),
    _case("efficient_iou", detloss.efficient_iou_loss, _xyxy),
    _case(
        "efficient_iou_cxcywh",
        detloss.efficient_iou_loss,
        _maker("cxcywh"),
        {"box_format": "cxcywh"},
    ),
    _case("extended_iou", detloss.extended_iou_loss, _xyxy),
    _case(
        "extended_iou_linear_xywh",
        detloss.extended_iou_loss,
        _maker("xywh"),
        {"smooth_point": 0.0, "box_format": "xywh"},
    ),
    _case("siou", detloss.siou_loss, _xyxy),
    _case("siou_mmdet", detloss.siou_loss, _xyxy, {"neg_gamma": False, "clamp": True}),
    _case(
        "siou_theta2_xywh", detloss.siou_loss, _maker("xywh"), {"theta": 2.0, "box_format": "xywh"}
    ),
    _pred_case("iou_log_pred_only", detloss.iou_loss, _xyxy),
    _pred_case(
        "iou_square_pred_only_xywh",
        detloss.iou_loss,
        _maker("xywh"),
        {"mode": "square", "box_format": "xywh"},
    ),
    _pred_case(
        "giou_pred_only_cxcywh", detloss.giou_loss, _maker("cxcywh"), {"box_format": "cxcywh"}
    ),
    _pred_case("diou_pred_only", detloss.diou_loss, _xyxy),
    _pred_case(
        "ciou_pred_only_xywh",
        detloss.ciou_loss,
        _maker("xywh"),
        {"box_format": "xywh"},
        detached=("detloss._geometry._ciou_alpha",),
    ),
    _pred_case(
        "ciou_gate_pred_only",
        detloss.ciou_loss,
        _near,
        {"alpha_gate": 0.5},
        detached=("detloss._geometry._ciou_alpha",),
    ),
]

IOU_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "iou_loss": {**BOX, "mode": st.sampled_from(["log", "linear", "square"])},
    "giou_loss": BOX,
    "diou_loss": BOX,
    "ciou_loss": {**BOX, "alpha_gate": st.one_of(st.none(), fraction.filter(lambda v: v < 1))},
    "efficient_iou_loss": BOX,
    "extended_iou_loss": {"eps": positive, "smooth_point": nonnegative},
    "siou_loss": {**BOX, "theta": at_least_one},
}
"""Per loss, the parameters the property suite draws at extreme values."""
