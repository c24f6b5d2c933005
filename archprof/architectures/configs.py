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
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from archprof.errors import ArchprofValueError


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchprofValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple) -> object:
    if value not in choices:
        raise ArchprofValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def option(
    default: Any,
    help: str | None = None,
    *,
    choices: tuple = (),
    flag: str | None = None,
    parse: tuple[Callable[[str], Any], str] | None = None,
    optional: bool = False,
    cli_type: type | None = None,
) -> Any:
    """A configuration field and what the command line needs to offer it.

    ``help`` defaults to the ``choices`` ("C4, C5 or FPN."); ``flag`` to ``--`` and the field's name
    with dashes (a boolean's may name its off switch too: ``--stride-in-1x1/--stride-in-3x3``);
    ``parse`` reads the option's text into the field's value, with what the text should look
    like; ``optional`` options default to "not given" on the command line (where giving one can
    clash with another option), and their help names the configuration's default; ``cli_type`` is
    what the command line reads where the field takes more (``"P3-P7"`` for ``(3, 4, 5, 6, 7)``).
    """
    if help is None:
        names = [str(c) for c in choices]
        help = f"{', '.join(names[:-1])} or {names[-1]}."
    metadata = dict(help=help, choices=choices, flag=flag, parse=parse, optional=optional, cli_type=cli_type)
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


def cli_options(config: type, names: tuple[str, ...] | None = None, given: bool = False) -> list[CliOption]:
    """``config``'s fields (``names``, or all in the order they are declared) as command-line options;
    with ``given`` each defaults to "not given" (None), where the default depends on other options
    (a detector's preset)."""
    hints = typing.get_type_hints(config)
    by_name = {f.name: f for f in dataclasses.fields(config)}
    options = []
    for f in [by_name[n] for n in names] if names is not None else by_name.values():
        meta = f.metadata
        kind, default, help = meta["cli_type"] or hints[f.name], f.default, meta["help"]
        if meta["parse"]:
            kind, default = str, ""  # the parser reads "" as the default
        if meta["optional"]:
            kind, default, help = kind | None, None, f"{help[:-1]} (default {f.default})."
        elif given:
            kind, default = kind | None, None
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
            raise ArchprofValueError("modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too")
        if self.block == "BasicBlock" and (self.groups != 1 or self.width_per_group != 64 or self.stride_in_1x1):
            raise ArchprofValueError(
                f"resnet{self.depth} uses basic blocks: groups, width_per_group and stride_in_1x1 apply to depths 50, 101, 152"
            )
        if max(dcn_stages, default=0) > BODIES[self.stages][0] + 1:
            raise ArchprofValueError(f"dcn_stages {list(dcn_stages)} name a stage that stages={self.stages!r} does not build")

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
            raise ArchprofValueError(f"width must be a number in (0, 4], got {width!r}")
        check_positive_int("resolution", self.resolution, 32)
        check_positive_int("num_classes", self.num_classes)


@dataclass(frozen=True)
class MobileNetV2Config(MobileNetV1Config):
    """MobileNet V1's options, and the seed's detection body instead of the classifier."""

    backbone: bool = option(False, "The seed's detection body: features at strides 4 to 32, no last conv, pool or classifier.")


# Detectors ---------------------------------------------------------------------------------------

BACKBONES = ("resnet50", "resnet101", "resnet152", "mobilenet_v2")
BACKBONE_LEVELS = (2, 3, 4, 5)  # C2..C5: the backbone's stages at strides 4..32
MAX_LEVEL = 7
EXTRA_FROM = ("c5", "p5")  # the input of P6
PRESET_NAMES = ("seed", "torchvision")
HEAD_NORMS = ("gn", "none")
CENTERNESS_ON = ("cls", "reg")
BOX_ACTIVATIONS = ("exp", "relu")
DEFAULT_INPUT = (800, 1333)  # the papers' test scale: shorter side 800, longer side at most 1333

