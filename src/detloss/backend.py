"""Execution backends: every public functional loss runs eagerly or through ``torch.compile``.

There is one definition of each loss (plain PyTorch). ``@fusable`` wraps it so that, at call
time, the active backend decides how it runs:

* ``"eager"`` (default): the definition as written;
* ``"compile"``: the same definition through ``torch.compile(dynamic=True)`` with
  :data:`INDUCTOR_OPTIONS`; inductor fuses the element-wise chain, forward and backward, into a few
  kernels (C++ on CPU, Triton on CUDA).

Compiled functions are cached per loss and per *call structure*: which arguments are tensors or
``None`` and the values of string, bool and tuple arguments (``reduction``, ``box_format``, ...).
Each entry compiles its own copy of the definition, so it has its own torch.compile cache and
recompile budget: sizes (other than 0 and 1) and int/float arguments such as ``avg_factor`` are
symbolic and never recompile; a new value of a parameter the loss branches on (``beta``) adds a
guarded graph to its entry (at most ``torch._dynamo.config.recompile_limit``, then eager).

If compiling is impossible (no C++ compiler, unsupported platform or Python), detloss warns once
and runs eagerly from then on. An error in the caller's input is told apart from a compiler
failure by running the loss eagerly: if that raises too, its error is the one raised.

The fused path inherits one restriction of ``torch.compile``: its backward reuses the memory of
the tensors saved for it ("donated buffers"), so a second backward through the same fused loss
(``retain_graph=True``) raises; the eager backend allows it, as does
``torch._functorch.config.donated_buffer = False``.

Choose with :func:`set_backend`, the :func:`use_backend` context manager, or the environment
variable ``DETLOSS_BACKEND`` read at import. The choice is read at every call, so functions and
modules imported or built earlier follow it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import types
import warnings
from collections.abc import Callable, Hashable, Iterator
from typing import Any, ParamSpec, TypeVar, cast

import torch
from torch import Tensor

BACKENDS: tuple[str, ...] = ("eager", "compile")

P = ParamSpec("P")
R = TypeVar("R")


class _State:
    backend: str = "eager"
    compile_failed: bool = False


_state = _State()
_compiled: dict[tuple[object, ...], Callable[..., Any]] = {}
INDUCTOR_OPTIONS: dict[str, object] = {"cpp.dynamic_threads": True}
"""Inductor settings of detloss's compiled losses. ``cpp.dynamic_threads``: a C++ kernel asks
OpenMP for its threads when it runs. Without it inductor decides from the sizes of the call that
compiles a loss whether each loop runs in parallel, and later calls that pass the same guards reuse
that code: with 16 threads, Smooth L1 first called on 2000 x 4 values ran serial loops at 1M x 4
(``docs/benchmarks.md``, "The first call's sizes")."""
_compile: Callable[[Callable[..., Any]], Callable[..., Any]] = functools.partial(
    torch.compile, dynamic=True, options=INDUCTOR_OPTIONS
)
FUSABLE: dict[str, Callable[..., Any]] = {}
"""Every function decorated with :func:`fusable`, by name."""


def _check_backend(name: object) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


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


def _static(value: object) -> object:
    """What of an argument selects the compiled entry: its value, except tensors and numbers."""
    if isinstance(value, torch.Tensor):
        return torch.Tensor
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return type(value)  # symbolic under dynamic=True (avg_factor changes every step)
    if isinstance(value, (tuple, list)):
        return tuple(_static(item) for item in value)
    return value if isinstance(value, Hashable) else type(value)


def call_key(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[object, ...]:
    """The compile-cache key of the call ``fn(*args, **kwargs)``."""
    return (
        fn,
        tuple(_static(a) for a in args),
        tuple((name, _static(v)) for name, v in kwargs.items()),
    )


def _copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    # torch.compile keeps its cache on the code object: a copy of it gives this entry its own.
    function = cast(types.FunctionType, fn)
    clone = types.FunctionType(
        function.__code__.replace(),
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    clone.__kwdefaults__ = function.__kwdefaults__
    return functools.update_wrapper(clone, fn)


def compiled_version(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[..., Any]:
    """The cached ``torch.compile`` of ``fn`` for this call's structure (created on first use)."""
    key = call_key(fn, args, kwargs)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compile(_copy(fn))
        _compiled[key] = compiled
    return compiled


def clear_compile_cache() -> None:
    """Forget every compiled loss (torch's on-disk caches survive and make recompiling fast)."""
    _compiled.clear()


def _compile_failed(fn: Callable[..., Any], err: Exception) -> None:
    _state.compile_failed = True
    warnings.warn(
        f"detloss: torch.compile of {fn.__name__} failed ({type(err).__name__}: "
        f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); "
        "running every loss eagerly from now on",
        RuntimeWarning,
        stacklevel=3,
    )


is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", None) or (
    torch._dynamo.is_compiling
)
"""Whether ``torch.compile`` is tracing the caller (``torch.compiler.is_compiling``; torch 2.2 has
only ``torch._dynamo``'s)."""


_OUT_OF_MEMORY: type[Exception] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def fresh_output(result: Tensor) -> Tensor:
    """A custom autograd Function's forward result; under ``torch.compile`` a copy, which inductor
    writes in the loop that computes the result (no extra pass).

    torch 2.11 (not 2.13) silently gives a zero gradient to a compiled Function whose result was
    last written by an in-place op; the copy is a fresh tensor.
    """
    return result.clone() if is_compiling() else result


def fusable(fn: Callable[P, R]) -> Callable[P, R]:
    """Make ``fn`` follow the active backend at call time."""

    @functools.wraps(fn)
    def dispatch(*args: P.args, **kwargs: P.kwargs) -> R:
        if _state.backend == "eager" or _state.compile_failed or is_compiling():
            return fn(*args, **kwargs)
        try:
            return cast(R, compiled_version(fn, args, kwargs)(*args, **kwargs))
        except (ValueError, TypeError, KeyError, _OUT_OF_MEMORY):
            raise
        except Exception as err:  # a compiler failure or the caller's error: eager tells
            result = fn(*args, **kwargs)  # the caller's error raises here, from the eager code
            _compile_failed(fn, err)
            return result

    # Each loss gets its own copy of the wrapper's code, so that torch.compile applied directly to
    # several public losses keeps a separate cache (and recompile budget) for each.
    own = cast(Callable[P, R], _copy(dispatch))
    FUSABLE[fn.__name__] = own
    return own


set_backend(os.environ.get("DETLOSS_BACKEND", "eager"))
