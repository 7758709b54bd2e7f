"""The Bounded IoU loss: hand-computed values, the paper's bounds, gradients and errors."""

from __future__ import annotations

import math

import pytest
import torch

import detloss


def _reference(pred: list[float], target: list[float], beta: float, eps: float) -> list[float]:
    """Tychsen-Smith & Petersson's per-coordinate IoU bounds (mmdetection's eps), then Smooth L1
    (one-sided at beta, as mmdetection)."""
    px, py = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
    pw, ph = pred[2] - pred[0], pred[3] - pred[1]
    tx, ty = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
    tw, th = target[2] - target[0], target[3] - target[1]
    bounds = [
        1 - max((tw - 2 * abs(tx - px)) / (tw + 2 * abs(tx - px) + eps), 0.0),
        1 - max((th - 2 * abs(ty - py)) / (th + 2 * abs(ty - py) + eps), 0.0),
        1 - min(tw / (pw + eps), pw / (tw + eps)),
        1 - min(th / (ph + eps), ph / (th + eps)),
    ]
    return [0.5 * b * b / beta if b < beta else b - 0.5 * beta for b in bounds]


def test_hand_computed_shifted_and_resized_box() -> None:
    # Target (0, 0, 2, 2). Prediction: centre moved by dx = 0.5, width 3 (x from 0 to 3), height
    # unchanged. eps = 1e-3, beta = 0.2.
    pred = torch.tensor([[0.0, 0.0, 3.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    l_x = 1 - (2 - 1) / (2 + 1 + 1e-3)  # 0.6668 > beta: linear branch
    l_y = 1 - 2 / (2 + 1e-3)  # 5e-4 < beta: quadratic branch
    l_w = 1 - min(2 / (3 + 1e-3), 3 / (2 + 1e-3))
    expected = torch.tensor(
        [[l_x - 0.1, 0.5 * l_y**2 / 0.2, l_w - 0.1, 0.5 * l_y**2 / 0.2]], dtype=torch.float64
    )
    torch.testing.assert_close(detloss.bounded_iou_loss(pred, target, reduction="none"), expected)


def test_size_bound_is_one_minus_iou_of_concentric_boxes() -> None:
    # Only the width differs: IoU = min(w / w_t, w_t / w); with eps -> 0 the bound is 1 - IoU.
    pred = torch.tensor([[1.0, 0.0, 4.0, 2.0]], dtype=torch.float64)  # width 3
    target = torch.tensor([[0.5, 0.0, 4.5, 2.0]], dtype=torch.float64)  # width 4, same centre
    loss = detloss.bounded_iou_loss(pred, target, beta=0.0, eps=1e-12, reduction="none")
    iou = detloss.box_iou(pred, target, aligned=True)
    torch.testing.assert_close(loss[0, 2], 1 - iou[0])
    torch.testing.assert_close(loss[0, [0, 1, 3]], torch.zeros(3, dtype=torch.float64))


def test_matches_reference_on_random_boxes() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g, dtype=torch.float64) * 10
    wh = torch.rand(50, 2, generator=g, dtype=torch.float64) * 5 + 0.1
    target = torch.cat([xy, xy + wh], 1)
    pred = target + torch.randn(50, 4, generator=g, dtype=torch.float64)
    pred[:, 2:] = torch.maximum(pred[:, 2:], pred[:, :2] + 0.05)
    for beta, eps in [(0.2, 1e-3), (0.5, 1e-2)]:
        expected = torch.tensor(
            [
                _reference(p.tolist(), t.tolist(), beta, eps)
                for p, t in zip(pred, target, strict=True)
            ],
            dtype=torch.float64,
        )
        got = detloss.bounded_iou_loss(pred, target, beta, eps, reduction="none")
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(
            detloss.bounded_iou_loss(pred, target, beta, eps), expected.mean()
        )


def test_target_gets_no_gradient_and_pred_does() -> None:
    pred = torch.tensor([[0.2, 0.1, 2.5, 1.7]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    detloss.bounded_iou_loss(pred, target).backward()
    assert target.grad is None
    assert pred.grad is not None
    assert (pred.grad != 0).any()


def test_beta_zero_is_the_bound_itself() -> None:
    pred = torch.tensor([[0.3, 0.0, 2.0, 2.4]])
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    bounds = torch.tensor([_reference(pred[0].tolist(), target[0].tolist(), 1e9, 1e-3)]) * 2e9
    # 0.5 b^2 / beta * 2 beta = b^2 for a huge beta: recover b from the quadratic branch.
    torch.testing.assert_close(
        detloss.bounded_iou_loss(pred, target, beta=0.0, reduction="none"), bounds.sqrt()
    )


def test_module_weights_and_config() -> None:
    # mmdetection's configs/faster_rcnn/faster-rcnn_r50_fpn_bounded-iou_1x_coco.py
    module = detloss.build_loss({"type": "BoundedIoULoss", "loss_weight": 10.0})
    assert isinstance(module, detloss.BoundedIoULoss)
    assert (module.beta, module.eps) == (0.2, 1e-3)
    pred = torch.tensor([[0.3, 0.0, 2.0, 2.4], [1.0, 1.0, 3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.5, 3.0, 3.5]])
    weight = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    none = detloss.bounded_iou_loss(pred, target, reduction="none")
    torch.testing.assert_close(module(pred, target, weight), 10 * (none * weight).mean())
    torch.testing.assert_close(
        module(pred, target, weight, avg_factor=2.0),
        10 * (none * weight).sum() / (2 + 1.1920929e-07),
    )
    assert module(pred, target, torch.zeros(2, 4)).item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": -0.1}, ValueError, "beta must be a finite number >= 0, got -0.1"),
        (
            {"eps": 0.0},
            ValueError,
            r"eps must be a finite number >= 1.17549e-38 and <= 1e\+30, got 0.0",
        ),
        ({"eps": 1e-300}, ValueError, r"eps must be a finite number >= 1.17549e-38 and <= 1e\+30"),
        ({"beta": "0.2"}, TypeError, "beta must be a real number, got str"),
        ({"eps": math.nan}, ValueError, "eps must be a finite number >= 1.17549e-38"),
    ],
)
def test_bad_parameters(kwargs, error, match) -> None:
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(error, match=match):
        detloss.bounded_iou_loss(boxes, boxes, **kwargs)
    with pytest.raises(error, match=match):
        detloss.BoundedIoULoss(**kwargs)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"boxes must have shape \(..., 4\)"):
        detloss.bounded_iou_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        detloss.bounded_iou_loss(torch.zeros(2, 4), torch.zeros(3, 4))
