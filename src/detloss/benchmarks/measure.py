"""Time and peak memory of one forward + backward call of each implementation of a family.

Each implementation runs eagerly and, unless ``compiled=False``, wrapped in
``torch.compile(fn, dynamic=True)``. Its first call (for a compiled one: the compilation) is timed
on its own and excluded. Then come ``rounds`` interleaved rounds: each round times one call of
every implementation of the family, in turn, with ``torch.utils.benchmark.Timer.timeit(1)`` (which
makes two untimed calls first and synchronises an accelerator around its timer), so that a change
in the machine's load falls on all of them alike. A row gives the minimum and the median of the
rounds' times: the minimum is the figure to compare on a machine that other work shares.

Peak extra memory is the peak of the bytes held by tensors that one call allocates, above what
existed before it (the input gradient included): on CUDA ``torch.cuda.max_memory_allocated`` minus
the memory allocated before the call, on CPU the largest running sum, in time order, of the sizes
of torch's own allocation (+) and free (-) events recorded by ``torch.profiler``.
"""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.autograd.profiler import profile
from torch.autograd.profiler_util import MEMORY_EVENT_NAME
from torch.utils.benchmark import Timer

import detloss
from detloss.benchmarks.families import Family, fvcore_version

SCHEMA = "detloss-bench/2"

CPU_MEMORY = "peak running sum of torch.profiler allocation events during one call"
CUDA_MEMORY = "torch.cuda.max_memory_allocated minus torch.cuda.memory_allocated before one call"


@dataclass(frozen=True)
class Row:
    """One implementation of one family, eager or compiled, on one device; times in ms."""

    family: str
    impl: str
    mode: str
    detloss: bool
    device: str
    shape: list[int]
    input_bytes: int
    first_call_ms: float
    min_ms: float
    median_ms: float
    peak_extra_bytes: int


@dataclass
class Report:
    """The settings of a run and its rows; :meth:`to_json` is the ``--json`` document."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "meta": self.meta,
            "rows": [
                {**asdict(row), "vs_fastest_peer": vs_fastest_peer(self.rows, row)}
                for row in self.rows
            ],
        }


def vs_fastest_peer(rows: Sequence[Row], row: Row) -> float | None:
    """``row``'s minimum time over the fastest non-detloss row's of its family, mode and device."""
    peers = [
        r.min_ms
        for r in rows
        if not r.detloss and (r.family, r.mode, r.device) == (row.family, row.mode, row.device)
    ]
    if not peers or min(peers) <= 0:
        return None
    return row.min_ms / min(peers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_peak_bytes(call: Callable[[], None]) -> int:
    """Peak live bytes of the tensors that ``call()`` allocates, from torch's memory events.

    Unlike the process's resident set, which moves with where the C allocator places freed
    memory, these events give the same figure for the same call in every run.
    """
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # else kineto prints on stderr
    with profile(use_kineto=True, profile_memory=True) as prof:
        call()
    events = [e for e in prof.kineto_results.events() if e.name() == MEMORY_EVENT_NAME]
    events.sort(key=lambda e: e.start_ns())
    return int(max(itertools.accumulate((e.nbytes() for e in events), initial=0)))


def peak_extra_bytes(call: Callable[[], None], leaf: torch.Tensor, device: torch.device) -> int:
    """Peak bytes that one ``call()`` holds above what existed before it (``leaf.grad`` cleared)."""
    leaf.grad = None
    if device.type != "cuda":
        return _cpu_peak_bytes(call)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    call()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def memory_method(device: torch.device) -> str:
    """How :func:`peak_extra_bytes` measures on ``device``."""
    return CUDA_MEMORY if device.type == "cuda" else CPU_MEMORY


def _step(fn: Callable[..., torch.Tensor], args: tuple[Any, ...]) -> Callable[[], None]:
    """One training step's worth of the loss: clear the input gradient, forward, backward."""
    leaf = args[0]

    def call() -> None:
        leaf.grad = None
        torch.autograd.backward(fn(*args))

    return call


def _first_call_s(call: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = timeit.default_timer()
    call()
    _sync(device)
    return timeit.default_timer() - start


def run_family(
    family: Family,
    device: torch.device,
    *,
    quick: bool = False,
    compiled: bool = True,
    rounds: int = 30,
    seed: int = 0,
) -> list[Row]:
    """Measure every implementation of ``family`` (eager, then compiled) on ``device``."""
    shape = family.quick_shape if quick else family.shape
    cpu_args = family.make(shape, torch.Generator().manual_seed(seed))
    args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in cpu_args)
    leaf = args[0].requires_grad_(True)
    modes = [("eager", impl, impl.fn) for impl in family.impls]
    if compiled:
        modes += [("compiled", i, torch.compile(i.fn, dynamic=True)) for i in family.impls]
    calls = [_step(fn, args) for _, _, fn in modes]
    firsts = [_first_call_s(call, device) for call in calls]
    threads = torch.get_num_threads()
    timers = [Timer("call()", globals={"call": call}, num_threads=threads) for call in calls]
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for timer, impl_times in zip(timers, times, strict=True):
            impl_times.append(timer.timeit(1).mean)
    return [
        Row(
            family=family.name,
            impl=impl.name,
            mode=mode,
            detloss=impl.detloss,
            device=str(device),
            shape=list(shape),
            input_bytes=leaf.numel() * leaf.element_size(),
            first_call_ms=first * 1e3,
            min_ms=min(impl_times) * 1e3,
            median_ms=statistics.median(impl_times) * 1e3,
            peak_extra_bytes=peak_extra_bytes(call, leaf, device),
        )
        for (mode, impl, _), call, first, impl_times in zip(
            modes, calls, firsts, times, strict=True
        )
    ]


def run(
    families: Sequence[Family],
    device: torch.device,
    *,
    quick: bool = False,
    compiled: bool = True,
    rounds: int = 30,
    on_family: Callable[[Family], None] | None = None,
) -> Report:
    """Measure ``families`` on ``device``; ``on_family`` is told when each one starts."""
    report = Report(
        meta={
            "detloss": detloss.__version__,
            "detloss_file": detloss.__file__,
            "torch": torch.__version__,
            "fvcore": fvcore_version(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "dtype": "float32",
            "quick": quick,
            "compiled": compiled,
            "rounds": rounds,
            "timer": "torch.utils.benchmark.Timer.timeit, forward + backward per call",
            "memory": memory_method(device),
            "inductor_caches_disabled": os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES") == "1",
            "loadavg_before": list(os.getloadavg()),
        }
    )
    for family in families:
        if on_family is not None:
            on_family(family)
        report.rows += run_family(family, device, quick=quick, compiled=compiled, rounds=rounds)
    report.meta["loadavg_after"] = list(os.getloadavg())
    return report
