"""The box-regression simulation of the DIoU paper, run with detloss's own losses.

Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
AAAI 2020, section "Simulation Experiment" (the authors' MATLAB script ``test_1715k.m``):

* 7 targets of area 1 centred at (10, 10), aspect ratios w:h in :data:`ASPECT_RATIOS`;
* ``P`` anchor centres uniform by area in the disk of radius 3 around (10, 10)
  (``r = 3 sqrt(u1)``, ``theta = 2 pi u2``); at each centre, anchors of area ``s`` for ``s`` in
  :data:`SCALES`, each with the 7 aspect ratios; every anchor regressed to every target, so
  ``P * 7 * 7 * 7`` cases (``P = 5000``: 1,715,000 cases);
* each case is a box ``B = (cx, cy, w, h)`` moved by gradient descent for ``T`` iterations::

      B <- B - eta * (2 - IoU(B, target)) * dL/dB,   eta = 0.1, then 0.01 from 0.8 T, 0.001 from 0.9 T

  where ``L`` is summed over cases (so every case gets its own gradient) and ``dL/dB`` is autograd's
  exact gradient of the detloss loss evaluated on the (cx, cy, w, h) boxes;
* the error after each iteration is ``sum over cases of |cx - cx_gt| + |cy - cy_gt| + |w - w_gt| +
  |h - h_gt|``.

All cases are one ``(N, 4)`` tensor, so one iteration is one batched forward and backward pass.
This module is pure torch; the ``detloss simulate`` command (``detloss.cli.simulate``) adds the
progress bar, table and figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

import detloss

ASPECT_RATIOS: tuple[float, ...] = (1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0)
"""The w:h ratios of the targets and of the anchors."""
SCALES: tuple[float, ...] = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)
"""Anchor areas relative to the (unit) target area."""
CENTRE: float = 10.0
RADIUS: float = 3.0
CASES_PER_POINT: int = len(ASPECT_RATIOS) * len(SCALES) * len(ASPECT_RATIOS)
FULL_POINTS: int = 5000
"""The paper's number of anchor centres (1,715,000 cases)."""
DEFAULT_POINTS: int = 60
"""The ``detloss simulate`` default: all nine losses in well under a minute on a 2-core CPU."""
DEFAULT_ITERATIONS: int = 200
ETA_SCHEDULE: tuple[tuple[float, float], ...] = ((0.8, 0.1), (0.9, 0.01), (1.0, 0.001))
"""``(fraction of the iterations, eta)``: eta applies to iterations below that fraction."""


def detloss_function(name: str) -> Callable[..., Tensor]:
    """``detloss.<name>``, looked up at call time; ``ValueError`` if this detloss lacks it."""
    fn = getattr(detloss, name, None)
    if fn is None:
        raise ValueError(f"the simulation needs detloss.{name}, which this detloss lacks")
    return fn  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SimLoss:
    """A loss as the simulation uses it: ``detloss.<function>(pred, target, **kwargs)`` summed."""

    name: str
    function: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return detloss_function(self.function)(pred, target, **self.kwargs, reduction="sum")


_BOX = {"box_format": "cxcywh"}
SIM_LOSSES: dict[str, SimLoss] = {
    loss.name: loss
    for loss in (
        SimLoss("iou", "iou_loss", {"mode": "linear", **_BOX}),  # the paper's 1 - IoU
        SimLoss("giou", "giou_loss", _BOX),
        SimLoss("diou", "diou_loss", _BOX),
        SimLoss("ciou", "ciou_loss", _BOX),
        SimLoss("eiou", "efficient_iou_loss", _BOX),  # Efficient IoU
        SimLoss("siou", "siou_loss", _BOX),
        # The coordinate losses act on the raw (cx, cy, w, h).
        SimLoss("smooth_l1", "smooth_l1_loss", {"beta": 1.0}),
        SimLoss("l1", "l1_loss"),
        SimLoss("l2", "mse_loss"),
    )
}
"""The simulation's losses by command-line name."""
DEFAULT_LOSSES: tuple[str, ...] = tuple(SIM_LOSSES)


