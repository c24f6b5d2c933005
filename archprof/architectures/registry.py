"""One registry of architectures: ``build_model(name, **options)`` over builder functions.

Each builder declares its options and their defaults in its own signature, beside the model it
builds (timm's ``create_model`` pattern); the registry only validates names and forwards options.

The built-in models are also described here, as data (``BUILTIN_MODELS``), so that naming and
listing them (``archprof list``, the command line's help and completion) imports neither torch nor
the architecture modules; a module is imported when one of its models is built. Registering a
built-in whose description or defaults differ from its row here is an error, so the two cannot drift.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


@dataclass(frozen=True)
class BuiltinModel:
    module: str  # the module whose @register_model registers it
    description: str
    defaults: dict[str, Any]


_RESNET_DEFAULTS = dict(
    norm="bn", stride_in_1x1=False, groups=1, width_per_group=64, dcn_stages=(), modulated_dcn=False,
    deformable_groups=1, freeze_at=0, stages="C5", backbone=False, num_classes=1000, resolution=224,
)
_RESNET_OPTIONS = "seed-backbone options: norm, stride_in_1x1, ResNeXt groups, deformable stages, C4/C5/FPN"
_DETECTOR_DEFAULTS = dict(
    preset="seed", backbone="resnet50", backbone_options=None, levels="P3-P7", extra_from="p5", head_channels=256,
    head_depth=4, norm="gn", num_classes=None,
)
_PRESETS = "preset 'seed' (the FCOS code base) or 'torchvision' ({}); None: as the preset sets it"

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "fcos": BuiltinModel(
        "archprof.architectures.detectors",
        "FCOS: backbone + FPN + shared GN towers with class, box and centerness outputs per level; "
        + _PRESETS.format("fcos_resnet50_fpn"),
        {**_DETECTOR_DEFAULTS, "centerness": None, "scales": None, "box_activation": None, "resolution": (800, 1333)},
    ),
    "mobilenet_v1": BuiltinModel(
        "archprof.architectures.mobilenet_v1",
        "MobileNet V1 (paper Table 1); width multiplier alpha, resolution multiplier",
        dict(width=1.0, resolution=224, num_classes=1000),
    ),
    "mobilenet_v2": BuiltinModel(
        "archprof.architectures.mobilenet_v2",
        "MobileNet V2 (paper Table 2, torchvision layout); width multiplier, resolution, detection backbone",
        dict(width=1.0, resolution=224, num_classes=1000, backbone=False),
    ),
    **{
        f"resnet{depth}": BuiltinModel(
            "archprof.architectures.resnet", f"ResNet-{depth} ({block}s {counts}); {_RESNET_OPTIONS}", _RESNET_DEFAULTS
        )
        for depth, block, counts in [
            (18, "basicblock", [2, 2, 2, 2]), (34, "basicblock", [3, 4, 6, 3]), (50, "bottleneck", [3, 4, 6, 3]),
            (101, "bottleneck", [3, 4, 23, 3]), (152, "bottleneck", [3, 8, 36, 3]),
        ]
    },
    "retinanet": BuiltinModel(
        "archprof.architectures.detectors",
        "RetinaNet: backbone + FPN + shared towers with A x classes and A x 4 outputs per level; "
        + _PRESETS.format("retinanet_resnet50_fpn"),
        {**_DETECTOR_DEFAULTS, "extra_from": None, "norm": "none", "num_anchors": 9, "resolution": (800, 1333)},
    ),
}
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
            raise RuntimeError(f"built-in model {name!r} has no row in BUILTIN_MODELS (archprof/architectures/registry.py)")
        return
    if (description, defaults) != (builtin.description, builtin.defaults):
        raise RuntimeError(
            f"built-in model {name!r} is registered with description {description!r} and defaults {defaults}; "
            f"its row in BUILTIN_MODELS (archprof/architectures/registry.py) says {builtin.description!r} and "
            f"{builtin.defaults}: make them agree"
        )


def list_models() -> list[str]:
    """The names of every registered architecture, sorted (without importing any of them)."""
    return sorted({*BUILTIN_MODELS, *_REGISTRY})


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
    raise ValueError(f"unknown model {name!r}{hint} (known: {', '.join(known)})")


def model_entry(name: str) -> ModelEntry:
    """``name``'s registry entry with its builder (imports the module of a built-in model)."""
    if name not in _REGISTRY:
        model_info(name)  # an unknown name: the error with the closest names
        importlib.import_module(BUILTIN_MODELS[name].module)  # its @register_model registers it
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
    import torch

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

