"""GHM-C and GHM-R: hand-computed values, a bin-by-bin reference, the modules' momentum state."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import detloss
from detloss.ghm import ghmc_statistics, ghmr_statistics

EPS = torch.finfo(torch.float32).eps


# --- a reference written from the paper / mmdetection's documented algorithm --------------------


class ReferenceGHM:
    """Gradient density by explicit bins: for each bin, the valid elements whose norm lies in
    ``[edge_b, edge_{b+1})``; weight ``total / (n * density_b)`` for the n non-empty bins; the
    moving average updated only for non-empty bins; "mean" divides by ``total``."""

    def __init__(self, bins: int, momentum: float, last_edge: float) -> None:
        self.edges = [k / bins for k in range(bins)] + [last_edge]
        self.bins = bins
        self.momentum = momentum
        self.acc_sum = [0.0] * bins

    def weights(self, g: torch.Tensor, valid: torch.Tensor, total: float) -> torch.Tensor:
        edges = torch.tensor(self.edges, dtype=torch.float32).to(g.dtype)
        w = torch.zeros_like(g)
        members = []
        for b in range(self.bins):
            inside = (g >= edges[b]) & (g < edges[b + 1]) & valid
            count = int(inside.sum())
            if count:
                members.append((inside, b, count))
        for inside, b, count in members:
            if self.momentum > 0:
                self.acc_sum[b] = self.momentum * self.acc_sum[b] + (1 - self.momentum) * count
                density = self.acc_sum[b]
            else:
                density = count
            w[inside] = total / (len(members) * density)
        return w

    def ghmc(self, x: torch.Tensor, t: torch.Tensor, lw: torch.Tensor) -> torch.Tensor:
        valid = lw > 0
        total = max(float(valid.sum()), 1.0)
        w = self.weights((x.sigmoid() - t).abs(), valid, total)
        return (F.binary_cross_entropy_with_logits(x, t, reduction="none") * w).sum() / (
            total + EPS
        )

    def ghmr(self, p: torch.Tensor, t: torch.Tensor, lw: torch.Tensor, mu: float) -> torch.Tensor:
        d = p - t
        total = max(float(lw.sum()), 1.0)
        w = self.weights(d.abs() / (d * d + mu * mu).sqrt(), lw > 0, total)
        return (((d * d + mu * mu).sqrt() - mu) * w).sum() / (total + EPS)


def _classification(seed: int, n: int = 60, c: int = 5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(n, c, generator=g) < 0.25).double()
    lw = (torch.rand(n, c, generator=g) < 0.8).double()
    return x, t, lw


def _regression(seed: int, n: int = 60):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.05
    t = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.05
    lw = (torch.rand(n, 4, generator=g) < 0.7).double()
    return p, t, lw


# --- hand-computed values ---------------------------------------------------------------------


def test_ghmc_hand_computed_three_elements() -> None:
    # g = |sigmoid(x) - t| = 0.5, ~4.5e-5, ~4.5e-5: bin 5 holds one element, bin 0 two; n = 2,
    # total = 3: weights 3 / (2 * 1) = 1.5 and 3 / (2 * 2) = 0.75.
    x = torch.tensor([[0.0, 10.0, -10.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    tail = F.softplus(torch.tensor(-10.0, dtype=torch.float64))
    expected = (1.5 * math.log(2) + 0.75 * 2 * tail) / (3 + EPS)
    torch.testing.assert_close(detloss.ghmc_loss(x, t), expected)
    weighted = detloss.ghmc_loss(x, t, reduction="none")
    torch.testing.assert_close(
        weighted,
        torch.stack([1.5 * math.log(2) + 0 * tail, 0.75 * tail, 0.75 * tail]).reshape(1, 3),
    )


def test_ghmc_uniform_norms_reduce_to_mean_bce() -> None:
    # Every element in one bin: weight total / (1 * total) = 1, the loss is the mean BCE.
    x = torch.zeros(2, 2)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(detloss.ghmc_loss(x, t), torch.tensor(math.log(2) * 4 / (4 + EPS)))


def test_ghmc_invalid_elements_are_neither_counted_nor_weighted() -> None:
    x = torch.tensor([[0.0, 10.0, -10.0, 3.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    lw = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(detloss.ghmc_loss(x, t, lw), detloss.ghmc_loss(x[:, :3], t[:, :3]))
    assert detloss.ghmc_loss(x, t, lw, reduction="none")[0, 3] == 0


def test_ghmr_hand_computed() -> None:
    # d = 0 (g = 0, bin 0, loss 0) and d = mu (g = 1/sqrt 2, bin 7, ASL1 = (sqrt 2 - 1) mu):
    # n = 2, total = 2, weights 2 / (2 * 1) = 1.
    mu = 0.02
    p = torch.tensor([[0.0, mu]], dtype=torch.float64)
    expected = (math.sqrt(2) - 1) * mu / (2 + EPS)
    torch.testing.assert_close(
        detloss.ghmr_loss(p, torch.zeros_like(p), mu=mu),
        torch.tensor(expected, dtype=torch.float64),
    )


def test_ghmr_total_is_the_sum_of_label_weights() -> None:
    # mmdetection: GHM-R's total is label_weight.sum() (GHM-C's the number of valid elements).
    p, t, _ = _regression(0, n=5)
    half = torch.full_like(p, 0.5)
    stats = ghmr_statistics(p, t, half)
    assert stats[-1] == 10.0
    assert stats[:-1].sum() == 20
    assert ghmc_statistics(p, (t > 0).double(), half)[-1] == 20


# --- the reference, one batch and several steps -----------------------------------------------


@pytest.mark.parametrize("bins", [1, 10, 30])
def test_ghmc_matches_reference(bins: int) -> None:
    x, t, lw = _classification(bins)
    expected = ReferenceGHM(bins, 0.0, 1.0 + 1e-6).ghmc(x, t, lw)
    torch.testing.assert_close(detloss.ghmc_loss(x, t, lw, bins), expected)
    torch.testing.assert_close(detloss.GHMC(bins)(x, t, lw), expected)


@pytest.mark.parametrize(("bins", "mu"), [(10, 0.02), (30, 0.05)])
def test_ghmr_matches_reference(bins: int, mu: float) -> None:
    p, t, lw = _regression(bins)
    expected = ReferenceGHM(bins, 0.0, 1e3).ghmr(p, t, lw, mu)
    torch.testing.assert_close(detloss.ghmr_loss(p, t, lw, mu, bins), expected)
    torch.testing.assert_close(detloss.GHMR(mu, bins)(p, t, lw), expected)


def test_ghmc_class_indices_equal_one_hot_rows() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (30,), generator=g)  # 4 = background
    row_weight = (torch.rand(30, generator=g) < 0.7).double()
    one_hot = F.one_hot(labels, 5)[:, :4].double()
    expected = detloss.ghmc_loss(x, one_hot, row_weight[:, None].expand(30, 4))
    torch.testing.assert_close(detloss.ghmc_loss(x, labels, row_weight), expected)
    torch.testing.assert_close(detloss.GHMC()(x, labels, row_weight), expected)


def test_ghmc_momentum_steps_match_reference_and_state_dict_round_trips() -> None:
    reference = ReferenceGHM(10, 0.75, 1.0 + 1e-6)
    module = detloss.GHMC(bins=10, momentum=0.75)
    for step in range(4):
        x, t, lw = _classification(100 + step, n=20 + 10 * step)
        torch.testing.assert_close(module(x, t, lw), reference.ghmc(x, t, lw))
        torch.testing.assert_close(
            module.acc_sum, torch.tensor(reference.acc_sum, dtype=torch.float32)
        )
    assert list(module.state_dict()) == ["edges", "acc_sum"]  # mmdetection's keys
    restored = detloss.GHMC(bins=10, momentum=0.75)
    restored.load_state_dict(module.state_dict())
    x, t, lw = _classification(7)
    torch.testing.assert_close(restored(x, t, lw), module(x, t, lw))
    torch.testing.assert_close(restored.acc_sum, module.acc_sum)


def test_ghmr_momentum_steps_match_reference() -> None:
    reference = ReferenceGHM(10, 0.7, 1e3)
    module = detloss.GHMR(mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)
    for step in range(3):
        p, t, lw = _regression(200 + step)
        torch.testing.assert_close(module(p, t, lw), 10.0 * reference.ghmr(p, t, lw, 0.02))
    torch.testing.assert_close(module.acc_sum, torch.tensor(reference.acc_sum, dtype=torch.float32))


def test_empty_bins_keep_their_moving_average() -> None:
    module = detloss.GHMC(bins=10, momentum=0.5)
    module(torch.zeros(1, 4), torch.ones(1, 4), torch.ones(1, 4))  # g = 0.5: bin 5 only
    assert module.acc_sum[5] == 2.0
    assert module.acc_sum.sum() == 2.0
    module(torch.full((1, 2), 20.0), torch.ones(1, 2), torch.ones(1, 2))  # g ~ 0: bin 0 only
    assert module.acc_sum[5] == 2.0
    assert module.acc_sum[0] == 1.0


def test_momentum_zero_has_no_state_and_edges_are_mmdetections() -> None:
    assert list(detloss.GHMC().state_dict()) == ["edges"]
    edges = detloss.GHMC(bins=10).edges
    expected = torch.arange(11).float() / 10
    expected[-1] += 1e-6
    assert torch.equal(edges, expected)
    assert detloss.GHMR().edges[-1] == 1e3


def test_statistics_and_density_arguments() -> None:
    x, t, lw = _classification(11)
    stats = ghmc_statistics(x, t, lw)
    torch.testing.assert_close(
        detloss.ghmc_loss(x, t, lw, statistics=stats), detloss.ghmc_loss(x, t, lw)
    )
    # Doubling every density halves every weight.
    doubled = detloss.ghmc_loss(x, t, lw, statistics=stats, density=2 * stats[:-1])
    torch.testing.assert_close(doubled, detloss.ghmc_loss(x, t, lw) / 2)
    with pytest.raises(ValueError, match="statistics must have shape"):
        detloss.ghmc_loss(x, t, lw, statistics=stats[:-1])
    with pytest.raises(ValueError, match="density must have shape"):
        detloss.ghmc_loss(x, t, lw, density=stats)


def test_reductions() -> None:
    x, t, lw = _classification(12)
    none = detloss.ghmc_loss(x, t, lw, reduction="none")
    total = float((lw > 0).sum())
    torch.testing.assert_close(detloss.ghmc_loss(x, t, lw, reduction="sum"), none.sum())
    torch.testing.assert_close(detloss.ghmc_loss(x, t, lw), none.sum() / (total + EPS))
    torch.testing.assert_close(detloss.ghmc_loss(x, t, lw, avg_factor=4.0), none.sum() / (4 + EPS))
    module = detloss.GHMC(reduction="sum", loss_weight=2.0)
    torch.testing.assert_close(module(x, t, lw), 2 * none.sum())
    # mmdetection heads pass avg_factor: GHM ignores it and normalises by its own total.
    torch.testing.assert_close(
        detloss.GHMC()(x, t, lw, avg_factor=123.0), none.sum() / (total + EPS)
    )
    torch.testing.assert_close(detloss.GHMC()(x, t, label_weight=lw), none.sum() / (total + EPS))


def test_module_compiles_fullgraph_and_updates_state() -> None:
    eager = detloss.GHMC(bins=10, momentum=0.75)
    compiled_module = detloss.GHMC(bins=10, momentum=0.75)
    compiled = torch.compile(compiled_module, fullgraph=True, backend="eager", dynamic=True)
    for step in range(2):
        x, t, lw = _classification(300 + step, n=10 + step)
        torch.testing.assert_close(compiled(x, t, lw), eager(x, t, lw))
    torch.testing.assert_close(compiled_module.acc_sum, eager.acc_sum)


def test_build_from_mmdetection_configs() -> None:
    # mmdetection's configs/ghm/retinanet_r50_fpn_ghm-1x_coco.py
    cls = detloss.build_loss(
        {"type": "GHMC", "bins": 30, "momentum": 0.75, "use_sigmoid": True, "loss_weight": 1.0}
    )
    reg = detloss.build_loss(
        {"type": "GHMR", "mu": 0.02, "bins": 10, "momentum": 0.7, "loss_weight": 10.0}
    )
    assert isinstance(cls, detloss.GHMC)
    assert cls.bins == 30
    assert cls.momentum == 0.75
    assert isinstance(reg, detloss.GHMR)
    assert reg.mu == 0.02
    assert reg.loss_weight == 10.0
    assert "momentum=0.75" in repr(cls)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bins": 0}, ValueError, r"bins must be in \[1, 1048576\], got 0"),
        ({"bins": 2.5}, TypeError, "bins must be an int, got float"),
        ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\), got 1.0"),
        ({"momentum": -0.1}, ValueError, "momentum must be a finite number >= 0"),
        ({"use_sigmoid": False}, ValueError, "only use_sigmoid=True"),
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
    ],
)
def test_ghmc_bad_parameters(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        detloss.GHMC(**kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(
        ValueError, match=r"mu must be a finite number >= 1e-30 and <= 1e\+30, got 0"
    ):
        detloss.GHMR(mu=0)
    with pytest.raises(ValueError, match=r"mu must be a finite number >= 1e-30 and <= 1e\+30"):
        detloss.ghmr_loss(torch.zeros(2, 4), torch.zeros(2, 4), mu=-1.0)
    with pytest.raises(ValueError, match="floating targets must have pred's shape"):
        detloss.ghmc_loss(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="class indices of shape"):
        detloss.ghmc_loss(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="label_weight of shape"):
        detloss.ghmc_loss(torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(3))
    with pytest.raises(TypeError, match="pred must be a floating-point tensor"):
        detloss.ghmr_loss(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4))
