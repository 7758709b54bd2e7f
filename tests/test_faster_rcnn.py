"""Tests of the Faster R-CNN multitask loss (RPN and Fast R-CNN head)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import detloss
from detloss.faster_rcnn import fast_rcnn_loss, rpn_loss


def _rpn_inputs(a: int = 60, seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(a, generator=g, dtype=dtype)
    labels = torch.randint(-1, 2, (a,), generator=g)  # -1 ignored, 0 negative, 1 positive
    pred = torch.randn(a, 4, generator=g, dtype=dtype) * 0.3
    target = torch.randn(a, 4, generator=g, dtype=dtype) * 0.3
    return logits, labels, pred, target


def _roi_inputs(
    r: int = 30, k: int = 5, specific: int = 4, seed: int = 0, background: str = "last"
):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(r, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (r,), generator=g)
    pred = torch.randn(r, 4 * specific, generator=g, dtype=torch.float64) * 0.5
    target = torch.randn(r, 4, generator=g, dtype=torch.float64) * 0.5
    return logits, labels, pred, target


def _smooth_l1_sum(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    return F.smooth_l1_loss(pred, target, beta=beta, reduction="sum")


def test_rpn_loss_sampled_normalisation_as_torchvision() -> None:
    logits, labels, pred, target = _rpn_inputs()
    out = rpn_loss(logits, labels, pred, target)
    labelled, positive = labels >= 0, labels == 1
    n = labelled.sum()
    # torchvision: BCE mean over sampled anchors; smooth_l1(beta=1/9, sum) / sampled anchors.
    expected_cls = F.binary_cross_entropy_with_logits(logits[labelled], labels[labelled].double())
    expected_reg = _smooth_l1_sum(pred[positive], target[positive], 1 / 9) / n
    torch.testing.assert_close(out["loss_cls"], expected_cls)
    torch.testing.assert_close(out["loss_reg"], expected_reg)


def test_rpn_loss_paper_normalisation() -> None:
    logits, labels, pred, target = _rpn_inputs()
    out = rpn_loss(logits, labels, pred, target, normalizer="paper", num_anchor_locations=7)
    positive = labels == 1
    # Ren et al.: lambda = 10, N_reg = number of anchor locations; N_cls = labelled anchors.
    expected_reg = 10 * _smooth_l1_sum(pred[positive], target[positive], 1 / 9) / 7
    torch.testing.assert_close(out["loss_reg"], expected_reg)
    torch.testing.assert_close(out["loss_cls"], rpn_loss(logits, labels, pred, target)["loss_cls"])
    out = rpn_loss(logits, labels, pred, target, lambda_=2.0, beta=0.5)
    n = (labels >= 0).sum()
    torch.testing.assert_close(
        out["loss_reg"], 2.0 * _smooth_l1_sum(pred[positive], target[positive], 0.5) / n
    )


def test_rpn_loss_reproduces_the_caffe_layer() -> None:
    logits, labels, pred, target = _rpn_inputs()
    out = rpn_loss(logits, labels, pred, target, sigma=3.0)
    # py-faster-rcnn, one image: inside = positives, outside = 1 / labelled anchors; the layer
    # sums everything and divides by the batch size N = 1.
    inside = (labels == 1).double()[:, None].expand(-1, 4).reshape(1, -1)
    outside = torch.full_like(inside, 1.0 / (labels >= 0).sum().item())
    caffe = detloss.caffe_smooth_l1_loss(
        pred.reshape(1, -1), target.reshape(1, -1), inside, outside, sigma=3.0
    )
    torch.testing.assert_close(out["loss_reg"], caffe)


@pytest.mark.parametrize("background", ["last", "first"])
def test_fast_rcnn_loss_class_specific_deltas(background: str) -> None:
    k = 5
    slots = k - 1 if background == "last" else k
    logits, labels, pred, target = _roi_inputs(k=k, specific=slots)
    out = fast_rcnn_loss(logits, labels, pred, target, background=background, beta=1 / 9)
    positive = labels < k - 1 if background == "last" else labels > 0
    rows = torch.arange(len(labels))[positive]
    chosen = pred.view(-1, slots, 4)[rows, labels[positive]]
    expected_reg = _smooth_l1_sum(chosen, target[positive], 1 / 9) / len(labels)
    torch.testing.assert_close(out["loss_cls"], F.cross_entropy(logits, labels))
    torch.testing.assert_close(out["loss_reg"], expected_reg)


def test_fast_rcnn_loss_class_agnostic_and_caffe() -> None:
    logits, labels, pred, target = _roi_inputs(specific=1)
    positive = labels < 4
    out = fast_rcnn_loss(logits, labels, pred, target, reg_loss=detloss.l1_loss, lambda_=3.0)
    expected = 3.0 * (pred - target).abs()[positive].sum() / len(labels)
    torch.testing.assert_close(out["loss_reg"], expected)
    # py-faster-rcnn's detection head: deltas (R, 4K), inside weights on the ground-truth class's
    # 4 columns of foreground RoIs, outside weights 1, sigma = 1, divided by R.
    logits, labels, pred, target = _roi_inputs(specific=5)
    inside = torch.zeros_like(pred).view(-1, 5, 4)
    inside[torch.arange(len(labels)), labels] = (labels > 0).double()[:, None]
    caffe = detloss.caffe_smooth_l1_loss(
        pred, target.repeat(1, 5), inside.view_as(pred), torch.ones_like(pred), sigma=1.0
    )
    out = fast_rcnn_loss(logits, labels, pred, target, background="first", sigma=1.0)
    torch.testing.assert_close(out["loss_reg"], caffe)


def test_iou_loss_on_decoded_boxes() -> None:
    if not hasattr(detloss, "giou_loss"):
        pytest.skip("the IoU losses have not landed")
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(40, 2, generator=g, dtype=torch.float64) * 50
    anchors = torch.cat([xy, xy + 10 + torch.rand(40, 2, generator=g, dtype=torch.float64) * 20], 1)
    gt = anchors + torch.randn(40, 4, generator=g, dtype=torch.float64)
    deltas = torch.randn(40, 4, generator=g, dtype=torch.float64) * 0.1
    pred_boxes = detloss.coder.DeltaXYWHCoder().decode(anchors, deltas)
    logits, labels, _, _ = _rpn_inputs(40)
    out = rpn_loss(logits, labels, pred_boxes, gt, reg_loss=detloss.giou_loss)
    positive = labels == 1
    expected = detloss.giou_loss(pred_boxes[positive], gt[positive], reduction="sum")
    torch.testing.assert_close(out["loss_reg"], expected / (labels >= 0).sum())
    roi_logits, roi_labels, _, _ = _roi_inputs(40)
    out = fast_rcnn_loss(roi_logits, roi_labels, pred_boxes, gt, reg_loss=detloss.giou_loss)
    positive = roi_labels < 4
    expected = detloss.giou_loss(pred_boxes[positive], gt[positive], reduction="sum") / 40
    torch.testing.assert_close(out["loss_reg"], expected)


LOSSES: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "rpn": lambda x, y, p, t: rpn_loss(x, y, p, t),
    "fast_rcnn": lambda x, y, p, t: fast_rcnn_loss(x, y, p, t),
}


def _inputs(name: str, n: int, seed: int = 0):
    return _rpn_inputs(n, seed) if name == "rpn" else _roi_inputs(n, seed=seed)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_no_positives_and_empty_batches_give_connected_zeros(name: str) -> None:
    logits, labels, pred, target = _inputs(name, 20)
    background = 0 if name == "rpn" else 4
    for labels_, n in ((torch.full_like(labels, background), 20), (labels[:0], 0)):
        x = logits[:n].clone().requires_grad_(True)
        p = pred[:n].clone().requires_grad_(True)
        out = LOSSES[name](x, labels_, p, target[:n])
        assert out["loss_reg"].item() == 0.0
        (out["loss_cls"] + out["loss_reg"]).backward()
        assert p.grad is not None
        assert (p.grad == 0).all()
        assert x.grad is not None
        assert torch.isfinite(x.grad).all()
    if name == "rpn":
        ignored = rpn_loss(logits, torch.full_like(labels, -1), pred, target)
        assert ignored["loss_cls"].item() == 0.0
        assert ignored["loss_reg"].item() == 0.0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_fullgraph_compile_and_gradcheck(name: str) -> None:
    fn = LOSSES[name]
    compiled = torch.compile(fn, fullgraph=True, backend="eager", dynamic=True)
    for n in (9, 4):
        inputs = _inputs(name, n, seed=n)
        eager, got = fn(*inputs), compiled(*inputs)
        for key in ("loss_cls", "loss_reg"):
            torch.testing.assert_close(got[key], eager[key])
    logits, labels, pred, target = _inputs(name, 8)

    def total(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        out = fn(x, labels, p, target)
        return out["loss_cls"] + out["loss_reg"]

    assert torch.autograd.gradcheck(
        total, (logits.clone().requires_grad_(True), pred.clone().requires_grad_(True))
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y, p, t: rpn_loss(x, y, p, t, normalizer="per-image"),
        lambda x, y, p, t: rpn_loss(x, y, p, t, normalizer="paper"),
        lambda x, y, p, t: rpn_loss(x, y, p, t, beta=0.1, reg_loss=detloss.l1_loss),
        lambda x, y, p, t: rpn_loss(x, y, p, t, beta=0.1, sigma=3.0),
        lambda x, y, p, t: rpn_loss(x, y, p[:3], t),
        lambda x, y, p, t: fast_rcnn_loss(x.view(-1, 5), y[::5], p[::5], t[::5], background="none"),
        lambda x, y, p, t: fast_rcnn_loss(x.view(-1, 5), y[::5], p[::5].repeat(1, 3), t[::5]),
    ],
)
def test_bad_arguments_raise(call: Callable[..., object]) -> None:
    logits, labels, pred, target = _rpn_inputs()
    with pytest.raises(ValueError, match="must|needs|give beta|not with"):
        call(logits, labels, pred, target)


def test_floating_labels_are_a_type_error() -> None:
    logits, labels, pred, target = _rpn_inputs()
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        rpn_loss(logits, labels.double(), pred, target)
