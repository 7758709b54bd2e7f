"""The Gaussian focal loss: CornerNet's formula, CenterNet-update's positive indices, errors."""

from __future__ import annotations

import math

import pytest
import torch

import detloss

EPS = torch.finfo(torch.float32).eps


def _cornernet(p: float, t: float, alpha: float, gamma: float, wp: float, wn: float) -> float:
    """Law & Deng's eq. (1) per location, mmdetection's 1e-12 inside the logs."""
    if t == 1:
        return float(wp * -math.log(p + 1e-12) * (1 - p) ** alpha)
    return float(wn * -math.log(1 - p + 1e-12) * p**alpha * (1 - t) ** gamma)


def _heatmap(seed: int):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    target = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64)
    target = torch.where(torch.rand(2, 3, 4, 4, generator=g) < 0.1, 1.0, target)
    return pred, target


def test_hand_computed_values() -> None:
    pred = torch.tensor([0.5, 0.5, 0.2])
    target = torch.tensor([1.0, 0.5, 0.0])
    expected = torch.tensor(
        [0.25 * math.log(2), math.log(2) * 0.25 * 0.5**4, -math.log(0.8) * 0.04]
    )
    torch.testing.assert_close(
        detloss.gaussian_focal_loss(pred, target, reduction="none"), expected
    )


@pytest.mark.parametrize(
    ("alpha", "gamma", "wp", "wn"), [(2.0, 4.0, 1.0, 1.0), (1.5, 2.0, 2.0, 0.5)]
)
def test_matches_cornernet_formula(alpha: float, gamma: float, wp: float, wn: float) -> None:
    pred, target = _heatmap(0)
    expected = torch.tensor(
        [
            _cornernet(p, t, alpha, gamma, wp, wn)
            for p, t in zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True)
        ],
        dtype=torch.float64,
    ).reshape(pred.shape)
    got = detloss.gaussian_focal_loss(pred, target, alpha, gamma, wp, wn, reduction="none")
    torch.testing.assert_close(got, expected)
    num_pos = float((target == 1).sum())
    module = detloss.GaussianFocalLoss(alpha, gamma, pos_weight=wp, neg_weight=wn, loss_weight=3.0)
    torch.testing.assert_close(
        module(pred, target, avg_factor=num_pos), 3 * expected.sum() / (num_pos + EPS)
    )


def test_positive_indices_follow_centernet_update() -> None:
    # mmdetection's gaussian_focal_loss_with_pos_inds: the positives' term at (pos_inds, pos_labels),
    # the negatives' everywhere, both divided by avg_factor.
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(12, 3, generator=g, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    target = torch.rand(12, 3, generator=g, dtype=torch.float64) * 0.9
    pos_inds = torch.tensor([0, 4, 7])
    pos_labels = torch.tensor([2, 0, 1])
    target[pos_inds, pos_labels] = 1.0
    p_pos = pred[pos_inds, pos_labels]
    pos = (-(p_pos + 1e-12).log() * (1 - p_pos) ** 2).sum()
    neg = (-(1 - pred + 1e-12).log() * pred**2 * (1 - target) ** 4).sum()
    module = detloss.GaussianFocalLoss(pos_weight=0.25, neg_weight=0.75)
    got = module(pred, target, pos_inds=pos_inds, pos_labels=pos_labels, avg_factor=3.0)
    torch.testing.assert_close(got, (0.25 * pos + 0.75 * neg) / (3 + EPS))
    # Same positives as target == 1: the dense form gives the same.
    torch.testing.assert_close(got, module(pred, target, avg_factor=3.0))
    with pytest.raises(ValueError, match='reduction="mean" needs avg_factor'):
        module(pred, target, pos_inds, pos_labels)
    with pytest.raises(ValueError, match="given together"):
        module(pred, target, pos_inds=pos_inds, avg_factor=3.0)


def test_module_forward_order_and_weight() -> None:
    pred, target = _heatmap(2)
    weight = torch.rand(pred.shape, dtype=torch.float64)
    module = detloss.GaussianFocalLoss(reduction="sum")
    expected = (detloss.gaussian_focal_loss(pred, target, reduction="none") * weight).sum()
    torch.testing.assert_close(module(pred, target, None, None, weight), expected)
    torch.testing.assert_close(module(pred, target, weight=weight), expected)


def test_build_and_bad_parameters() -> None:
    # mmdetection's configs/centernet/centernet_r18_8xb16-crop512-140e_coco.py
    module = detloss.build_loss({"type": "GaussianFocalLoss", "loss_weight": 1.0})
    assert isinstance(module, detloss.GaussianFocalLoss)
    assert (module.alpha, module.gamma, module.pos_weight, module.neg_weight) == (
        2.0,
        4.0,
        1.0,
        1.0,
    )
    with pytest.raises(
        ValueError, match=r"alpha must be 0 or a finite number in \[1e-30, 1e\+30\], got -1"
    ):
        detloss.GaussianFocalLoss(alpha=-1)
    with pytest.raises(ValueError, match="neg_weight must be a finite number >= 0"):
        detloss.gaussian_focal_loss(torch.rand(3), torch.rand(3), neg_weight=-0.5)
    with pytest.raises(ValueError, match="positives must have pred's shape"):
        detloss.gaussian_focal_loss(torch.rand(2, 3), torch.rand(2, 3), positives=torch.ones(3))
    with pytest.raises(ValueError, match=r"\(M,\) indices into pred of shape \(N, C\)"):
        detloss.GaussianFocalLoss()(
            torch.rand(2, 3, 4),
            torch.rand(2, 3, 4),
            torch.tensor([0]),
            torch.tensor([1]),
            avg_factor=1.0,
        )
