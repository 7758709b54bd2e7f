"""Catalogue entries for the knowledge-distillation loss (see ``tests/catalogue.py``)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import positive
from tests.catalogue import LossCase


def _logit_pair(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    student = torch.randn(n, 7, generator=g, dtype=torch.float64) * 4
    teacher = torch.randn(n, 7, generator=g, dtype=torch.float64) * 4
    return student.to(dtype), teacher.to(dtype)


DISTILLATION_CASES = [
    LossCase("kd_kl_div", detloss.knowledge_distillation_kl_div_loss, _logit_pair, scaled=(0, 1)),
    LossCase(
        "kd_kl_div_t2_teacher_gradient",
        detloss.knowledge_distillation_kl_div_loss,
        _logit_pair,
        {"T": 2.0, "detach_target": False},
        grad_args=(0, 1),
        scaled=(0, 1),
    ),
]

DISTILLATION_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "knowledge_distillation_kl_div_loss": {"T": positive},
}
"""Per loss, the parameters the property suite draws at extreme values."""