# The options each preset sets; ``None`` in a configuration means "as the preset sets it".
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "fcos": {
        # NUM_CLASSES 81 counts the background; CENTERNESS_ON_REG False; per-level Scale; exp(box).
        "seed": dict(num_classes=80, centerness="cls", scales=True, box_activation="exp"),
        # FCOSRegressionHead: centerness from the regression tower, relu(box), no scales; COCO's 91 ids.
        "torchvision": dict(num_classes=91, centerness="reg", scales=False, box_activation="relu"),
    },
    "retinanet": {
        "seed": dict(num_classes=80, extra_from="c5"),  # RETINANET.USE_C5 True
        "torchvision": dict(num_classes=91, extra_from="p5"),  # LastLevelP6P7(256, 256): P6 from P5
    },
}
# The backbone options each preset gives a ResNet; a MobileNetV2 keeps its own (the seed trains
# its batch norms, and torchvision has no MobileNetV2 FCOS or RetinaNet).
RESNET_PRESETS: dict[str, dict[str, Any]] = {
    # StemWithFixedBatchNorm / BottleneckWithFixedBatchNorm, STRIDE_IN_1X1 True, FREEZE_CONV_BODY_AT 2
    "seed": dict(norm="frozen_bn", stride_in_1x1=True, freeze_at=2),
    # FrozenBatchNorm2d with pretrained weights, the v1.5 stride, trainable_backbone_layers=3
    "torchvision": dict(norm="frozen_bn", stride_in_1x1=False, freeze_at=2),
}
SET_BY_DETECTOR = ("backbone", "stages")  # backbone options the detector itself sets


def parse_levels(levels: object) -> tuple[int, ...]:
    """``"P3-P7"`` or consecutive level numbers such as ``(3, 4, 5, 6, 7)``."""
    if isinstance(levels, str):
        match = re.fullmatch(r"\s*[Pp](\d+)\s*-\s*[Pp](\d+)\s*", levels)
        if not match:
            raise ArchprofValueError(f"levels must be like 'P3-P7' or (3, 4, 5, 6, 7), got {levels!r}")
        levels = tuple(range(int(match[1]), int(match[2]) + 1))
    if not isinstance(levels, Sequence) or not levels or any(isinstance(v, bool) or not isinstance(v, int) for v in levels):
        raise ArchprofValueError(f"levels must be like 'P3-P7' or (3, 4, 5, 6, 7), got {levels!r}")
    levels = tuple(levels)
    if levels != tuple(range(levels[0], levels[0] + len(levels))):
        raise ArchprofValueError(f"levels must be consecutive, got {list(levels)}")
    if levels[0] < BACKBONE_LEVELS[0] or levels[0] > BACKBONE_LEVELS[-1] or levels[-1] > MAX_LEVEL:
        raise ArchprofValueError(f"levels must start at P2..P5 and end at P7 or below, got P{levels[0]}-P{levels[-1]}")
    return levels


def parse_input_size(resolution: object) -> tuple[int, int]:
    if isinstance(resolution, (tuple, list)) and len(resolution) == 2:
        return (check_positive_int("resolution height", resolution[0], 32), check_positive_int("resolution width", resolution[1], 32))
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        size = check_positive_int("resolution", resolution, 32)
        return (size, size)
    raise ArchprofValueError(f"resolution must be a size >= 32 or (height, width), got {resolution!r}")


