"""Benchmark harness behind ``detloss bench``: forward + backward of each loss family, side by side.

For every family (realistic detection sizes) and device it times, in one process and on the same
inputs: detloss eager, detloss fused (the ``"compile"`` backend), fvcore and PyTorch native where
they have the loss, a textbook formulation written the usual way, and the streaming floor -- one
``torch.addcmul`` over three tensors of the input's size, forward only: the cost of reading the
inputs and writing one result, below which no element-wise loss can go.

Timing: ``warmup`` calls (the first one, which compiles the fused path, is reported on its own),
then the median over ``repeats`` calls, each ``loss = fn(inputs); loss.backward()`` with CUDA
synchronised; the timed calls of a family's implementations are interleaved round by round. Peak
extra memory: the peak of the bytes held by tensors allocated during one call, above what was
allocated before it -- on CUDA ``torch.cuda.max_memory_allocated`` minus the memory allocated before
the call, on CPU the maximum of the running sum of torch's own allocation and free events
(``torch.profiler`` with ``profile_memory=True``) in time order. Both include the input gradients
the backward creates, and on CPU the figure is the same in every run of the same call.

On CUDA a call's time at these sizes is mostly the host's: launching the kernels takes longer than
running them. Each CUDA row therefore also gives the device's own time, ``kernel_ms``: the
durations of the call's kernels and copies on the GPU (``torch.profiler``), the mean of
:data:`KERNEL_CALLS` calls, which is what the streaming floor bounds.

fvcore is optional (``bench`` extra); a detloss loss that does not exist yet is skipped with a note.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.profiler import profile
from torch.autograd.profiler_util import MEMORY_EVENT_NAME

import detloss
from detloss.backend import use_backend

Inputs = dict[str, Any]
LossFn = Callable[[Inputs], Tensor]
MakeInputs = Callable[[int, torch.device, torch.Generator], Inputs]

FLOOR = "streaming floor"
EAGER = "detloss eager"
FUSED = "detloss fused"
FVCORE = "fvcore"
NATIVE = "torch native"
TEXTBOOK = "textbook"


@dataclass(frozen=True)
class Impl:
    """One implementation of a family's loss: ``fn(inputs)`` returns the scalar loss."""

    name: str
    fn: LossFn
    backend: str = "eager"
    backward: bool = True
    compiles: bool = False


@dataclass(frozen=True)
class Family:
    """A loss at a realistic size: ``n`` items of ``shape`` (``quick_n`` with ``--quick``)."""

    name: str
    title: str
    n: int
    quick_n: int
    shape: tuple[int, ...]
    make: MakeInputs
    impls: list[Impl]
    missing: str = ""


@dataclass(frozen=True)
class Timing:
    """Seconds: the first call, and the median and minimum of the timed repeats."""

    first_s: float
    median_s: float
    min_s: float


@dataclass(frozen=True)
class Row:
    """One implementation of one family on one device (``status`` "ok" or "skipped")."""

    family: str
    impl: str
    device: str
    shape: list[int]
    status: str
    note: str = ""
    median_ms: float | None = None
    min_ms: float | None = None
    first_call_ms: float | None = None
    peak_extra_bytes: int | None = None
    input_bytes: int = 0
    kernel_ms: float | None = None


@dataclass(frozen=True)
class Target:
    """One of issue 5's targets: ``value`` (a ratio, or seconds) compared with ``bound``."""

    name: str
    family: str
    value: float | None
    op: str
    bound: float

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.bound if self.op == "<=" else self.value >= self.bound


