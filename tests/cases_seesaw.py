"""Catalogue entries for the Seesaw loss (see ``tests/catalogue.py``).

The compensation factor uses the detached softmax (mmdetection's ``cls_score.detach()``), so it is
held constant in the gradient checks.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

import detloss
from tests.adversarial import nonnegative, positive
from tests.catalogue import LossCase

C = 6
_case = functools.partial(LossCase, detached=("detloss.seesaw._log_compensation",), scaled=(0, 2))


def _inputs(n: int, dtype: torch.dtype, g: torch.Generator) -> tuple[Tensor, ...]:
    logits = torch.randn(n, C, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, C + 1, (n,), generator=g)  # C = background: contributes 0
    counts = torch.randint(0, 500, (C,), generator=g).to(torch.float64)
    return logits.to(dtype), labels, counts.to(dtype)


SEESAW_CASES = [
    _case("seesaw", detloss.seesaw_ce_loss, _inputs),
    LossCase("seesaw_p_only", detloss.seesaw_ce_loss, _inputs, {"p": 1.5, "q": 0.0}, scaled=(0, 2)),
    _case("seesaw_q_only", detloss.seesaw_ce_loss, _inputs, {"p": 0.0, "q": 3.0, "eps": 0.1}),
]

SEESAW_PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "seesaw_ce_loss": {"p": nonnegative, "q": nonnegative, "eps": positive},
}
"""Per loss, the parameters the property suite draws at extreme values."""
