"""The Faster R-CNN multitask loss (Ren et al., Faster R-CNN, NeurIPS 2015) for the RPN and the RoI head.

::

    L = 1/N_cls * sum_i L_cls(p_i, p_i*)  +  lambda * 1/N_reg * sum_i p_i* L_reg(t_i, t_i*)

``L_reg`` of one box is the sum over its four coordinates (any element-wise loss) or the box loss
itself (an IoU-family loss on decoded boxes). The two functions return dicts. Positives are selected by multiplying with a 0/1
mask, never by indexing, so shapes never depend on values: both losses run under
``torch.compile(fullgraph=True)`` without a host sync, and a batch without positives gives an
exact ``0`` regression loss that is still connected to the graph.

The regression loss is any callable ``reg_loss(pred, target, *, weight=, reduction=, avg_factor=)``
(every detloss loss has that signature); it is called with ``reduction="none"``. For an IoU-family
loss pass decoded boxes as ``pred_deltas`` / ``target_deltas``, e.g.
``DeltaXYWHCoder().decode(anchors, deltas)`` and the ground-truth boxes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from detloss.ce import binary_cross_entropy, cross_entropy
from detloss.checks import (
    check_factor,
    check_floating,
    check_label_tensor,
    check_label_values,
    check_number,
    check_tensor,
)
from detloss.reduction import weight_reduce_loss
from detloss.regression import resolve_beta, smooth_l1_loss

__all__ = ["fast_rcnn_loss", "rpn_loss"]

RegLoss = Callable[..., Tensor]
NORMALIZERS: tuple[str, ...] = ("sampled", "paper")
BACKGROUNDS: tuple[str, ...] = ("last", "first")


def _regression_loss(
    reg_loss: RegLoss | None, beta: float | None, sigma: float | None, default_beta: float
) -> RegLoss:
    if reg_loss is None:
        b = default_beta if beta is None and sigma is None else resolve_beta(beta, sigma)
        return functools.partial(smooth_l1_loss, beta=b)
    if beta is not None or sigma is not None:
        raise ValueError("beta / sigma configure the default smooth L1; not with a custom reg_loss")
    if not callable(reg_loss):
        raise TypeError(f"reg_loss must be callable, got {type(reg_loss).__name__}")
    return reg_loss


def _positive_box_sum(
    reg_loss: RegLoss, pred: Tensor, target: Tensor, positive: Tensor, normalizer: Tensor | float
) -> Tensor:
    """``sum_i p_i* L_reg(t_i, t_i*) / normalizer``; element-wise losses are summed per box."""
    per_box = reg_loss(pred, target, reduction="none")
    if per_box.dim() > 1:
        per_box = per_box.sum(dim=tuple(range(1, per_box.dim())))
    return weight_reduce_loss(per_box, positive.to(per_box.dtype), "mean", normalizer)


def _check_deltas(pred: object, target: object, n: int, name: str) -> tuple[Tensor, Tensor]:
    p = check_floating(pred, "pred_deltas")
    t = check_tensor(target, "target_deltas")
    if p.dim() != 2 or p.shape[0] != n or t.dim() != 2 or t.shape[0] != n:
        raise ValueError(
            f"pred_deltas and target_deltas must be 2-D with one row per {name} ({n}), got "
            f"{tuple(p.shape)} and {tuple(t.shape)}"
        )
    return p, t


def rpn_loss(
    objectness_logits: Tensor,
    labels: Tensor,
    pred_deltas: Tensor,
    target_deltas: Tensor,
    *,
    beta: float | None = None,
    sigma: float | None = None,
    lambda_: float | None = None,
    normalizer: str = "sampled",
    num_anchor_locations: int | Tensor | None = None,
    reg_loss: RegLoss | None = None,
    check_labels: bool = False,
) -> dict[str, Tensor]:
    """The RPN loss of Faster R-CNN over the anchors of a batch (flattened over images).

    Args:
        objectness_logits: ``(A,)`` objectness logits.
        labels: ``(A,)`` integers: 1 positive, 0 negative, -1 ignored (not sampled). Both terms
            read any other value by the same rule: above 0 positive, below 0 ignored.
        pred_deltas, target_deltas: ``(A, 4)`` box deltas (or decoded boxes for an IoU loss).
        beta / sigma: the default smooth L1's ``beta`` (default 1/9) or Caffe's ``sigma`` (3).
        lambda_: weight of the regression term, in [0, 1e30]; default 1 ("sampled") or 10 ("paper").
        normalizer: "sampled" (``N_cls = N_reg`` = number of labelled anchors; torchvision,
            mmdetection, detectron2 up to its constant) or "paper" (``N_cls`` = number of labelled
            anchors, ``N_reg = num_anchor_locations``, about 2400 in the paper).
        num_anchor_locations: feature-map positions (H * W summed over images) for "paper".
        reg_loss: the regression loss (default smooth L1 with ``beta``).
        check_labels: raise ``ValueError`` unless every label is -1, 0 or 1 (reads the labels:
            a host synchronisation).

    Returns:
        ``{"loss_cls": ..., "loss_reg": ...}`` (``loss_reg`` already multiplied by ``lambda_``).
        Both normalisers are clamped at 1, so an empty or all-ignored batch gives exact zeros.

    Caffe (py-faster-rcnn): ``sigma=3`` with one image per batch is its ``SmoothL1Loss`` layer with
    inside weights = positives and outside weights = 1 / number of labelled anchors.
    """
    x = check_floating(objectness_logits, "objectness_logits")
    y = check_label_tensor(labels)
    if x.dim() != 1 or y.shape != x.shape:
        raise ValueError(
            "objectness_logits must be (A,) and labels integer (A,), got "
            f"{tuple(x.shape)} and {tuple(y.shape)} {y.dtype}"
        )
    pred, target = _check_deltas(pred_deltas, target_deltas, x.shape[0], "anchor")
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
    loss_fn = _regression_loss(reg_loss, beta, sigma, 1.0 / 9.0)
    default_lambda = 10.0 if normalizer == "paper" else 1.0
    lam = default_lambda if lambda_ is None else check_factor(lambda_, "lambda_")

    if check_labels:
        check_label_values(y, (y >= -1) & (y <= 1), "-1 (ignored), 0 (negative) or 1 (positive)")
    num_labelled = (y >= 0).sum().clamp_min(1).to(torch.float32)
    loss_cls = binary_cross_entropy(x, y, ignore_index=-1, avg_factor=num_labelled)
    if normalizer == "paper":
        if num_anchor_locations is None:
            raise ValueError('normalizer="paper" needs num_anchor_locations (N_reg)')
        if isinstance(num_anchor_locations, Tensor):
            if num_anchor_locations.numel() != 1 or num_anchor_locations.dtype == torch.bool:
                raise ValueError(
                    "num_anchor_locations must be a number or a one-element tensor, got shape "
                    f"{tuple(num_anchor_locations.shape)} {num_anchor_locations.dtype}"
                )
            n_reg: Tensor | float = num_anchor_locations.reshape(()).to(torch.float32).clamp_min(1)
        else:
            locations = check_number(
                num_anchor_locations, "num_anchor_locations", low=0, strict=False
            )
            n_reg = max(locations, 1.0)
    else:
        n_reg = num_labelled
    loss_reg = _positive_box_sum(loss_fn, pred, target, y > 0, n_reg)
    return {"loss_cls": loss_cls, "loss_reg": lam * loss_reg}


def fast_rcnn_loss(
    class_logits: Tensor,
    labels: Tensor,
    pred_deltas: Tensor,
    target_deltas: Tensor,
    *,
    background: str = "last",
    beta: float | None = None,
    sigma: float | None = None,
    lambda_: float = 1.0,
    reg_loss: RegLoss | None = None,
    check_labels: bool = False,
    **ce_kwargs: Any,
) -> dict[str, Tensor]:
    """The Fast R-CNN head loss over the sampled RoIs of a batch.

    ``loss_cls`` is the softmax cross-entropy over the ``K`` classes (background included),
    averaged over the ``R`` sampled RoIs; ``loss_reg`` is ``lambda_`` times the regression loss of
    the ground-truth class's deltas of the foreground RoIs, summed and divided by ``R`` (torchvision,
    detectron2, py-faster-rcnn; mmdetection divides by the number of RoIs with a box target).

    Args:
        class_logits: ``(R, K)`` logits, background included.
        labels: ``(R,)`` int64 class indices in ``[0, K)``; the background's (``K - 1`` or 0) and
            cross-entropy's ``ignore_index`` (default -100) give no regression term, and
            ``ignore_index`` no classification term. Other values are errors of
            :func:`detloss.cross_entropy`; the regression term ignores them.
        pred_deltas: ``(R, 4)`` class-agnostic or ``(R, 4 F)`` class-specific deltas, ``F`` the
            classes that own a delta slot (``K - 1`` for "last", ``K`` for "first").
        target_deltas: ``(R, 4)`` regression targets (or decoded boxes for an IoU loss).
        background: where the background class is: "last" (label ``K - 1``; mmdetection,
            detectron2, deltas ``(R, 4 (K - 1))``) or "first" (label 0; torchvision, py-faster-rcnn,
            deltas ``(R, 4 K)`` including the background's unused slot).
        beta / sigma: the default smooth L1's parameter (default ``beta=1``; torchvision 1/9,
            detectron2 0).
        lambda_: weight of the regression term, in [0, 1e30].
        reg_loss: the regression loss (default smooth L1 with ``beta``).
        check_labels: raise ``ValueError`` unless every label is in ``[0, K)`` or is
            ``ignore_index`` (reads the labels: a host synchronisation).
        ce_kwargs: passed to :func:`detloss.cross_entropy` (``class_weight``, ``label_smoothing``...).

    Returns:
        ``{"loss_cls": ..., "loss_reg": ...}``.
    """
    x = check_floating(class_logits, "class_logits")
    y = check_label_tensor(labels)
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(
            "class_logits must be (R, K) and labels integer (R,), got "
            f"{tuple(x.shape)} and {tuple(y.shape)} {y.dtype}"
        )
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    pred, target = _check_deltas(pred_deltas, target_deltas, x.shape[0], "RoI")
    num_rois, num_classes = x.shape
    slots = num_classes - 1 if background == "last" else num_classes
    if pred.shape[1] not in (4, 4 * slots) or target.shape[1] != 4:
        raise ValueError(
            f"pred_deltas must be (R, 4) or (R, {4 * slots}) and target_deltas (R, 4) for "
            f"{num_classes} classes with background {background!r}, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    loss_fn = _regression_loss(reg_loss, beta, sigma, 1.0)
    lam = check_factor(lambda_, "lambda_")

    if check_labels:
        ignore = ce_kwargs.get("ignore_index", -100)
        in_range = ((y >= 0) & (y < num_classes)) | (y == ignore)
        check_label_values(y, in_range, f"in [0, {num_classes}) or {ignore} (ignored)")
    foreground = (y >= 0) & (y < num_classes)
    positive = foreground & (y != (num_classes - 1 if background == "last" else 0))
    if pred.shape[1] != 4:
        # Gather the ground-truth class's 4 deltas (background rows pick slot 0, masked below).
        index = torch.where(positive, y, 0).view(-1, 1, 1).expand(num_rois, 1, 4)
        pred = pred.view(num_rois, slots, 4).gather(1, index).squeeze(1)
    loss_cls = cross_entropy(x, y, **ce_kwargs)
    loss_reg = _positive_box_sum(loss_fn, pred, target, positive, max(num_rois, 1))
    return {"loss_cls": loss_cls, "loss_reg": lam * loss_reg}
