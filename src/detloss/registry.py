"""The loss registry: build any detloss module from an mmdetection-style config dict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

LOSSES: dict[str, type[nn.Module]] = {}

M = TypeVar("M", bound=type[nn.Module])


def register_loss(name: str | None = None, *, force: bool = False) -> Callable[[M], M]:
    """Class decorator that registers a loss module under ``name`` (default: the class name).

    Re-registering a name raises ``KeyError`` unless ``force=True``.
    """

    def register(cls: M) -> M:
        key = cls.__name__ if name is None else name
        if key in LOSSES and not force:
            raise KeyError(f"a loss named {key!r} is already registered ({LOSSES[key].__name__})")
        LOSSES[key] = cls
        return cls

    return register


def build_loss(cfg: Mapping[str, Any]) -> nn.Module:
    """Build a registered loss from a config such as ``{"type": "SmoothL1Loss", "beta": 1/9}``.

    The other keys are the module's constructor arguments, named as in mmdetection, so an
    mmdetection ``loss_bbox=dict(...)`` config builds the detloss loss unchanged. A ``type`` with
    mmdetection 3's scope prefix (``"mmdet.SmoothL1Loss"``) is accepted.
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"a loss config must be a mapping, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise KeyError(f"a loss config needs a 'type' key, got keys {sorted(cfg)}")
    kwargs = dict(cfg)
    type_name = kwargs.pop("type")
    if isinstance(type_name, type) and issubclass(type_name, nn.Module):
        return type_name(**kwargs)
    key = str(type_name).removeprefix("mmdet.")
    if key not in LOSSES:
        raise KeyError(f"unknown loss type {type_name!r}; registered: {sorted(LOSSES)}")
    return LOSSES[key](**kwargs)
