"""Shared test configuration."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    """Each test starts with an empty torch.compile cache, so no test inherits recompile budget."""
    torch._dynamo.reset()
