"""Modules (mmdetection's forward signature), the registry and build_loss, and the public API."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import detloss
from detloss.modules import WeightedLoss

REGRESSION_MODULES = [
    (detloss.SmoothL1Loss, {"beta": 1 / 9}, detloss.smooth_l1_loss, (1 / 9,)),
    (detloss.HuberLoss, {"delta": 0.5}, detloss.huber_loss, (0.5,)),
    (detloss.L1Loss, {}, detloss.l1_loss, ()),
    (detloss.MSELoss, {}, detloss.mse_loss, ()),
    (
        detloss.BalancedL1Loss,
        {"alpha": 0.4, "gamma": 1.2, "beta": 0.8},
        detloss.balanced_l1_loss,
        (0.4, 1.2, 0.8),
    ),
]


def _pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(6, 4, generator=g),
        torch.randn(6, 4, generator=g),
        torch.rand(6, 4, generator=g),
    )


@pytest.mark.parametrize(("cls", "params", "fn", "args"), REGRESSION_MODULES)
def test_module_is_loss_weight_times_functional(cls, params, fn, args) -> None:
    pred, target, weight = _pair()
    module = cls(**params, reduction="sum", loss_weight=2.5)
    torch.testing.assert_close(
        module(pred, target, weight), 2.5 * fn(pred, target, *args, weight=weight, reduction="sum")
    )
    torch.testing.assert_close(
        module(pred, target, weight, avg_factor=3.0, reduction_override="mean"),
        2.5 * fn(pred, target, *args, weight=weight, reduction="mean", avg_factor=3.0),
    )
    assert module(pred, target, reduction_override="none").shape == pred.shape


@pytest.mark.parametrize(("cls", "params", "fn", "args"), REGRESSION_MODULES)
def test_build_loss_from_an_mmdetection_config(cls, params, fn, args) -> None:
    cfg: dict[str, Any] = {"type": cls.__name__, **params, "loss_weight": 1.0}
    module = detloss.build_loss(cfg)
    assert type(module) is cls
    pred, target, _ = _pair()
    torch.testing.assert_close(module(pred, target), fn(pred, target, *args))
    assert cfg["type"] == cls.__name__, "build_loss must not mutate the config"


def test_mmdetection_configs_build_unchanged() -> None:
    # Verbatim from mmdetection's configs (Faster R-CNN RPN, Libra R-CNN, RetinaNet-style bbox loss).
    configs = [
        {"type": "SmoothL1Loss", "beta": 1.0 / 9.0, "loss_weight": 1.0},
        {"type": "BalancedL1Loss", "alpha": 0.5, "gamma": 1.5, "beta": 1.0, "loss_weight": 1.0},
        {"type": "L1Loss", "loss_weight": 1.0},
        {"type": "mmdet.SmoothL1Loss", "beta": 1.0, "loss_weight": 1.0},
    ]
    for cfg in configs:
        assert isinstance(detloss.build_loss(cfg), WeightedLoss)


def test_sigma_module_equals_beta_module() -> None:
    pred, target, _ = _pair()
    torch.testing.assert_close(
        detloss.SmoothL1Loss(sigma=3.0)(pred, target),
        detloss.SmoothL1Loss(beta=1 / 9)(pred, target),
    )
    assert "beta=0.111" in repr(detloss.SmoothL1Loss(sigma=3.0))


def test_unknown_type_lists_registered_names() -> None:
    with pytest.raises(KeyError, match="unknown loss type 'SmoothL2Loss'") as err:
        detloss.build_loss({"type": "SmoothL2Loss"})
    for name in ("SmoothL1Loss", "HuberLoss", "L1Loss", "MSELoss", "BalancedL1Loss"):
        assert name in str(err.value)


def test_config_without_type_or_not_a_mapping() -> None:
    with pytest.raises(KeyError, match="needs a 'type' key"):
        detloss.build_loss({"beta": 1.0})
    with pytest.raises(TypeError, match="must be a mapping, got list"):
        detloss.build_loss(["SmoothL1Loss"])  # type: ignore[arg-type]


def test_register_loss_adds_a_user_loss_and_rejects_duplicates() -> None:
    @detloss.register_loss("TestDoubleL1")
    class DoubleL1(WeightedLoss):
        def loss(self, pred: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            return 2 * detloss.l1_loss(pred, target, **kwargs)

    try:
        pred, target, _ = _pair()
        module = detloss.build_loss({"type": "TestDoubleL1", "loss_weight": 0.5})
        torch.testing.assert_close(module(pred, target), detloss.l1_loss(pred, target))
        with pytest.raises(KeyError, match="'TestDoubleL1' is already registered"):
            detloss.register_loss("TestDoubleL1")(DoubleL1)
        assert detloss.register_loss("TestDoubleL1", force=True)(DoubleL1) is DoubleL1
    finally:
        detloss.LOSSES.pop("TestDoubleL1")


def test_invalid_reduction_in_constructor_and_override() -> None:
    with pytest.raises(ValueError, match="reduction must be one of"):
        detloss.SmoothL1Loss(reduction="avg")
    pred, target, _ = _pair()
    with pytest.raises(ValueError, match="reduction must be one of"):
        detloss.L1Loss()(pred, target, reduction_override="elementwise")


def test_invalid_module_parameters_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        detloss.SmoothL1Loss(beta=-1.0)
    with pytest.raises(ValueError, match="delta must be a finite number > 0"):
        detloss.HuberLoss(delta=0)
    with pytest.raises(TypeError, match="loss_weight must be a real number"):
        detloss.L1Loss(loss_weight="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'sigmaa'"):
        detloss.build_loss({"type": "SmoothL1Loss", "sigmaa": 3.0})


def test_every_registered_loss_is_exported_and_a_module() -> None:
    for name, cls in detloss.LOSSES.items():
        assert issubclass(cls, nn.Module)
        assert getattr(detloss, name) is cls
    names_in_all = set(detloss.__all__)
    assert set(detloss.LOSSES) <= names_in_all
    for name in detloss.__all__:
        assert hasattr(detloss, name), name
