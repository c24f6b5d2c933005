"""Display names of the built-in models, as a paper prints them: ResNet-50, MobileNetV2 (1.0, 224).

One mapping from a registered name to a function of the model's config, so every table names a
model the same way; a model outside it (a user factory, a Hugging Face model) keeps its label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _resnet(config: dict[str, Any]) -> str:
    depth = config["depth"]
    if config.get("groups", 1) > 1:  # the ResNeXt paper's naming: ResNeXt-101 (32x8d)
        return f"ResNeXt-{depth} ({config['groups']}x{config['width_per_group']}d)"
    return f"ResNet-{depth}"


def _width(width: Any) -> str:
    w = float(width)
    return f"{w:.1f}" if w.is_integer() else f"{w:g}"  # 1.0, 0.5, 0.35: as the papers print multipliers


def _mobilenet(version: str) -> Callable[[dict[str, Any]], str]:
    # The papers' "1.0 MobileNet-224": width multiplier, then input resolution.
    return lambda config: f"MobileNet{version} ({_width(config['width'])}, {config['resolution']})"


def _detector(kind: str) -> Callable[[dict[str, Any]], str]:
    def name(config: dict[str, Any]) -> str:
        backbone, options = config["backbone"], config.get("backbone_options") or {}
        if backbone.startswith("resnet"):
            shown = _resnet({"depth": int(backbone[len("resnet"):]), **options})
        elif backbone.startswith("mobilenet"):  # the detector sets the resolution: the width alone
            width = options.get("width", 1.0)
            shown = f"MobileNet{backbone[-2:].upper()}" + (f" {_width(width)}" if float(width) != 1.0 else "")
        else:
            shown = backbone
        return f"{kind} ({shown})"

    return name


DISPLAY_NAMES: dict[str, Callable[[dict[str, Any]], str]] = {
    **{f"resnet{depth}": _resnet for depth in (18, 34, 50, 101, 152)},
    "mobilenet_v1": _mobilenet("V1"),
    "mobilenet_v2": _mobilenet("V2"),
    "fcos": _detector("FCOS"),
    "retinanet": _detector("RetinaNet"),
}


def display_name(architecture: str | None, config: dict[str, Any], label: str) -> str:
    """How a paper names the model: from its registered ``architecture`` and ``config``; ``label`` otherwise."""
    if architecture not in DISPLAY_NAMES:
        return label
    try:
        return DISPLAY_NAMES[architecture](config)
    except (KeyError, TypeError, ValueError):  # a config without the fields the name is made of
        return label


def profile_names(profiles: list[Any]) -> list[str]:
    """Each profile's display name, its resolution the one it was traced at (``mobilenet_v2@1x3x160x160``
    is MobileNetV2 (1.0, 160)); profiles whose names would coincide (two variants of one network)
    keep their labels, so a table never shows two columns of one name."""
    names = []
    for p in profiles:
        config = dict(p.config)
        image = next((i.shape for i in p.inputs if len(i.shape) == 4), None)
        if image is not None and "resolution" in config:
            config["resolution"] = image[2] if image[2] == image[3] else f"{image[2]}x{image[3]}"
        names.append(display_name(p.architecture, config, p.model))
    return [p.model if names.count(name) > 1 else name for name, p in zip(names, profiles, strict=True)]
