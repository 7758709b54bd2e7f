"""Every constructor argument of mmdetection 3.3's registered loss types is accepted by the
detloss module of the same name, in mmdetection's positional order with its default, or rejected
with an error naming it. The table is transcribed from mmdetection 3.3 (mmdet/models/losses)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

import detloss

# mmdetection 3.3's registered loss types and their constructor arguments with defaults, in order
# (mmdet/models/losses; every type registered there).
MMDET_CONSTRUCTORS: dict[str, list[tuple[str, Any]]] = {
    "AssociativeEmbeddingLoss": [("pull_weight", 0.25), ("push_weight", 0.25)],
    "BalancedL1Loss": [
        ("alpha", 0.5),
        ("gamma", 1.5),
        ("beta", 1.0),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
    ],
    "CrossEntropyLoss": [
        ("use_sigmoid", False),
        ("use_mask", False),
        ("reduction", "mean"),
        ("class_weight", None),
        ("ignore_index", None),
        ("loss_weight", 1.0),
        ("avg_non_ignore", False),
    ],
    "CrossEntropyCustomLoss": [
        ("use_sigmoid", False),
        ("use_mask", False),
        ("reduction", "mean"),
        ("num_classes", -1),
        ("class_weight", None),
        ("ignore_index", None),
        ("loss_weight", 1.0),
        ("avg_non_ignore", False),
    ],
    "DiceLoss": [
        ("use_sigmoid", True),
        ("activate", True),
        ("reduction", "mean"),
        ("naive_dice", False),
        ("loss_weight", 1.0),
        ("eps", 1e-3),
    ],
    "EQLV2Loss": [
        ("use_sigmoid", True),
        ("reduction", "mean"),
        ("class_weight", None),
        ("loss_weight", 1.0),
        ("num_classes", 1203),
        ("use_distributed", False),
        ("mu", 0.8),
        ("alpha", 4.0),
        ("gamma", 12),
        ("vis_grad", False),
        ("test_with_obj", True),
    ],
    "FocalLoss": [
        ("use_sigmoid", True),
        ("gamma", 2.0),
        ("alpha", 0.25),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("activated", False),
    ],
    "FocalCustomLoss": [
        ("use_sigmoid", True),
        ("num_classes", -1),
        ("gamma", 2.0),
        ("alpha", 0.25),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("activated", False),
    ],
    "GaussianFocalLoss": [
        ("alpha", 2.0),
        ("gamma", 4.0),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("pos_weight", 1.0),
        ("neg_weight", 1.0),
    ],
    "QualityFocalLoss": [
        ("use_sigmoid", True),
        ("beta", 2.0),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("activated", False),
    ],
    "DistributionFocalLoss": [("reduction", "mean"), ("loss_weight", 1.0)],
    "GHMC": [
        ("bins", 10),
        ("momentum", 0),
        ("use_sigmoid", True),
        ("loss_weight", 1.0),
        ("reduction", "mean"),
    ],
    "GHMR": [
        ("mu", 0.02),
        ("bins", 10),
        ("momentum", 0),
        ("loss_weight", 1.0),
        ("reduction", "mean"),
    ],
    "IoULoss": [
        ("linear", False),
        ("eps", 1e-6),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("mode", "log"),
    ],
    "BoundedIoULoss": [("beta", 0.2), ("eps", 1e-3), ("reduction", "mean"), ("loss_weight", 1.0)],
    "GIoULoss": [("eps", 1e-6), ("reduction", "mean"), ("loss_weight", 1.0)],
    "DIoULoss": [("eps", 1e-6), ("reduction", "mean"), ("loss_weight", 1.0)],
    "CIoULoss": [("eps", 1e-6), ("reduction", "mean"), ("loss_weight", 1.0)],
    "EIoULoss": [
        ("eps", 1e-6),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("smooth_point", 0.1),
    ],
    "SIoULoss": [
        ("eps", 1e-6),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("neg_gamma", False),
    ],
    "KnowledgeDistillationKLDivLoss": [("reduction", "mean"), ("loss_weight", 1.0), ("T", 10)],
    "L2Loss": [
        ("neg_pos_ub", -1),
        ("pos_margin", -1),
        ("neg_margin", -1),
        ("hard_mining", False),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
    ],
    "MarginL2Loss": [
        ("neg_pos_ub", -1),
        ("pos_margin", -1),
        ("neg_margin", -1),
        ("hard_mining", False),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
    ],
    "MSELoss": [("reduction", "mean"), ("loss_weight", 1.0)],
    "MultiPosCrossEntropyLoss": [("reduction", "mean"), ("loss_weight", 1.0)],
    "SeesawLoss": [
        ("use_sigmoid", False),
        ("p", 0.8),
        ("q", 2.0),
        ("num_classes", 1203),
        ("eps", 1e-2),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
        ("return_dict", True),
    ],
    "SmoothL1Loss": [("beta", 1.0), ("reduction", "mean"), ("loss_weight", 1.0)],
    "L1Loss": [("reduction", "mean"), ("loss_weight", 1.0)],
    "TripletLoss": [("margin", 0.3), ("loss_weight", 1.0), ("hard_mining", True)],
    "VarifocalLoss": [
        ("use_sigmoid", True),
        ("alpha", 0.75),
        ("gamma", 2.0),
        ("iou_weighted", True),
        ("reduction", "mean"),
        ("loss_weight", 1.0),
    ],
}

# detloss defaults that stand for mmdetection's (``None`` resolved in the constructor).
RESOLVED_DEFAULTS = {("SmoothL1Loss", "beta"): (None, 1.0)}

# mmdetection arguments whose other values detloss rejects, with an error naming the argument.
REJECTED: list[tuple[str, dict[str, Any]]] = [
    ("CrossEntropyLoss", {"use_mask": True}),
    ("VarifocalLoss", {"use_sigmoid": False}),
    ("QualityFocalLoss", {"use_sigmoid": False}),
    ("GHMC", {"use_sigmoid": False}),
    ("SeesawLoss", {"use_sigmoid": True}),
    ("EQLV2Loss", {"use_sigmoid": False}),
    ("EQLV2Loss", {"class_weight": [1.0, 2.0]}),
    ("DiceLoss", {"use_sigmoid": False}),
    ("IoULoss", {"linear": True, "mode": "square"}),
]


def _mmdet_type(name: str) -> type[torch.nn.Module]:
    if name not in detloss.LOSSES:
        pytest.skip(f"{name} is not provided by detloss")
    return detloss.LOSSES[name]


@pytest.mark.parametrize("name", sorted(MMDET_CONSTRUCTORS))
def test_constructor_takes_mmdetections_arguments_in_order_with_its_defaults(name: str) -> None:
    cls = _mmdet_type(name)
    parameters = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self"
    ]
    ours = [(p.name, p.default) for p in parameters]
    expected = MMDET_CONSTRUCTORS[name]
    assert [n for n, _ in ours] == [n for n, _ in expected], name
    for (arg, default), (_, mmdet_default) in zip(ours, expected, strict=True):
        resolved = RESOLVED_DEFAULTS.get((name, arg), (mmdet_default, mmdet_default))
        assert default == resolved[0], (name, arg)
    module = cls(**dict(expected))  # mmdetection's defaults, spelled out, build the module
    assert isinstance(module, torch.nn.Module)
    for arg, value in expected:
        if hasattr(module, arg) and (name, arg) not in RESOLVED_DEFAULTS and value is not None:
            assert getattr(module, arg) == value, (name, arg)


@pytest.mark.parametrize(("name", "arguments"), REJECTED)
def test_unsupported_mmdetection_values_are_rejected_naming_the_argument(
    name: str, arguments: dict[str, Any]
) -> None:
    cls = _mmdet_type(name)
    with pytest.raises(ValueError, match=next(iter(arguments))):
        cls(**arguments)


def test_use_mask_error_says_what_detloss_offers_instead() -> None:
    with pytest.raises(ValueError, match=r"use_mask=True.*use_sigmoid=True.*DiceLoss"):
        detloss.LOSSES["CrossEntropyLoss"](use_mask=True)


def test_focal_loss_softmax_option_is_detlosss_own() -> None:
    # mmdetection 3.3 asserts use_sigmoid=True; detloss keeps mmcv's softmax focal loss there
    logits, labels = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([2])
    module = detloss.LOSSES["FocalLoss"](use_sigmoid=False)
    torch.testing.assert_close(module(logits, labels), detloss.softmax_focal_loss(logits, labels))
    with pytest.raises(ValueError, match=r"\(activated=True\) needs use_sigmoid=True"):
        detloss.LOSSES["FocalLoss"](use_sigmoid=False, activated=True)
