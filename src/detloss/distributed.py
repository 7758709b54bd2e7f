"""Loss normalisation across distributed ranks.

Dense detection heads normalise by the number of positives. Dividing each rank's loss by its own
count makes the gradient depend on how the batch was split over the ranks. With

    avg_factor = global_avg_factor(num_pos)      # mean of num_pos over the W ranks, clamped at 1

and DistributedDataParallel averaging the gradients over the ranks, the gradient is
``1/W sum_r grad(S_r) / (P / W) = grad(sum_r S_r) / P`` (``S_r`` the summed loss of rank ``r``, ``P``
the total number of positives): exactly the gradient of the concatenated batch on one process.
mmdetection's dense heads (FCOS, ATSS, GFL, ...) do this with ``reduce_mean``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from detloss.checks import check_number


def global_avg_factor(value: float | Tensor, *, min_value: float = 1.0) -> Tensor:
    """The mean of ``value`` over all ranks of the default process group, clamped at ``min_value``.

    Args:
        value: a number or a scalar tensor (e.g. the number of positives of this rank); a tensor
            keeps its device (it must suit the backend: CUDA for NCCL).
        min_value: lower clamp, so that a batch with no positives anywhere divides by it and not by
            0 (mmdetection's heads use 1).

    Returns:
        A float32 (or float64, for a float64 input) scalar tensor; without an initialised process
        group, ``value`` clamped. The all-reduce is collective: every rank must call it.
    """
    floor = check_number(min_value, "min_value", low=float("-inf"), strict=True)
    tensor = torch.as_tensor(value)
    if tensor.numel() != 1:
        raise ValueError(f"value must be a scalar, got shape {tuple(tensor.shape)}")
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    tensor = tensor.detach().reshape(()).to(dtype=dtype, copy=True)
    if _group_initialised():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor = tensor / dist.get_world_size()
    return tensor.clamp_min(floor)


def _group_initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """The number of ranks of the default process group (1 without an initialised group)."""
    return dist.get_world_size() if _group_initialised() else 1


def sum_over_ranks(statistics: Tensor) -> Tensor:
    """``statistics`` summed over the ranks of the default process group (a copy, all-reduced).

    The stateful losses (GHM-C/GHM-R's gradient-density histogram, Seesaw's class counts, EQLv2's
    accumulated gradients) sum one step's statistics with this before updating their state, so that
    every rank holds the state of the concatenated batch. Without an initialised process group it
    returns ``statistics`` unchanged. Collective: every rank must call it.
    """
    if not _group_initialised():
        return statistics
    total = statistics.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