def parse_losses(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Loss names from ``"iou,giou"`` or a sequence; ``ValueError`` listing the valid names."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in SIM_LOSSES]
    if unknown or not names:
        given = ", ".join(unknown) if unknown else "none"
        raise ValueError(f"unknown loss name(s): {given}; valid names: {', '.join(SIM_LOSSES)}")
    return tuple(dict.fromkeys(names))


def eta_at(iteration: int, iterations: int) -> float:
    """The step size of 0-based ``iteration`` out of ``iterations`` (paper: 160 / 20 / 20 of 200)."""
    for fraction, eta in ETA_SCHEDULE:
        if iteration < round(fraction * iterations):
            return eta
    return ETA_SCHEDULE[-1][1]


def box_sizes(area: Tensor, ratio: Tensor) -> tuple[Tensor, Tensor]:
    """Width and height of boxes of ``area`` and aspect ratio ``ratio = w / h``."""
    return torch.sqrt(area * ratio), torch.sqrt(area / ratio)


@dataclass(frozen=True)
class Cases:
    """The regression cases: case ``n`` starts at ``anchors[n]`` and aims at ``targets[n]``.

    ``anchors`` and ``targets`` are ``(N, 4)`` (cx, cy, w, h), ``N = P * 343``, ordered as the
    paper's loops: anchor centre, target ratio, anchor scale, anchor ratio (so case ``n`` belongs to
    centre ``n // 343``). ``centres`` is ``(P, 2)``.
    """

    anchors: Tensor
    targets: Tensor
    centres: Tensor
    seed: int = 0

    @property
    def count(self) -> int:
        return self.anchors.shape[0]

    @property
    def points(self) -> int:
        return self.centres.shape[0]


def make_cases(
    points: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Cases:
    """The ``points * 343`` cases of the simulation, anchor centres drawn with ``seed``."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be a positive integer, got {points!r}")
    generator = torch.Generator().manual_seed(seed)
    # Uniform by area in the disk: r = R sqrt(u) (the paper's rr = 3*sqrt(rand)).
    radius = RADIUS * torch.sqrt(torch.rand(points, generator=generator, dtype=torch.float64))
    theta = 2 * math.pi * torch.rand(points, generator=generator, dtype=torch.float64)
    centres = CENTRE + torch.stack((radius * torch.cos(theta), radius * torch.sin(theta)), -1)

    ratios = torch.tensor(ASPECT_RATIOS, dtype=torch.float64)
    scales = torch.tensor(SCALES, dtype=torch.float64)
    target_wh = torch.stack(box_sizes(torch.ones(()), ratios), -1)  # (7, 2)
    anchor_wh = torch.stack(box_sizes(scales[:, None], ratios[None, :]), -1)  # (7 scales, 7, 2)

    shape = (points, len(ASPECT_RATIOS), len(SCALES), len(ASPECT_RATIOS), 2)
    anchor_centre = centres[:, None, None, None, :].expand(shape)
    anchor_size = anchor_wh[None, None].expand(shape)
    target_centre = torch.full(shape, CENTRE, dtype=torch.float64)
    target_size = target_wh[None, :, None, None, :].expand(shape)
    anchors = torch.cat((anchor_centre, anchor_size), -1).reshape(-1, 4)
    targets = torch.cat((target_centre, target_size), -1).reshape(-1, 4)
    return Cases(
        anchors.to(device=device, dtype=dtype),
        targets.to(device=device, dtype=dtype),
        centres.to(device=device, dtype=dtype),
        seed,
    )


def total_error(boxes: Tensor, targets: Tensor) -> Tensor:
    """Per-case error ``|cx - cx_gt| + |cy - cy_gt| + |w - w_gt| + |h - h_gt|``, shape ``(N,)``."""
    return (boxes - targets).abs().sum(-1)


@dataclass(frozen=True)
class LossRun:
    """One loss's simulation: ``error[k]`` is the total error after iteration ``k + 1``."""

    name: str
    error: list[float]
    final_case_error: Tensor
    seconds: float

    def final_point_error(self, points: int) -> Tensor:
        """Final error summed over each anchor centre's 343 cases, shape ``(P,)``."""
        return self.final_case_error.reshape(points, -1).sum(-1)

    def iterations_to(self, fraction: float, initial: float) -> int | None:
        """The first iteration count whose error is ``<= fraction * initial``; None if never."""
        for k, value in enumerate(self.error, start=1):
            if value <= fraction * initial:
                return k
        return None


def regress(
    cases: Cases,
    loss: SimLoss,
    iterations: int = DEFAULT_ITERATIONS,
    *,
    on_iteration: Callable[[int], None] | None = None,
) -> LossRun:
    """Run the paper's gradient descent on every case at once with ``loss``.

    ``on_iteration(k)`` is called after each iteration (for a progress bar); nothing in the loop
    reads tensor values back to the host, so on a GPU the iterations queue without synchronising.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    box_iou = detloss_function("box_iou")
    targets = cases.targets
    boxes = cases.anchors.clone()
    errors = torch.empty(iterations, dtype=torch.float64, device=boxes.device)
    start = time.perf_counter()
    for k in range(iterations):
        leaf = boxes.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(leaf, targets), leaf)
        with torch.no_grad():
            iou = box_iou(boxes, targets, "iou", aligned=True, box_format="cxcywh")
            boxes = boxes - eta_at(k, iterations) * (2 - iou).unsqueeze(-1) * grad
            errors[k] = total_error(boxes, targets).sum(dtype=torch.float64)
        if on_iteration is not None:
            on_iteration(k)
    final = total_error(boxes, targets)
    history = errors.tolist()
    return LossRun(loss.name, history, final.cpu(), time.perf_counter() - start)


def results_dict(cases: Cases, iterations: int, runs: Sequence[LossRun]) -> dict[str, Any]:
    """The ``results.json`` content.

    ``{"cases": N, "points": P, "iterations": T, "seed": int, "dtype": str, "initial_error": float,
    "centres": [[x, y], ...], "losses": {name: {"error": [T floats], "final_total_error": float,
    "final_mean_error": float, "iterations_to_10pct": int | None, "seconds": float,
    "point_final_error": [P floats]}}}``.
    """
    initial = float(total_error(cases.anchors, cases.targets).sum(dtype=torch.float64))
    losses: dict[str, Any] = {}
    for run in runs:
        final_total = float(run.final_case_error.sum(dtype=torch.float64))
        losses[run.name] = {
            "error": run.error,
            "final_total_error": final_total,
            "final_mean_error": final_total / cases.count,
            "iterations_to_10pct": run.iterations_to(0.1, initial),
            "seconds": run.seconds,
            "point_final_error": run.final_point_error(cases.points).tolist(),
        }
    return {
        "cases": cases.count,
        "points": cases.points,
        "iterations": iterations,
        "seed": cases.seed,
        "dtype": str(cases.anchors.dtype).removeprefix("torch."),
        "initial_error": initial,
        "centres": cases.centres.cpu().tolist(),
        "losses": losses,
    }
