"""Execution backends: every public functional loss runs eagerly or through ``torch.compile``.

There is one definition of each loss (plain PyTorch). ``@fusable`` wraps it so that, at call
time, the active backend decides how it runs:

* ``"eager"`` (default): the definition as written;
* ``"compile"``: the same definition through ``torch.compile(dynamic=True)``, compiled once per
  loss and reused for every shape (inductor fuses the element-wise chain into one kernel: C++ on
  CPU, Triton on CUDA). If compilation fails, detloss warns once and runs eagerly from then on.

Choose with :func:`set_backend`, the :func:`use_backend` context manager, or the environment
variable ``DETLOSS_BACKEND`` read at import.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar, cast

import torch

BACKENDS: tuple[str, ...] = ("eager", "compile")

P = ParamSpec("P")
R = TypeVar("R")


class _State:
    backend: str = "eager"
    compile_failed: bool = False


_state = _State()
_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}
FUSABLE: dict[str, Callable[..., Any]] = {}
"""Every function decorated with :func:`fusable`, by name."""


def _check_backend(name: object) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return cast(str, name)


def set_backend(name: str) -> None:
    """Select the backend ("eager" or "compile") for every detloss loss, effective immediately."""
    _state.backend = _check_backend(name)


def get_backend() -> str:
    """The active backend: "eager" or "compile"."""
    return _state.backend


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed code with backend ``name``, restoring the previous one afterwards."""
    previous = _state.backend
    set_backend(name)
    try:
        yield
    finally:
        _state.backend = previous


def _compiled_version(fn: Callable[..., Any]) -> Callable[..., Any]:
    compiled = _compiled.get(fn)
    if compiled is None:
        compiled = torch.compile(fn, dynamic=True)
        _compiled[fn] = compiled
    return compiled


def fusable(fn: Callable[P, R]) -> Callable[P, R]:
    """Make ``fn`` follow the active backend at call time."""

    @functools.wraps(fn)
    def dispatch(*args: P.args, **kwargs: P.kwargs) -> R:
        if (
            _state.backend == "eager"
            or _state.compile_failed
            or torch.compiler.is_compiling()
        ):
            return fn(*args, **kwargs)
        try:
            return cast(R, _compiled_version(fn)(*args, **kwargs))
        except (ValueError, TypeError, KeyError):
            raise
        except Exception as err:  # inductor or the C++ toolchain could not build a kernel
            _state.compile_failed = True
            warnings.warn(
                f"detloss: torch.compile failed ({type(err).__name__}: {err}); "
                "falling back to the eager backend",
                RuntimeWarning,
                stacklevel=2,
            )
            return fn(*args, **kwargs)

    FUSABLE[fn.__name__] = dispatch
    return dispatch


set_backend(os.environ.get("DETLOSS_BACKEND", "eager"))
