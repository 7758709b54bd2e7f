"""The Seesaw loss: the paper's formula, the module's class counts, objectness and helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import detloss
from detloss.seesaw import seesaw_ce_loss

EPS = torch.finfo(torch.float32).eps


def _paper_seesaw(
    z: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor, p: float, q: float, eps: float
) -> torch.Tensor:
    """Wang et al.'s eq. (2)-(4), row by row: ``-log(e^{z_i} / (e^{z_i} + sum_{j != i} S_ij
    e^{z_j}))`` with ``S_ij = M_ij C_ij`` (mmdetection's clamps of the counts at 1 and of
    ``sigma_i`` at ``eps``)."""
    out = []
    for row, i in zip(z, labels.tolist(), strict=True):
        sigma = row.softmax(0)
        denominator = row[i].exp()
        for j in range(len(row)):
            if j == i:
                continue
            ratio = counts[j].clamp(min=1) / counts[i].clamp(min=1)
            mitigation = ratio**p if ratio < 1 else 1.0
            score = sigma[j] / sigma[i].clamp(min=eps)
            compensation = score**q if score > 1 else 1.0
            denominator = denominator + mitigation * compensation * row[j].exp()
        out.append(-(row[i].exp() / denominator).log())
    return torch.stack(out)


def _batch(seed: int, n: int = 12, c: int = 5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, c, (n,), generator=g)
    counts = torch.randint(0, 300, (c,), generator=g).double()
    return logits, labels, counts


@pytest.mark.parametrize(("p", "q", "eps"), [(0.8, 2.0, 1e-2), (1.5, 0.0, 1e-2), (0.0, 3.0, 0.1)])
def test_matches_the_papers_formula(p: float, q: float, eps: float) -> None:
    logits, labels, counts = _batch(0)
    expected = _paper_seesaw(logits, labels, counts, p, q, eps)
    got = seesaw_ce_loss(logits, labels, counts, p, q, eps, reduction="none")
    torch.testing.assert_close(got, expected)


def test_hand_computed_two_classes() -> None:
    # Sample of class 0 (100 samples seen) with logits (0, 0); class 1 has 25 samples:
    # M_01 = (25 / 100)^0.8, C_01 = 1 (equal scores): loss = log(1 + 0.25^0.8).
    logits = torch.zeros(1, 2, dtype=torch.float64)
    counts = torch.tensor([100.0, 25.0], dtype=torch.float64)
    got = seesaw_ce_loss(logits, torch.tensor([0]), counts)
    torch.testing.assert_close(got, torch.tensor(math.log(1 + 0.25**0.8), dtype=torch.float64))
    # The rare class's sample: M_10 = 1; equal scores again: plain cross-entropy log 2.
    got = seesaw_ce_loss(logits, torch.tensor([1]), counts)
    torch.testing.assert_close(got, torch.tensor(math.log(2), dtype=torch.float64))


def test_p_and_q_zero_is_cross_entropy_and_background_rows_are_zero() -> None:
    logits, labels, counts = _batch(1)
    plain = seesaw_ce_loss(logits, labels, counts, 0.0, 0.0, reduction="none")
    torch.testing.assert_close(plain, F.cross_entropy(logits, labels, reduction="none"))
    background = torch.where(labels % 3 == 0, 5, labels)
    masked = seesaw_ce_loss(logits, background, counts, reduction="none")
    full = seesaw_ce_loss(logits, labels, counts, reduction="none")
    torch.testing.assert_close(masked, torch.where(background == 5, 0.0, full))


def test_compensation_is_constant_for_the_gradient() -> None:
    # With p = 0, d loss / d z equals the softmax cross-entropy gradient of z + log C, C held fixed.
    logits, labels, counts = _batch(2)
    z = logits.clone().requires_grad_(True)
    seesaw_ce_loss(z, labels, counts, 0.0, 2.0, reduction="sum").backward()
    sigma = logits.softmax(1)
    own = sigma.gather(1, labels[:, None]).clamp(min=1e-2)
    shift = 2.0 * (sigma / own).log().clamp(min=0) * (F.one_hot(labels, 5) == 0)
    expected = (logits + shift).softmax(1) - F.one_hot(labels, 5)
    torch.testing.assert_close(z.grad, expected)


def _mmdet_batch(seed: int, n: int = 16, c: int = 5):
    g = torch.Generator().manual_seed(seed)
    cls_score = torch.randn(n, c + 2, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c + 1, (n,), generator=g)  # c = background
    label_weights = torch.rand(n, generator=g, dtype=torch.float64)
    return cls_score, labels, label_weights


def test_module_counts_then_splits_classes_and_objectness() -> None:
    c = 5
    module = detloss.SeesawLoss(num_classes=c, loss_weight=2.0)
    counts = torch.zeros(c + 1, dtype=torch.float64)
    for step in range(3):
        cls_score, labels, lw = _mmdet_batch(step, c=c)
        counts += torch.bincount(labels, minlength=c + 1).double()
        losses = module(cls_score, labels, lw)
        assert isinstance(losses, dict)
        positive = labels < c
        per_row = _paper_seesaw(
            cls_score[positive, :c], labels[positive], counts[:c], 0.8, 2.0, 1e-2
        )
        expected_classes = 2.0 * (per_row * lw[positive]).sum() / (positive.sum() + EPS)
        objectness = F.cross_entropy(cls_score[:, c:], (labels == c).long(), reduction="none")
        torch.testing.assert_close(losses["loss_cls_classes"], expected_classes)
        torch.testing.assert_close(losses["loss_cls_objectness"], 2.0 * (objectness * lw).mean())
        torch.testing.assert_close(module.cum_samples, counts.float())
    assert list(module.state_dict()) == ["cum_samples"]
    restored = detloss.SeesawLoss(num_classes=c)
    restored.load_state_dict(module.state_dict())
    torch.testing.assert_close(restored.cum_samples, module.cum_samples)


def test_module_avg_factor_sum_and_no_dict() -> None:
    cls_score, labels, lw = _mmdet_batch(5)
    as_dict = detloss.SeesawLoss(num_classes=5)(cls_score, labels, lw, avg_factor=7.0)
    summed = detloss.SeesawLoss(num_classes=5, return_dict=False)(cls_score, labels, lw, 7.0)
    assert isinstance(as_dict, dict)
    torch.testing.assert_close(summed, as_dict["loss_cls_classes"] + as_dict["loss_cls_objectness"])
    module = detloss.SeesawLoss(num_classes=5, return_dict=False)
    total = module(cls_score, labels, lw, reduction_override="sum")
    none = detloss.SeesawLoss(num_classes=5, return_dict=False)(
        cls_score, labels, lw, reduction_override="none"
    )
    assert none.shape == labels.shape
    torch.testing.assert_close(total, none.sum())


def test_no_positives_gives_a_connected_zero_class_loss() -> None:
    cls_score = torch.randn(4, 7, requires_grad=True)
    losses = detloss.SeesawLoss(num_classes=5)(cls_score, torch.full((4,), 5))
    assert isinstance(losses, dict)
    assert losses["loss_cls_classes"].item() == 0.0
    (losses["loss_cls_classes"] + losses["loss_cls_objectness"]).backward()
    assert cls_score.grad is not None
    assert torch.isfinite(cls_score.grad).all()


def test_activation_accuracy_and_channels() -> None:
    module = detloss.SeesawLoss(num_classes=3)
    assert module.get_cls_channels(3) == 5
    assert module.custom_cls_channels
    assert module.custom_activation
    assert module.custom_accuracy
    cls_score = torch.tensor(
        [[3.0, 0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 3.0, 2.0, 1.0], [0.0, 2.0, 0.0, 0.0, 4.0]]
    )
    scores = module.get_activation(cls_score)
    foreground = cls_score[:, 3:].softmax(1)
    expected = torch.cat([cls_score[:, :3].softmax(1) * foreground[:, :1], foreground[:, 1:]], 1)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(scores.sum(1), torch.ones(3))
    labels = torch.tensor([0, 1, 3])  # row 0 right, row 1 wrong class, row 2 background
    acc = module.get_accuracy(cls_score, labels)
    # Objectness: row 0 foreground (right), row 1 foreground (right), row 2 background (right).
    torch.testing.assert_close(acc["acc_objectness"], torch.tensor([100.0]))
    torch.testing.assert_close(acc["acc_classes"], torch.tensor([50.0]))
    with pytest.raises(ValueError, match="num_classes 4 differs"):
        module.get_cls_channels(4)


def test_build_from_mmdetection_config_and_bad_parameters() -> None:
    # mmdetection's configs/seesaw_loss/mask-rcnn_r50_fpn_seesaw-loss_random-ms-2x_lvis-v1.py
    module = detloss.build_loss(
        {"type": "SeesawLoss", "p": 0.8, "q": 2.0, "num_classes": 1203, "loss_weight": 1.0}
    )
    assert isinstance(module, detloss.SeesawLoss)
    assert module.cum_samples.shape == (1204,)
    assert module.eps == 1e-2
    assert module.return_dict
    with pytest.raises(ValueError, match="only use_sigmoid=False"):
        detloss.SeesawLoss(use_sigmoid=True)
    with pytest.raises(ValueError, match=r"p must be a finite number >= 0 and <= 1e\+30, got -1"):
        detloss.SeesawLoss(p=-1)
    with pytest.raises(
        ValueError, match=r"eps must be a finite number >= 1e-30 and <= 1e\+30, got 0"
    ):
        detloss.SeesawLoss(eps=0)
    with pytest.raises(TypeError, match="num_classes must be an int, got float"):
        detloss.SeesawLoss(num_classes=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_classes \+ 2 = 5 channels"):
        detloss.SeesawLoss(num_classes=3)(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"cum_samples must have shape \(4,\)"):
        seesaw_ce_loss(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(5))
    with pytest.raises(TypeError, match="labels must be an integer tensor of class indices"):
        seesaw_ce_loss(torch.zeros(2, 4), torch.zeros(2), torch.zeros(4))
