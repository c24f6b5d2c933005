"""One registry of architectures: ``build_model(name, **options)`` over builder functions.

Each builder declares its options and their defaults: a built-in one as its configuration dataclass
(``archprof/architectures/configs.py``), a user's in its own keyword-only signature (timm's
``create_model`` pattern); the registry only validates names and forwards options.

The built-in models are catalogued in ``configs.BUILTIN_MODELS`` (their configuration, description
and module), which imports no torch: naming and listing them (``archprof list``, the command
line's help and completion) imports no architecture module, and building one imports its module,
whose ``register_builtins`` registers every model the catalogue gives it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archprof.architectures.configs import BUILTIN_MODELS, BuiltinModel
from archprof.errors import SpecError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """What is known of a model without building it: its name, description and options' defaults."""

    name: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEntry(ModelInfo):
    builder: Callable[..., nn.Module] | None = None


_BUILTIN_MODULES = {model.module for model in BUILTIN_MODELS.values()}

_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder`` under ``name``; its keyword-only parameters are the model's options."""

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        defaults = {
            p.name: p.default
            for p in inspect.signature(builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        _check_builtin(name, description, defaults, builder.__module__)
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, description, defaults, builder)
        return builder

    return register


def _check_builtin(name: str, description: str, defaults: dict[str, Any], module: str) -> None:
    builtin = BUILTIN_MODELS.get(name)
    if builtin is None:
        if module in _BUILTIN_MODULES:
            raise RuntimeError(f"built-in model {name!r} has no row in BUILTIN_MODELS (archprof/architectures/configs.py)")
        return
    if (description, defaults) != (builtin.description, builtin.defaults):
        raise RuntimeError(
            f"built-in model {name!r} is registered with description {description!r} and defaults {defaults}; "
            f"its row in BUILTIN_MODELS (archprof/architectures/configs.py) says {builtin.description!r} and "
            f"{builtin.defaults}: make them agree"
        )


def register_builtins(config: type, builder: Callable[[Any], nn.Module]) -> None:
    """Register each built-in model whose row in ``BUILTIN_MODELS`` takes ``config``: its options are
    the configuration's fields (less those its name fixes), and ``builder`` takes the configuration."""
    for name, row in BUILTIN_MODELS.items():
        if row.config is config:
            register_model(name, row.description)(_config_builder(name, row, builder))


def _config_builder(name: str, row: BuiltinModel, builder: Callable[[Any], nn.Module]) -> Callable[..., nn.Module]:
    def build(**options: Any) -> nn.Module:
        return builder(row.config(**row.fixed, **options))

    build.__name__ = build.__qualname__ = name
    build.__module__ = builder.__module__
    build.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in row.defaults.items()]
    )
    return build


def natural_key(name: str) -> list[str | int]:
    """``resnet18`` before ``resnet101``: the digit runs of a name compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models() -> list[str]:
    """The names of every registered architecture in natural order (without importing any of them)."""
    return sorted({*BUILTIN_MODELS, *_REGISTRY}, key=natural_key)


def model_info(name: str) -> ModelInfo:
    """``name``'s description and defaults, without importing torch or the model's module."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[name]
        return ModelInfo(name, builtin.description, dict(builtin.defaults))
    known = list_models()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise SpecError(f"unknown model {name!r}{hint} (known: {', '.join(known)})")


def model_entry(name: str) -> ModelEntry:
    """``name``'s registry entry with its builder (imports the module of a built-in model)."""
    if name not in _REGISTRY:
        model_info(name)  # an unknown name: the error with the closest names
        importlib.import_module(BUILTIN_MODELS[name].module)  # its @register_model registers it
    return _REGISTRY[name]


def build_model(name: str, *, device: str | torch.device = "cpu", **options: Any) -> nn.Module:
    """Build the registered architecture ``name`` with ``options`` on ``device``.

    ``device="meta"`` builds the module tree with shapes but no weight memory, which is all a
    profile needs. Unknown names and options raise ``SpecError`` (a ``ValueError``) naming the valid
    choices.
    """
    entry = model_entry(name)
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        raise SpecError(
            f"{name} has no option {', '.join(unknown)} (options: {', '.join(entry.defaults)})"
        )
    import torch

    try:
        with torch.device(device):
            model = entry.builder(**options)
    except ValueError:
        raise
    except (RuntimeError, OverflowError, TypeError) as err:  # e.g. a layer too large to index
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"cannot build {name} with {options}: {message}") from err
    model.eval()
    model.archprof_name = name
    return model