@dataclass(frozen=True)
class DetectorConfig:
    """What FCOS and RetinaNet share. ``None`` is "as the preset sets it": the configuration holds
    the options resolved (the preset's where none is given, levels and size normalized), which the
    model's config and its profile show."""

    kind: ClassVar[str]  # its row of PRESETS

    preset: str = option("seed", "seed (the FCOS code base's configs, the default) or torchvision (its *_resnet50_fpn models).")
    backbone: str = option("resnet50", choices=BACKBONES)
    backbone_options: dict[str, Any] | None = option(None, "The backbone's own options (a ResNet's: after the preset's).")
    levels: str | tuple[int, ...] = option("P3-P7", "Pyramid levels, e.g. P3-P7.", cli_type=str)
    extra_from: str | None = option("p5", "The input of P6: c5 or p5.")
    head_channels: int = option(256, "Channels of the FPN outputs and the head's towers.")
    head_depth: int = option(4, "3x3 convs in each head tower.")
    norm: str = option("gn", "The head towers' norm: gn or none.")
    num_classes: int | None = option(None, "Classes scored (the seed's 80, torchvision's 91 COCO ids).")

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESET_NAMES)
        preset = PRESETS[self.kind][self.preset]
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None and f.name in preset:
                object.__setattr__(self, f.name, preset[f.name])
        object.__setattr__(self, "levels", parse_levels(self.levels))
        object.__setattr__(self, "resolution", parse_input_size(self.resolution))  # type: ignore[attr-defined]
        check_positive_int("head_channels", self.head_channels)
        check_positive_int("head_depth", self.head_depth, 0)
        check_positive_int("num_classes", self.num_classes)
        check_choice("extra_from", self.extra_from, EXTRA_FROM)
        check_choice("norm", self.norm, HEAD_NORMS)
        check_choice("backbone", self.backbone, BACKBONES)
        options = {} if self.backbone_options is None else self.backbone_options
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise ArchprofValueError(f"backbone_options must be a dict of option names to values, got {options!r}")
        fixed = sorted(set(options) & set(SET_BY_DETECTOR))
        if fixed:
            raise ArchprofValueError(f"backbone_options may not set {', '.join(fixed)}: the detector takes every stage's features itself")
        resolved = {**(RESNET_PRESETS[self.preset] if self.backbone.startswith("resnet") else {}), **options}
        object.__setattr__(self, "backbone_options", resolved)


@dataclass(frozen=True)
class FCOSConfig(DetectorConfig):
    kind: ClassVar[str] = "fcos"

    centerness: str | None = option(None, "Centerness from the classification (cls) or the regression (reg) tower.")
    scales: bool | None = option(None, "The seed's learnable scale of each level's box distances.")
    box_activation: str | None = option(None, "exp (the paper, the seed) or relu (torchvision) of the box distances.")
    resolution: int | tuple[int, int] = option(DEFAULT_INPUT, "The input's size, or (height, width).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("centerness", self.centerness, CENTERNESS_ON)
        check_choice("box_activation", self.box_activation, BOX_ACTIVATIONS)
        if not isinstance(self.scales, bool):
            raise ArchprofValueError(f"scales must be True or False, got {self.scales!r}")


@dataclass(frozen=True)
class RetinaNetConfig(DetectorConfig):
    kind: ClassVar[str] = "retinanet"

    extra_from: str | None = option(None, "The input of P6: c5 or p5.")
    norm: str = option("none", "The head towers' norm: gn or none.")
    num_anchors: int = option(9, "Anchors per position: 3 scales per octave x 3 aspect ratios, in both code bases.")
    resolution: int | tuple[int, int] = option(DEFAULT_INPUT, "The input's size, or (height, width).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("num_anchors", self.num_anchors)


# The catalogue of built-in models ----------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinModel:
    module: str  # the module that registers its builder (register_builtins)
    description: str
    config: type  # the configuration its builder takes
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)  # config fields its name sets

    @property
    def defaults(self) -> dict[str, Any]:
        return defaults_of(self.config, tuple(self.fixed))


_RESNET_OPTIONS = "seed-backbone options: norm, stride_in_1x1, ResNeXt groups, deformable stages, C4/C5/FPN"
_PRESETS = "preset 'seed' (the FCOS code base) or 'torchvision' ({}); None: as the preset sets it"

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "fcos": BuiltinModel(
        "archprof.architectures.detectors",
        "FCOS: backbone + FPN + shared GN towers with class, box and centerness outputs per level; "
        + _PRESETS.format("fcos_resnet50_fpn"),
        FCOSConfig,
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
        RetinaNetConfig,
    ),
}
