"""The label table of ``docs/classification.md`` ("Labels: one table"), row by row: what a class
index, the value ``C``, a negative label and a label above ``C`` mean for each loss, and that every
loss takes labels of any integer dtype."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import detloss
from detloss.eqlv2 import eqlv2_gradient_statistics

C = 3
LOGITS = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0], [-0.5, 2.0, 1.0], [0.0, -2.0, 0.75]])
SCORES = torch.tensor([0.9, 0.6, 0.3, 0.8])
Rows = Callable[[Tensor, Tensor], Tensor]


def _sum_rows(loss: Tensor) -> Tensor:
    return loss.sum(dim=1) if loss.dim() == 2 else loss


# the sigmoid losses with class indices: (rows of the loss of labels, rows of dense targets)
SIGMOID: dict[str, tuple[Rows, Rows]] = {
    "binary_cross_entropy": (
        lambda x, y: detloss.binary_cross_entropy(x, y, reduction="none"),
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
    ),
    "sigmoid_focal_loss": (
        lambda x, y: detloss.sigmoid_focal_loss(x, y, reduction="none"),
        lambda x, t: detloss.sigmoid_focal_loss(x, t, reduction="none"),
    ),
    "sigmoid_focal_loss_star": (
        lambda x, y: detloss.sigmoid_focal_loss_star(x, y, reduction="none"),
        lambda x, t: detloss.sigmoid_focal_loss_star(x, t, reduction="none"),
    ),
    "focal_loss_with_prob": (
        lambda x, y: detloss.focal_loss_with_prob(x.sigmoid(), y, reduction="none"),
        lambda x, t: detloss.focal_loss_with_prob(x.sigmoid(), t, reduction="none"),
    ),
    "quality_focal_loss": (
        lambda x, y: detloss.quality_focal_loss(x, y, SCORES, reduction="none"),
        lambda x, t: detloss.quality_focal_loss(x, t * SCORES[:, None], reduction="none"),
    ),
    "quality_focal_loss_with_prob": (
        lambda x, y: detloss.quality_focal_loss_with_prob(x.sigmoid(), y, SCORES, reduction="none"),
        lambda x, t: detloss.quality_focal_loss_with_prob(
            x.sigmoid(), t * SCORES[:, None], reduction="none"
        ),
    ),
    "ghmc_loss": (
        lambda x, y: detloss.ghmc_loss(x, y, reduction="none"),
        # an ignored row is one of label weight 0: the density counts the valid elements only
        lambda x, t: detloss.ghmc_loss(x, t, torch.ones(4, 1) * (t.sum(1, keepdim=True) >= 0)),
    ),
}


@pytest.mark.parametrize("name", sorted(SIGMOID))
def test_sigmoid_losses_class_background_and_ignored_labels(name: str) -> None:
    labelled, dense = SIGMOID[name]
    labels = torch.tensor([2, C, -1, C + 1])  # the class, background, ignored, background
    x = LOGITS.clone().requires_grad_(True)
    loss = _sum_rows(labelled(x, labels))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    targets = torch.zeros(4, C)
    targets[0, 2] = 1.0
    kept = torch.tensor([True, True, False, True])
    if name == "ghmc_loss":
        weights = kept.float()[:, None].expand(4, C)
        expected = detloss.ghmc_loss(LOGITS, targets, weights, reduction="none").sum(1)
    else:
        expected = _sum_rows(dense(LOGITS, targets)) * kept
    torch.testing.assert_close(loss.detach(), expected)
    assert loss[2] == 0
    assert (grad[2] == 0).all()


def test_binary_cross_entropy_ignores_ignore_index_and_takes_binary_labels() -> None:
    # class indices: ignore_index (any value, e.g. 255) is ignored as the negative labels are
    loss = detloss.binary_cross_entropy(LOGITS, torch.tensor([255, 0, -100, 1]), ignore_index=255)
    full = detloss.binary_cross_entropy(LOGITS, torch.tensor([0, 0, 0, 1]), reduction="none")
    torch.testing.assert_close(loss, (full[1].sum() + full[3].sum()) / LOGITS.numel())
    # integer labels of the logits' shape: 0 negative, above 0 positive, negative ignored
    binary = torch.tensor([0, 1, -1, 2])
    got = detloss.binary_cross_entropy(LOGITS[:, 0], binary, reduction="none")
    expected = F.binary_cross_entropy_with_logits(
        LOGITS[:, 0], binary.clamp(0, 1).float(), reduction="none"
    ) * torch.tensor([1.0, 1.0, 0.0, 1.0])
    torch.testing.assert_close(got, expected)


SOFTMAX: dict[str, Rows] = {
    "cross_entropy": lambda x, y: detloss.cross_entropy(x, y, reduction="none"),
    "softmax_focal_loss": lambda x, y: detloss.softmax_focal_loss(x, y, reduction="none"),
    "fast_rcnn_loss": lambda x, y: detloss.fast_rcnn_loss(
        x, y, torch.zeros(4, 4 * (C - 1)), torch.zeros(4, 4)
    )["loss_cls"],
}


@pytest.mark.parametrize("name", sorted(SOFTMAX))
@pytest.mark.parametrize("label", [C, -1, C + 5])
def test_softmax_losses_reject_labels_outside_the_classes(name: str, label: int) -> None:
    # PyTorch's error while computing, or detloss's ValueError naming the label when checked
    with pytest.raises((IndexError, RuntimeError)):
        SOFTMAX[name](LOGITS, torch.tensor([0, label, 1, 2]))
    checked: dict[str, Callable[..., Tensor]] = {
        "cross_entropy": detloss.cross_entropy,
        "softmax_focal_loss": detloss.softmax_focal_loss,
    }
    if name in checked:
        with pytest.raises(ValueError, match=f"label {label} at index \\(1,\\)"):
            checked[name](LOGITS, torch.tensor([0, label, 1, 2]), check_labels=True)


def test_cross_entropy_and_fast_rcnn_ignore_ignore_index() -> None:
    labels = torch.tensor([0, -100, 1, 2])
    loss = detloss.cross_entropy(LOGITS, labels, reduction="none")
    torch.testing.assert_close(loss, F.cross_entropy(LOGITS, labels, reduction="none"))
    assert loss[1] == 0
    rows = detloss.fast_rcnn_loss(LOGITS, labels, torch.zeros(4, 8), torch.zeros(4, 4))
    torch.testing.assert_close(rows["loss_cls"], loss.sum() / 4)


def test_seesaw_gives_no_class_term_outside_the_classes() -> None:
    counts = torch.tensor([10.0, 100.0, 1000.0])
    rows = detloss.seesaw_ce_loss(LOGITS, torch.tensor([2, C, -1, C + 1]), counts, reduction="none")
    assert rows[0] > 0
    assert (rows[1:] == 0).all()


def test_eqlv2_background_channel_ignored_and_empty_rows() -> None:
    x = LOGITS.clone().requires_grad_(True)  # K = 2 classes and the background channel
    pos_neg = torch.tensor([0.5, 2.0])
    loss = detloss.eqlv2_loss(x, torch.tensor([0, 2, -1, 3]), pos_neg, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    background = detloss.eqlv2_loss(LOGITS[1:2], torch.tensor([2]), pos_neg, reduction="none")
    empty = detloss.eqlv2_loss(LOGITS[3:], torch.tensor([5]), pos_neg, reduction="none")
    torch.testing.assert_close(loss[1:2].detach(), background)
    torch.testing.assert_close(loss[3:].detach(), empty)
    assert loss[2] == 0
    assert (grad[2] == 0).all()
    stats = eqlv2_gradient_statistics(LOGITS, torch.tensor([0, 2, -1, 3]), pos_neg)
    kept = eqlv2_gradient_statistics(LOGITS[[0, 1, 3]], torch.tensor([0, 2, 3]), pos_neg)
    torch.testing.assert_close(stats, kept)


def test_rpn_labels() -> None:
    labels = torch.tensor([0, 1, -1, 2])
    pred = torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    losses = detloss.rpn_loss(LOGITS[:, 0], labels, pred, torch.zeros(4, 4))
    expected = detloss.rpn_loss(LOGITS[:, 0], labels.clamp(-1, 1), pred, torch.zeros(4, 4))
    torch.testing.assert_close(losses, expected)
    kept = detloss.rpn_loss(
        LOGITS[[0, 1, 3], 0], torch.tensor([0, 1, 1]), pred[[0, 1, 3]], pred[:3] * 0
    )
    torch.testing.assert_close(losses["loss_cls"], kept["loss_cls"])


CLASSES = torch.tensor([2, 0, 1, 2])
BINARY = torch.tensor([1, 0, 1, 1])
LABELLED: dict[str, tuple[Callable[[Tensor], Tensor], Tensor]] = {
    "cross_entropy": (lambda y: detloss.cross_entropy(LOGITS, y), CLASSES),
    "softmax_focal_loss": (lambda y: detloss.softmax_focal_loss(LOGITS, y), CLASSES),
    "binary_cross_entropy": (lambda y: detloss.binary_cross_entropy(LOGITS, y), CLASSES),
    "binary_cross_entropy (binary)": (
        lambda y: detloss.binary_cross_entropy(LOGITS[:, 0], y),
        BINARY,
    ),
    "sigmoid_focal_loss": (lambda y: detloss.sigmoid_focal_loss(LOGITS, y), CLASSES),
    "sigmoid_focal_loss_star": (lambda y: detloss.sigmoid_focal_loss_star(LOGITS, y), CLASSES),
    "focal_loss_with_prob": (
        lambda y: detloss.focal_loss_with_prob(LOGITS.sigmoid(), y),
        CLASSES,
    ),
    "quality_focal_loss": (lambda y: detloss.quality_focal_loss(LOGITS, y, SCORES), CLASSES),
    "quality_focal_loss_with_prob": (
        lambda y: detloss.quality_focal_loss_with_prob(LOGITS.sigmoid(), y, SCORES),
        CLASSES,
    ),
    "ghmc_loss": (lambda y: detloss.ghmc_loss(LOGITS, y), CLASSES),
    "seesaw_ce_loss": (
        lambda y: detloss.seesaw_ce_loss(LOGITS, y, torch.tensor([1.0, 5.0, 9.0])),
        CLASSES,
    ),
    "eqlv2_loss": (lambda y: detloss.eqlv2_loss(LOGITS, y, torch.tensor([0.5, 2.0])), CLASSES),
    "rpn_loss": (
        lambda y: detloss.rpn_loss(LOGITS[:, 0], y, torch.zeros(4, 4), torch.ones(4, 4))[
            "loss_cls"
        ],
        BINARY,
    ),
    "fast_rcnn_loss": (
        lambda y: detloss.fast_rcnn_loss(LOGITS, y, torch.zeros(4, 8), torch.ones(4, 4))[
            "loss_cls"
        ],
        CLASSES,
    ),
}


@pytest.mark.parametrize("name", sorted(LABELLED))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_every_loss_takes_labels_of_any_integer_dtype(name: str, dtype: torch.dtype) -> None:
    fn, labels = LABELLED[name]
    torch.testing.assert_close(fn(labels.to(dtype)), fn(labels))
    with pytest.raises(TypeError, match="complex64"):
        fn(labels.to(torch.complex64))
