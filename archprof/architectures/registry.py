"""One registry of architectures: ``build_model(name, **options)`` over builder functions.

Each builder declares its options and their defaults in its own signature, beside the model it
builds (timm's ``create_model`` pattern); the registry only validates names and forwards options.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder`` under ``name``; its keyword-only parameters are the model's options."""

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        defaults = {
            p.name: p.default
            for p in inspect.signature(builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        _REGISTRY[name] = ModelEntry(name, builder, description, defaults)
        return builder

    return register


def list_models() -> list[str]:
    """The names of every registered architecture, sorted."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _load_builtin_models()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def build_model(name: str, *, device: str | torch.device = "cpu", **options: Any) -> nn.Module:
    """Build the registered architecture ``name`` with ``options`` on ``device``.

    ``device="meta"`` builds the module tree with shapes but no weight memory, which is all a
    profile needs. Unknown names and options raise ``ValueError`` naming the valid choices.
    """
    entry = model_entry(name)
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        raise ValueError(
            f"{name} has no option {', '.join(unknown)} (options: {', '.join(entry.defaults)})"
        )
    try:
        with torch.device(device):
            model = entry.builder(**options)
    except ValueError:
        raise
    except (RuntimeError, OverflowError, TypeError) as err:  # e.g. a layer too large to index
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot build {name} with {options}: {message}") from err
    model.eval()
    model.archprof_name = name
    return model


def _load_builtin_models() -> None:
    # Importing the architecture modules runs their @register_model decorators.
    from archprof.architectures import detectors, mobilenet_v1, mobilenet_v2, resnet  # noqa: F401
