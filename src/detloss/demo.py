"""A short demo: every registered loss on sample data (the README's main command until ``detloss simulate``)."""

from __future__ import annotations

import torch

import detloss


def main() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(1000, 4, generator=g) * 2
    target = torch.randn(1000, 4, generator=g)
    rows = [
        ("smooth_l1_loss(beta=1)", detloss.smooth_l1_loss(pred, target)),
        ("smooth_l1_loss(beta=1/9)", detloss.smooth_l1_loss(pred, target, 1 / 9)),
        ("smooth_l1_loss(sigma=3)", detloss.smooth_l1_loss(pred, target, sigma=3.0)),
        ("smooth_l1_loss(beta=0) = L1", detloss.smooth_l1_loss(pred, target, 0.0)),
        ("huber_loss(delta=1)", detloss.huber_loss(pred, target)),
        ("l1_loss", detloss.l1_loss(pred, target)),
        ("mse_loss", detloss.mse_loss(pred, target)),
        ("balanced_l1_loss", detloss.balanced_l1_loss(pred, target)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'loss':<{width}}  value (mean over 1000 x 4 residuals)")
    for name, value in rows:
        print(f"{name:<{width}}  {value.item():.6f}")


if __name__ == "__main__":
    main()
