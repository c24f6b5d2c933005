"""Each architecture's options, as one frozen dataclass that imports no torch.

A configuration is the builder's signature (``build_model("resnet50", groups=32)`` builds
``ResNet(ResNetConfig(depth=50, groups=32))``), the model's ``config`` (the profile's, field by
field), the rows ``archprof list`` prints, and the command line's options: each field's metadata
(``option()``) holds its help, its choices and its option name, from which ``archprof resnet``
builds its options. Validation lives in ``__post_init__``, and nothing here imports torch, so the
help, ``list`` and completion stay fast.

``BUILTIN_MODELS`` catalogues the built-in architectures by name -- the configuration each takes,
the fields the name fixes (a ResNet's depth) and the module whose builder registers it -- so that
naming and listing them imports no architecture module; building one imports its module.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple) -> object:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def option(
    default: Any,
    help: str | None = None,
    *,
    choices: tuple = (),
    flag: str | None = None,
    parse: tuple[Callable[[str], Any], str] | None = None,
    optional: bool = False,
) -> Any:
    """A configuration field and what the command line needs to offer it.

    ``help`` defaults to the ``choices`` ("C4, C5 or FPN."); ``flag`` to ``--`` and the field's name
    with dashes (a boolean's may name its off switch too: ``--stride-in-1x1/--stride-in-3x3``);
    ``parse`` reads the option's text into the field's value, with what the text should look
    like; ``optional`` options default to "not given" on the command line (where giving one can
    clash with another option), and their help names the configuration's default.
    """
    if help is None:
        names = [str(c) for c in choices]
        help = f"{', '.join(names[:-1])} or {names[-1]}."
    metadata = dict(help=help, choices=choices, flag=flag, parse=parse, optional=optional)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class CliOption:
    """One configuration field as a command-line option."""

    name: str
    flag: str  # "--depth", or "--on/--off" for a boolean with an off switch
    type: Any  # what the command line reads: int, str, bool, ``int | None`` for an optional one
    default: Any  # the command line's: None for an optional option ("not given"), "" for a parsed one
    help: str
    parse: tuple[Callable[[str], Any], str] | None = None


def cli_options(config: type) -> list[CliOption]:
    """``config``'s fields as command-line options, in the order they are declared."""
    hints = typing.get_type_hints(config)
    options = []
    for f in dataclasses.fields(config):
        meta = f.metadata
        kind, default, help = hints[f.name], f.default, meta["help"]
        if meta["parse"]:
            kind, default = str, ""  # the parser reads "" as the default
        if meta["optional"]:
            kind, default, help = kind | None, None, f"{help[:-1]} (default {f.default})."
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        options.append(CliOption(f.name, flag, kind, default, help, meta["parse"]))
    return options


def defaults_of(config: type, fixed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options a builder over ``config`` takes and their defaults (less the ``fixed`` fields)."""
    return {f.name: f.default for f in dataclasses.fields(config) if f.name not in fixed}


def _number_list(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.replace("+", ",").split(",") if s.strip())


# ResNet ------------------------------------------------------------------------------------------

# Blocks per stage, conv2_x..conv5_x (the ResNet paper's Table 1).
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("BasicBlock", (2, 2, 2, 2)),
    34: ("BasicBlock", (3, 4, 6, 3)),
    50: ("Bottleneck", (3, 4, 6, 3)),
    101: ("Bottleneck", (3, 4, 23, 3)),
    152: ("Bottleneck", (3, 8, 36, 3)),
}

# The seed's conv bodies: "C4" stops after conv4_x, "C5" runs every stage and returns the last,
# "FPN" returns every stage's output (the FPN neck itself is not part of the backbone).
BODIES: dict[str, tuple[int, tuple[bool, ...]]] = {
    "C4": (3, (False, False, True)),
    "C5": (4, (False, False, False, True)),
    "FPN": (4, (True, True, True, True)),
}

NORM_NAMES = ("bn", "frozen_bn", "gn")  # the layers: norm.NORMS
DCN_STAGES = (2, 3, 4, 5)  # conv2_x..conv5_x
FREEZE_AT = (0, 1, 2, 3, 4, 5)  # the seed's FREEZE_CONV_BODY_AT: nothing, the stem, then up to conv{k}_x


@dataclass(frozen=True)
class ResNetConfig:
    """A ResNet of the seed's backbone family (maskrcnn-benchmark / FCOS ``resnet.py``)."""

    depth: int = option(50, choices=tuple(DEPTHS))
    norm: str = option("bn", choices=NORM_NAMES)
    stride_in_1x1: bool = option(
        False, "MSRA stride placement (the seed's default) or torchvision's v1.5.", flag="--stride-in-1x1/--stride-in-3x3"
    )
    groups: int = option(1, "ResNeXt cardinality.")
    width_per_group: int = option(64, "ResNeXt width per group.")
    dcn_stages: tuple[int, ...] = option(
        (), "Stages (2-5) with deformable 3x3 convs, e.g. 3,4,5.", parse=(_number_list, "a list of stage numbers like 3,4,5")
    )
    modulated_dcn: bool = option(False, "Modulated deformable convs (DCNv2).")
    deformable_groups: int = option(1, "Offset groups of each deformable conv (the seed's DEFORMABLE_GROUPS); with --dcn-stages.")
    freeze_at: int = option(0, "Freeze the stem and stages up to N (the seed's FREEZE_CONV_BODY_AT).")
    stages: str = option("C5", choices=tuple(BODIES))
    backbone: bool = option(False, "Stage features only: no pooling, no fc.")
    num_classes: int = option(1000, "Classifier outputs.", optional=True)
    resolution: int = option(224, "Input height and width.", optional=True)

    def __post_init__(self) -> None:
        check_choice("depth", self.depth, tuple(DEPTHS))
        check_choice("norm", self.norm, NORM_NAMES)
        check_choice("stages", self.stages, tuple(BODIES))
        check_positive_int("groups", self.groups)
        check_positive_int("width_per_group", self.width_per_group)
        check_positive_int("deformable_groups", self.deformable_groups)
        check_positive_int("num_classes", self.num_classes)
        check_positive_int("resolution", self.resolution, 32)
        check_choice("freeze_at", self.freeze_at, FREEZE_AT)
        dcn_stages = tuple(sorted(set(self.dcn_stages)))
        for s in dcn_stages:
            check_choice("each of dcn_stages", s, DCN_STAGES)
        object.__setattr__(self, "dcn_stages", dcn_stages)
        if not dcn_stages and (self.modulated_dcn or self.deformable_groups != 1):
            raise ValueError("modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too")
        if self.block == "BasicBlock" and (self.groups != 1 or self.width_per_group != 64 or self.stride_in_1x1):
            raise ValueError(
                f"resnet{self.depth} uses basic blocks: groups, width_per_group and stride_in_1x1 apply to depths 50, 101, 152"
            )
        if max(dcn_stages, default=0) > BODIES[self.stages][0] + 1:
            raise ValueError(f"dcn_stages {list(dcn_stages)} name a stage that stages={self.stages!r} does not build")

    @property
    def block(self) -> str:
        return DEPTHS[self.depth][0]


# MobileNets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MobileNetV1Config:
    """MobileNet V1's two hyper-parameters (the paper's section 3.3 and 3.4) and its classifier."""

    width: float = option(1.0, "Width multiplier alpha.")
    resolution: int = option(224, "Input height and width (the resolution multiplier rho).")
    num_classes: int = option(1000, "Classifier outputs.")

    def __post_init__(self) -> None:
        width = self.width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise ValueError(f"width must be a number in (0, 4], got {width!r}")
        check_positive_int("resolution", self.resolution, 32)
        check_positive_int("num_classes", self.num_classes)


@dataclass(frozen=True)
class MobileNetV2Config(MobileNetV1Config):
    """MobileNet V1's options, and the seed's detection body instead of the classifier."""

    backbone: bool = option(False, "The seed's detection body: features at strides 4 to 32, no last conv, pool or classifier.")


# The catalogue of built-in models ----------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinModel:
    module: str  # the module that registers its builder (register_builtins)
    description: str
    config: type | None = None  # the configuration its builder takes; None: the builder's own signature
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)  # config fields its name sets
    own_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # a builder without a config

    @property
    def defaults(self) -> dict[str, Any]:
        return defaults_of(self.config, tuple(self.fixed)) if self.config else dict(self.own_defaults)


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
        own_defaults={**_DETECTOR_DEFAULTS, "centerness": None, "scales": None, "box_activation": None,
                      "resolution": (800, 1333)},
    ),
    "mobilenet_v1": BuiltinModel(
        "archprof.architectures.mobilenet_v1",
        "MobileNet V1 (paper Table 1); width multiplier alpha, resolution multiplier",
        MobileNetV1Config,
    ),
    "mobilenet_v2": BuiltinModel(
        "archprof.architectures.mobilenet_v2",
        "MobileNet V2 (paper Table 2, torchvision layout); width multiplier, resolution, detection backbone",
        MobileNetV2Config,
    ),
    **{
        f"resnet{depth}": BuiltinModel(
            "archprof.architectures.resnet",
            f"ResNet-{depth} ({block.lower()}s {list(counts)}); {_RESNET_OPTIONS}",
            ResNetConfig,
            {"depth": depth},
        )
        for depth, (block, counts) in DEPTHS.items()
    },
    "retinanet": BuiltinModel(
        "archprof.architectures.detectors",
        "RetinaNet: backbone + FPN + shared towers with A x classes and A x 4 outputs per level; "
        + _PRESETS.format("retinanet_resnet50_fpn"),
        own_defaults={**_DETECTOR_DEFAULTS, "extra_from": None, "norm": "none", "num_anchors": 9,
                      "resolution": (800, 1333)},
    ),
}