@dataclass
class Report:
    """A benchmark run: settings and measurements; :meth:`to_json` is the ``--json`` schema."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    def targets(self) -> list[Target]:
        return check_targets(self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "detloss-bench/1",
            "meta": self.meta,
            "results": [asdict(row) for row in self.rows],
            "targets": [{**asdict(t), "met": t.met} for t in self.targets()],
        }


# ----------------------------------------------------------------------------------------------
# Inputs


def _boxes(n: int, device: torch.device, g: torch.Generator) -> Tensor:
    """``n`` valid xyxy boxes: corners in [0, 512), sizes in [4, 132)."""
    xy = torch.rand(n, 2, generator=g) * 512
    wh = torch.rand(n, 2, generator=g) * 128 + 4
    return torch.cat([xy, xy + wh], dim=1).to(device)


def _floor_inputs(like: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    shape = like.shape
    return tuple(torch.rand(shape, generator=g).to(like.device) for _ in range(3))  # type: ignore[return-value]


def make_regression(n: int, device: torch.device, g: torch.Generator) -> Inputs:
    """Box deltas ``(n, 4)``: prediction, target, per-coordinate weight (mmdetection's bbox_weights)."""
    pred = (torch.randn(n, 4, generator=g) * 2).to(device).requires_grad_(True)
    target = torch.randn(n, 4, generator=g).to(device)
    weight = (torch.rand(n, 4, generator=g) < 0.75).float().to(device)
    return {
        "pred": pred,
        "target": target,
        "weight": weight,
        "avg_factor": float(max(n, 1)),
        "floor": _floor_inputs(pred, g),
    }


def make_box_pairs(n: int, device: torch.device, g: torch.Generator) -> Inputs:
    """``n`` (predicted, ground-truth) xyxy box pairs; the prediction a jittered ground truth."""
    target = _boxes(n, device, g)
    centre = (target[:, :2] + target[:, 2:]) / 2 + torch.randn(n, 2, generator=g).to(device) * 8
    size = (target[:, 2:] - target[:, :2]) * torch.exp(torch.randn(n, 2, generator=g) * 0.3).to(
        device
    )
    pred = torch.cat([centre - size / 2, centre + size / 2], dim=1).requires_grad_(True)
    pred_rows = pred.detach().t().contiguous().requires_grad_(True)
    return {
        "pred": pred,
        "target": target,
        "pred_rows": pred_rows,
        "target_rows": target.t().contiguous(),
        "floor": _floor_inputs(pred, g),
    }


def make_focal(n: int, device: torch.device, g: torch.Generator, classes: int = 80) -> Inputs:
    """Logits ``(n, classes)`` and one-hot float targets; 1 anchor in 10 is positive."""
    logits = torch.randn(n, classes, generator=g).to(device).requires_grad_(True)
    labels = torch.randint(0, classes, (n,), generator=g)
    positive = torch.rand(n, generator=g) < 0.1
    targets = torch.zeros(n, classes)
    targets[positive.nonzero().squeeze(1), labels[positive]] = 1.0
    return {
        "logits": logits,
        "targets": targets.to(device),
        "avg_factor": float(max(int(positive.sum()), 1)),
        "floor": _floor_inputs(logits, g),
    }


def make_classes(n: int, device: torch.device, g: torch.Generator, classes: int = 81) -> Inputs:
    """Logits ``(n, classes)`` and int64 class labels (the last class is background)."""
    logits = torch.randn(n, classes, generator=g).to(device).requires_grad_(True)
    labels = torch.randint(0, classes, (n,), generator=g).to(device)
    return {"logits": logits, "labels": labels, "floor": _floor_inputs(logits, g)}


# ----------------------------------------------------------------------------------------------
# Reference formulations ("textbook": the usual chain of element-wise ops)


def textbook_smooth_l1(
    pred: Tensor, target: Tensor, weight: Tensor, beta: float, avg_factor: float
) -> Tensor:
    """Weighted Smooth L1 written the usual way: abs, where, mul."""
    diff = torch.abs(pred - target)
    loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return (loss * weight).sum() / avg_factor


def textbook_iou_loss(pred: Tensor, target: Tensor, kind: str, dim: int = -1) -> Tensor:
    """Mean GIoU or CIoU loss written the usual way, coordinates taken along ``dim``.

    ``dim=-1`` reads (N, 4) boxes as four strided columns; ``dim=0`` reads (4, N) coordinate-major
    boxes as four contiguous rows. CIoU as detectron2: alpha without gradient, eps in its denominator.
    """
    eps = 1e-7
    px1, py1, px2, py2 = pred.unbind(dim)
    tx1, ty1, tx2, ty2 = target.unbind(dim)
    pw, ph, tw, th = px2 - px1, py2 - py1, tx2 - tx1, ty2 - ty1
    iw = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0)
    ih = (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(min=0)
    inter = iw * ih
    union = pw * ph + tw * th - inter
    iou = inter / (union + eps)
    cw = torch.max(px2, tx2) - torch.min(px1, tx1)
    ch = torch.max(py2, ty2) - torch.min(py1, ty1)
    if kind == "giou":
        enclosing = cw * ch
        return (1 - iou + (enclosing - union) / (enclosing + eps)).mean()
    c2 = cw**2 + ch**2 + eps
    rho2 = ((px1 + px2 - tx1 - tx2) ** 2 + (py1 + py2 - ty1 - ty2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return (1 - iou + rho2 / c2 + alpha * v).mean()


def textbook_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Softmax cross-entropy written the usual way: log_softmax, gather, mean."""
    return -logits.log_softmax(dim=1).gather(1, labels[:, None]).mean()


def _floor(inputs: Inputs) -> Tensor:
    a, b, c = inputs["floor"]
    return torch.addcmul(a, b, c)


def _fvcore() -> Any:
    try:
        import fvcore.nn
    except ImportError:
        return None
    return fvcore.nn


_compiled_textbook: dict[str, Callable[..., Tensor]] = {}


def _compiled(name: str, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    if name not in _compiled_textbook:
        _compiled_textbook[name] = torch.compile(fn, dynamic=True)
    return _compiled_textbook[name]


# ----------------------------------------------------------------------------------------------
# Families


def _detloss_pair(name: str, call: Callable[[Callable[..., Tensor], Inputs], Tensor]) -> list[Impl]:
    fn = getattr(detloss, name, None)
    if fn is None:
        return []
    return [
        Impl(EAGER, lambda x: call(fn, x)),
        Impl(FUSED, lambda x: call(fn, x), backend="compile", compiles=True),
    ]


def build_families() -> list[Family]:
    """Every benchmarked family, with the implementations available in this environment."""
    fv = _fvcore()
    beta = 1 / 9

    def smooth_l1(fn: Callable[..., Tensor], x: Inputs) -> Tensor:
        return fn(x["pred"], x["target"], beta, weight=x["weight"], avg_factor=x["avg_factor"])

    regression = _detloss_pair("smooth_l1_loss", smooth_l1)
    if fv is not None:
        regression.append(
            Impl(
                FVCORE,
                lambda x: (
                    (fv.smooth_l1_loss(x["pred"], x["target"], beta, "none") * x["weight"]).sum()
                    / x["avg_factor"]
                ),
            )
        )
    regression += [
        Impl(
            NATIVE,
            lambda x: (
                (
                    F.smooth_l1_loss(x["pred"], x["target"], reduction="none", beta=beta)
                    * x["weight"]
                ).sum()
                / x["avg_factor"]
            ),
        ),
        Impl(
            TEXTBOOK,
            lambda x: textbook_smooth_l1(
                x["pred"], x["target"], x["weight"], beta, x["avg_factor"]
            ),
        ),
    ]

    def box_loss(fn: Callable[..., Tensor], x: Inputs) -> Tensor:
        return fn(x["pred"], x["target"])

    giou = _detloss_pair("giou_loss", box_loss)
    if fv is not None:
        giou.append(Impl(FVCORE, lambda x: fv.giou_loss(x["pred"], x["target"], reduction="mean")))
    giou.append(Impl(TEXTBOOK, lambda x: textbook_iou_loss(x["pred"], x["target"], "giou")))
    ciou = _detloss_pair("ciou_loss", box_loss)
    ciou.append(Impl(TEXTBOOK, lambda x: textbook_iou_loss(x["pred"], x["target"], "ciou")))

    layout = [
        Impl(
            "textbook GIoU, (N, 4) columns",
            lambda x: textbook_iou_loss(x["pred"], x["target"], "giou", dim=-1),
        ),
        Impl(
            "textbook GIoU, (4, N) rows",
            lambda x: textbook_iou_loss(x["pred_rows"], x["target_rows"], "giou", dim=0),
        ),
        Impl(
            "compiled GIoU, (N, 4) columns",
            lambda x: _compiled("columns", textbook_iou_loss)(x["pred"], x["target"], "giou", -1),
            compiles=True,
        ),
        Impl(
            "compiled GIoU, (4, N) rows",
            lambda x: _compiled("rows", textbook_iou_loss)(
                x["pred_rows"], x["target_rows"], "giou", 0
            ),
            compiles=True,
        ),
    ]

    def focal(fn: Callable[..., Tensor], x: Inputs) -> Tensor:
        return fn(x["logits"], x["targets"], 0.25, 2.0, avg_factor=x["avg_factor"])

    focal_impls = _detloss_pair("sigmoid_focal_loss", focal)
    if fv is not None:
        focal_impls.append(
            Impl(
                FVCORE,
                lambda x: (
                    fv.sigmoid_focal_loss(x["logits"], x["targets"], 0.25, 2.0, "sum")
                    / x["avg_factor"]
                ),
            )
        )

    def cross_entropy(fn: Callable[..., Tensor], x: Inputs) -> Tensor:
        return fn(x["logits"], x["labels"])

    ce = _detloss_pair("cross_entropy", cross_entropy)
    ce += [
        Impl(NATIVE, lambda x: F.cross_entropy(x["logits"], x["labels"])),
        Impl(TEXTBOOK, lambda x: textbook_cross_entropy(x["logits"], x["labels"])),
    ]

    floor = Impl(FLOOR, _floor, backward=False)
    families = [
        (
            "smooth_l1",
            "weighted Smooth L1, beta=1/9, sum/N",
            1_000_000,
            (4,),
            make_regression,
            regression,
            "smooth_l1_loss",
        ),
        (
            "giou",
            "GIoU loss, xyxy box pairs, mean",
            1_000_000,
            (4,),
            make_box_pairs,
            giou,
            "giou_loss",
        ),
        (
            "ciou",
            "CIoU loss, xyxy box pairs, mean",
            1_000_000,
            (4,),
            make_box_pairs,
            ciou,
            "ciou_loss",
        ),
        (
            "box_layout",
            "GIoU on (N, 4) columns vs (4, N) rows",
            1_000_000,
            (4,),
            make_box_pairs,
            layout,
            "",
        ),
        (
            "focal",
            "sigmoid focal loss, alpha=0.25, gamma=2, sum/num_pos",
            100_000,
            (80,),
            make_focal,
            focal_impls,
            "sigmoid_focal_loss",
        ),
        (
            "cross_entropy",
            "softmax cross-entropy, 81 classes, mean",
            100_000,
            (81,),
            make_classes,
            ce,
            "cross_entropy",
        ),
    ]
    return [
        Family(
            name,
            title,
            n,
            max(n // 256, 256),
            shape,
            make,
            [*impls, floor],
            missing=f"detloss.{fn_name} is not available"
            if fn_name and not hasattr(detloss, fn_name)
            else "",
        )
        for name, title, n, shape, make, impls, fn_name in families
    ]


# ----------------------------------------------------------------------------------------------
# Measurement


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _leaves(inputs: Inputs) -> list[Tensor]:
    return [t for t in inputs.values() if isinstance(t, Tensor) and t.requires_grad]


def _call(impl: Impl, inputs: Inputs, device: torch.device) -> float:
    """One forward (+ backward) in seconds, input gradients cleared first."""
    for leaf in _leaves(inputs):
        leaf.grad = None
    _sync(device)
    start = time.perf_counter()
    with use_backend(impl.backend):
        loss = impl.fn(inputs)
        if impl.backward:
            torch.autograd.backward(loss)
    _sync(device)
    return time.perf_counter() - start


def time_impls(
    impls: Sequence[Impl], inputs: Inputs, device: torch.device, warmup: int, repeats: int
) -> list[Timing]:
    """Each implementation's first call and ``warmup - 1`` more untimed calls, then ``repeats``
    timed rounds that call every implementation once in turn, so that a change in the machine's
    load during the run (other processes) falls on all of them alike."""
    firsts = []
    for impl in impls:
        firsts.append(_call(impl, inputs, device))
        for _ in range(warmup - 1):
            _call(impl, inputs, device)
    times: list[list[float]] = [[] for _ in impls]
    for _ in range(max(repeats, 1)):
        for impl, impl_times in zip(impls, times, strict=True):
            impl_times.append(_call(impl, inputs, device))
    return [
        Timing(first, statistics.median(t), min(t)) for first, t in zip(firsts, times, strict=True)
    ]


CUDA_MEMORY = "torch.cuda.max_memory_allocated minus the memory allocated before the call"
CPU_MEMORY = (
    "peak bytes of the live tensors allocated during the call, "
    "from torch.profiler's allocation and free events"
)


def memory_method(device: torch.device) -> str:
    """How :func:`peak_extra_bytes` measures on ``device`` ("" where it cannot)."""
    return {"cuda": CUDA_MEMORY, "cpu": CPU_MEMORY}.get(device.type, "")


def _quiet_kineto() -> None:
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # else kineto prints start/stop on stderr


def _cpu_peak_bytes(run: Callable[[], object]) -> int:
    """Peak of the live bytes of the CPU tensors that ``run()`` allocates, above the start.

    Unlike the process's resident set (which moves with where the C allocator places freed memory),
    torch's allocation events give the same figure for the same call in every run. A free of a
    tensor allocated before profiling started emits no event, so the running sum starts at 0.
    """
    _quiet_kineto()
    with profile(use_kineto=True, profile_memory=True) as prof:
        run()
    events = sorted(
        (e for e in prof.kineto_results.events() if e.name() == MEMORY_EVENT_NAME),
        key=lambda e: e.start_ns() if hasattr(e, "start_ns") else e.start_us() * 1000,  # torch 2.2
    )
    sizes: list[int] = [e.nbytes() for e in events]  # + allocated, - freed
    return max(itertools.accumulate(sizes, initial=0))


def peak_extra_bytes(impl: Impl, inputs: Inputs, device: torch.device) -> int | None:
    """Peak memory above the resting level during one call (``None`` where not measurable)."""
    for leaf in _leaves(inputs):
        leaf.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _call(impl, inputs, device)
        return torch.cuda.max_memory_allocated(device) - base
    if not memory_method(device):
        return None
    return _cpu_peak_bytes(lambda: _call(impl, inputs, device))


KERNEL_CALLS = 5


def kernel_ms(impl: Impl, inputs: Inputs, device: torch.device) -> float | None:
    """Milliseconds of GPU work (kernels and copies) in one call; ``None`` off CUDA."""
    if device.type != "cuda":
        return None
    _quiet_kineto()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(KERNEL_CALLS):
            _call(impl, inputs, device)
    device_us: float = sum(e.device_time_total for e in prof.key_averages())
    return device_us / 1e3 / KERNEL_CALLS


def _input_bytes(inputs: Inputs) -> int:
    main = inputs["floor"][0]
    return int(main.numel() * main.element_size())


def run_family(
    family: Family,
    device: torch.device,
    *,
    quick: bool = False,
    fused: bool = True,
    warmup: int = 3,
    repeats: int = 15,
    seed: int = 0,
) -> list[Row]:
    """Measure every implementation of ``family`` on ``device``, in the catalogue's order."""
    n = family.quick_n if quick else family.n
    shape = [n, *family.shape]
    if family.missing:
        return [Row(family.name, "*", str(device), shape, "skipped", family.missing)]
    inputs = family.make(n, device, torch.Generator().manual_seed(seed))
    size = _input_bytes(inputs)
    measured = [impl for impl in family.impls if fused or not impl.compiles]
    timings = dict(
        zip(measured, time_impls(measured, inputs, device, warmup, repeats), strict=True)
    )
    rows = []
    for impl in family.impls:
        timing = timings.get(impl)
        if timing is None:
            rows.append(Row(family.name, impl.name, str(device), shape, "skipped", "--no-fused"))
            continue
        rows.append(
            Row(
                family.name,
                impl.name,
                str(device),
                shape,
                "ok",
                median_ms=timing.median_s * 1e3,
                min_ms=timing.min_s * 1e3,
                first_call_ms=timing.first_s * 1e3,
                peak_extra_bytes=peak_extra_bytes(impl, inputs, device),
                input_bytes=size,
                kernel_ms=kernel_ms(impl, inputs, device),
            )
        )
    return rows


def run_benchmark(
    families: Sequence[Family],
    devices: Sequence[torch.device],
    *,
    quick: bool = False,
    fused: bool = True,
    warmup: int = 3,
    repeats: int = 15,
    on_row: Callable[[Row], None] | None = None,
) -> Report:
    """Run ``families`` on ``devices``; ``on_row`` sees each row as it is measured."""
    report = Report(
        meta={
            "detloss": detloss.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "devices": [str(d) for d in devices],
            "quick": quick,
            "fused": fused,
            "warmup": warmup,
            "repeats": repeats,
            "dtype": "float32",
            "timing": "forward+backward; median_ms and min_ms over the repeats after warm-up, "
            "first_call_ms the first call (compilation for fused rows)",
            "memory": {str(d): memory_method(d) for d in devices},
            "loadavg_before": list(os.getloadavg()),
        }
    )
    for device in devices:
        for family in families:
            for row in run_family(
                family, device, quick=quick, fused=fused, warmup=warmup, repeats=repeats
            ):
                report.rows.append(row)
                if on_row is not None:
                    on_row(row)
    report.meta["loadavg_after"] = list(os.getloadavg())
    return report


# ----------------------------------------------------------------------------------------------
# Ratios and targets


def find(rows: Sequence[Row], family: str, impl: str, device: str | None = None) -> Row | None:
    """The measured row of ``impl`` in ``family`` (on ``device``, default the first device)."""
    for row in rows:
        if (
            row.family == family
            and row.impl == impl
            and row.status == "ok"
            and (device is None or row.device == device)
        ):
            return row
    return None


def time_ratio(rows: Sequence[Row], family: str, slow: str, fast: str) -> float | None:
    """``slow``'s median time over ``fast``'s (how many times faster ``fast`` is)."""
    a, b = find(rows, family, slow), find(rows, family, fast)
    if a is None or b is None or a.median_ms is None or b.median_ms is None or b.median_ms == 0:
        return None
    return a.median_ms / b.median_ms


def memory_ratio(rows: Sequence[Row], family: str, impl: str) -> float | None:
    """Peak extra memory of ``impl`` in units of the family's main input tensor."""
    row = find(rows, family, impl)
    if row is None or row.peak_extra_bytes is None or row.input_bytes == 0:
        return None
    return row.peak_extra_bytes / row.input_bytes


def reference_impl(family: str) -> str:
    """The implementation a family's speed-ups are quoted against in the table."""
    return FVCORE if family in ("giou", "focal") else TEXTBOOK


def check_targets(rows: Sequence[Row]) -> list[Target]:
    """Issue 5's targets, evaluated on ``rows`` (value ``None`` where a row is missing)."""
    first_calls = [r.first_call_ms for r in rows if r.impl == FUSED and r.first_call_ms]
    return [
        Target(
            "fused / streaming floor",
            "smooth_l1",
            time_ratio(rows, "smooth_l1", FUSED, FLOOR),
            "<=",
            2.5,
        ),
        Target(
            "textbook / fused",
            "smooth_l1",
            time_ratio(rows, "smooth_l1", TEXTBOOK, FUSED),
            ">=",
            15.0,
        ),
        Target(
            "native*weight / fused",
            "smooth_l1",
            time_ratio(rows, "smooth_l1", NATIVE, FUSED),
            ">=",
            2.5,
        ),
        Target(
            "textbook / eager",
            "smooth_l1",
            time_ratio(rows, "smooth_l1", TEXTBOOK, EAGER),
            ">=",
            5.0,
        ),
        Target("fvcore / fused", "focal", time_ratio(rows, "focal", FVCORE, FUSED), ">=", 10.0),
        Target("fvcore / eager", "focal", time_ratio(rows, "focal", FVCORE, EAGER), ">=", 2.0),
        Target(
            "eager peak memory / logits", "focal", memory_ratio(rows, "focal", EAGER), "<=", 2.0
        ),
        Target(
            "fused peak memory / logits", "focal", memory_ratio(rows, "focal", FUSED), "<=", 2.0
        ),
        Target("fvcore / fused", "giou", time_ratio(rows, "giou", FVCORE, FUSED), ">=", 8.0),
        Target("fvcore / eager", "giou", time_ratio(rows, "giou", FVCORE, EAGER), ">=", 2.0),
        Target("textbook / fused", "ciou", time_ratio(rows, "ciou", TEXTBOOK, FUSED), ">=", 8.0),
        Target("textbook / eager", "ciou", time_ratio(rows, "ciou", TEXTBOOK, EAGER), ">=", 2.0),
        Target(
            "first fused call, slowest (s)",
            "*",
            max(first_calls) / 1e3 if first_calls else None,
            "<=",
            15.0,
        ),
    ]
