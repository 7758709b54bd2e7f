"""Equalization Loss v2: the paper's re-weighting, the accumulated gradients and the module."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import EagerAndRecordGraphs

import detloss
from detloss.eqlv2 import eqlv2_gradient_statistics
from tests.dynamo import global_inputs

EPS = torch.finfo(torch.float32).eps


class ReferenceEQLv2:
    """Tan et al.'s EQLv2 per class k < K (the background channel K keeps weight 1): the negative
    weight ``f(r_k)``, ``f(x) = 1 / (1 + exp(-gamma (x - mu)))``, the positive one
    ``1 + alpha (1 - f(r_k))``; after each step ``r_k = pos_k / (neg_k + 1e-10)``, the accumulated
    gradient magnitudes ``|p - t|`` times the weights. The loss is the weighted BCE summed over
    the elements and divided by the number of rows (mmdetection)."""

    def __init__(self, k: int, gamma: float = 12.0, mu: float = 0.8, alpha: float = 4.0) -> None:
        self.k, self.gamma, self.mu, self.alpha = k, gamma, mu, alpha
        self.pos = [0.0] * k
        self.neg = [0.0] * k
        self.ratio = [100.0] * k

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, c = x.shape
        total = x.new_zeros(())
        pos_step, neg_step = [0.0] * self.k, [0.0] * self.k
        for i in range(n):
            for k in range(c):
                f = 1.0
                if k < self.k:
                    f = 1 / (1 + math.exp(-self.gamma * (self.ratio[k] - self.mu)))
                positive = int(labels[i]) == k
                w = 1 + self.alpha * (1 - f) if positive else f
                t = 1.0 if positive else 0.0
                target = torch.tensor(t, dtype=x.dtype)
                total = total + w * F.binary_cross_entropy_with_logits(x[i, k], target)
                if k < self.k:
                    magnitude = abs(float(torch.sigmoid(x[i, k])) - t) * w
                    if positive:
                        pos_step[k] += magnitude
                    else:
                        neg_step[k] += magnitude
        for k in range(self.k):
            self.pos[k] += pos_step[k]
            self.neg[k] += neg_step[k]
            self.ratio[k] = self.pos[k] / (self.neg[k] + 1e-10)
        return total / n


def _batch(seed: int, n: int = 10, k: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k + 1, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, k + 1, (n,), generator=g)  # k = background
    return x, labels


def test_initial_state_gives_unit_weights() -> None:
    # pos_neg = 100: f = 1, w_pos = 1: plain BCE summed per row, averaged over the rows.
    x, labels = _batch(0)
    target = F.one_hot(labels, 5).double()
    expected = F.binary_cross_entropy_with_logits(x, target, reduction="sum") / 10
    torch.testing.assert_close(detloss.EQLV2Loss(num_classes=4)(x, labels), expected)


def test_hand_computed_weights() -> None:
    # One row of class 0 with logits 0, K = 1, r_0 = mu: f = 1/2, w_pos = 1 + 4 * 1/2 = 3,
    # the background channel weight 1: loss = 3 ln 2 + ln 2.
    x = torch.zeros(1, 2, dtype=torch.float64)
    pos_neg = torch.tensor([0.8], dtype=torch.float64)
    got = detloss.eqlv2_loss(x, torch.tensor([0]), pos_neg)
    torch.testing.assert_close(got, torch.tensor(4 * math.log(2), dtype=torch.float64))
    stats = eqlv2_gradient_statistics(x, torch.tensor([0]), pos_neg)
    torch.testing.assert_close(stats, torch.tensor([[0.5 * 3], [0.0]], dtype=torch.float64))


def test_module_steps_match_reference_and_state_dict_round_trips() -> None:
    reference = ReferenceEQLv2(4)
    module = detloss.EQLV2Loss(num_classes=4)
    for step in range(4):
        x, labels = _batch(10 + step, n=8 + step)
        torch.testing.assert_close(module(x, labels), reference.step(x, labels))
        torch.testing.assert_close(module.pos_grad, torch.tensor(reference.pos).float())
        torch.testing.assert_close(module.neg_grad, torch.tensor(reference.neg).float())
        torch.testing.assert_close(module.pos_neg, torch.tensor(reference.ratio).float())
    assert list(module.state_dict()) == ["pos_grad", "neg_grad", "pos_neg"]
    restored = detloss.EQLV2Loss(num_classes=4)
    restored.load_state_dict(module.state_dict())
    x, labels = _batch(99)
    torch.testing.assert_close(restored(x, labels), module(x, labels))


def test_module_compiles_fullgraph_taking_no_global_as_input() -> None:
    eager, compiled_module = detloss.EQLV2Loss(num_classes=4), detloss.EQLV2Loss(num_classes=4)
    backend = EagerAndRecordGraphs()
    compiled = torch.compile(compiled_module, fullgraph=True, backend=backend, dynamic=True)
    for step in range(2):
        x, labels = _batch(20 + step, n=8 + step)
        torch.testing.assert_close(compiled(x, labels), eager(x, labels))
    torch.testing.assert_close(compiled_module.pos_neg, eager.pos_neg)
    assert global_inputs(backend) == []


def test_weight_reduction_and_avg_factor() -> None:
    x, labels = _batch(1)
    pos_neg = torch.rand(4, dtype=torch.float64) * 2
    rows = detloss.eqlv2_loss(x, labels, pos_neg, reduction="none")
    assert rows.shape == (10,)
    weight = torch.linspace(0, 1, 10, dtype=torch.float64)
    torch.testing.assert_close(
        detloss.eqlv2_loss(x, labels, pos_neg, weight=weight, avg_factor=3.0),
        (rows * weight).sum() / (3 + EPS),
    )
    torch.testing.assert_close(detloss.eqlv2_loss(x, labels, pos_neg, reduction="sum"), rows.sum())
    # The row weight scales the accumulated gradients too; zero-weight rows add nothing.
    stats = eqlv2_gradient_statistics(x, labels, pos_neg, weight=(labels == 0).double())
    alone = eqlv2_gradient_statistics(x[labels == 0], labels[labels == 0], pos_neg)
    torch.testing.assert_close(stats, alone)


def test_activation_and_channels() -> None:
    module = detloss.EQLV2Loss(num_classes=2)
    assert module.get_channel_num(2) == 3
    x = torch.tensor([[0.0, 1.0, -1.0]])
    p = torch.sigmoid(x)
    torch.testing.assert_close(
        module.get_activation(x), torch.cat([p[:, :2] * (1 - p[:, 2:]), p[:, 2:]], 1)
    )
    torch.testing.assert_close(
        detloss.EQLV2Loss(num_classes=2, test_with_obj=False).get_activation(x), p
    )


def test_build_and_bad_parameters() -> None:
    module = detloss.build_loss(
        {
            "type": "EQLV2Loss",
            "use_sigmoid": True,
            "reduction": "mean",
            "class_weight": None,
            "loss_weight": 1.0,
            "num_classes": 1203,
            "use_distributed": True,
            "mu": 0.8,
            "alpha": 4.0,
            "gamma": 12,
            "vis_grad": False,
            "test_with_obj": True,
        }
    )
    assert isinstance(module, detloss.EQLV2Loss)
    assert module.pos_neg.shape == (1203,)
    assert bool((module.pos_neg == 100).all())
    with pytest.raises(ValueError, match="only use_sigmoid=True"):
        detloss.EQLV2Loss(use_sigmoid=False)
    with pytest.raises(ValueError, match="class_weight"):
        detloss.EQLV2Loss(class_weight=torch.ones(3))
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, got 0"):
        detloss.EQLV2Loss(num_classes=0)
    with pytest.raises(
        ValueError, match=r"gamma must be a finite number >= 0 and <= 1e\+30, got -1"
    ):
        detloss.EQLV2Loss(gamma=-1)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        detloss.eqlv2_loss(
            torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2), alpha=-1.0
        )
    with pytest.raises(ValueError, match=r"pos_neg \(K,\)"):
        detloss.eqlv2_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(3))
    with pytest.raises(ValueError, match=r"pos_neg \(K,\)"):
        detloss.EQLV2Loss(num_classes=4)(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
