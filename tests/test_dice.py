"""The Dice loss: V-Net and naive forms, activation, the module's forward order, errors."""

from __future__ import annotations

import pytest
import torch

import detloss

EPS = torch.finfo(torch.float32).eps


def _reference(p: list[float], t: list[float], eps: float, naive: bool) -> float:
    a = sum(x * y for x, y in zip(p, t, strict=True))
    if naive:
        return 1 - (2 * a + eps) / (sum(p) + sum(t) + eps)
    return 1 - 2 * a / (sum(x * x for x in p) + eps + sum(y * y for y in t) + eps)


def _masks(seed: int):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(4, 3, 5, generator=g, dtype=torch.float64)
    masks = (torch.rand(4, 3, 5, generator=g) < 0.4).double()
    return probs, masks


@pytest.mark.parametrize(("naive", "eps"), [(False, 1e-3), (True, 1e-3), (True, 1.0)])
def test_matches_definition(naive: bool, eps: float) -> None:
    probs, masks = _masks(0)
    expected = torch.tensor(
        [
            _reference(p.flatten().tolist(), t.flatten().tolist(), eps, naive)
            for p, t in zip(probs, masks, strict=True)
        ],
        dtype=torch.float64,
    )
    got = detloss.dice_loss(probs, masks, naive_dice=naive, eps=eps, reduction="none")
    torch.testing.assert_close(got, expected)


def test_hand_computed_perfect_prediction() -> None:
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    # V-Net: 1 - 2 * 3 / ((3 + eps) + (3 + eps)) = eps / (3 + eps); naive: exactly 0.
    torch.testing.assert_close(
        detloss.dice_loss(mask, mask), torch.tensor(1e-3 / (3 + 1e-3), dtype=torch.float64)
    )
    assert detloss.dice_loss(mask, mask, naive_dice=True).item() == 0.0


def test_module_activates_and_keeps_mmdetections_forward_order() -> None:
    logits, masks = _masks(1)
    module = detloss.DiceLoss(loss_weight=2.0)
    weight = torch.rand(4, dtype=torch.float64)
    sigmoid = detloss.dice_loss(logits.sigmoid(), masks, reduction="none")
    # forward(pred, target, weight, reduction_override, avg_factor)
    torch.testing.assert_close(module(logits, masks, weight, "sum"), 2 * (sigmoid * weight).sum())
    torch.testing.assert_close(
        module(logits, masks, weight, None, 3.0), 2 * (sigmoid * weight).sum() / (3 + EPS)
    )
    plain = detloss.DiceLoss(activate=False, use_sigmoid=False)
    torch.testing.assert_close(plain(logits.sigmoid(), masks), sigmoid.mean())


def test_build_and_bad_parameters() -> None:
    # mmdetection's configs/mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py
    module = detloss.build_loss(
        {
            "type": "DiceLoss",
            "use_sigmoid": True,
            "activate": True,
            "reduction": "mean",
            "naive_dice": True,
            "eps": 1.0,
            "loss_weight": 5.0,
        }
    )
    assert isinstance(module, detloss.DiceLoss)
    assert module.naive_dice
    assert module.eps == 1.0
    with pytest.raises(ValueError, match="activate=True\\) supports only use_sigmoid=True"):
        detloss.DiceLoss(use_sigmoid=False)
    with pytest.raises(
        ValueError, match=r"eps must be a finite number >= 1e-30 and <= 1e\+30, got -1"
    ):
        detloss.DiceLoss(eps=-1)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        detloss.dice_loss(torch.rand(3), torch.rand(3))
    with pytest.raises(ValueError, match="same shape"):
        detloss.dice_loss(torch.rand(2, 3), torch.rand(2, 4))
