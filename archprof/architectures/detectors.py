"""FCOS (Tian et al. 2019, arXiv:1904.01355) and RetinaNet (Lin et al. 2017, arXiv:1708.02002):
a backbone, the FPN neck and one head shared across the pyramid levels.

A shared head is one set of weights run on every level. Here each level runs its own module
(``head.P3``, ``head.P4``, ...) whose parameters *are* the shared ones (the same ``nn.Parameter``
objects, as tied weights are), so each level's ops carry their level while the parameters are
counted once, at ``head.shared``, their first owner, which never runs. The backbone, neck and head
declare their ``archprof_part`` and each level its ``archprof_level``: the profile's ``part`` and
``level`` groupings read them.

``preset="seed"`` is the FCOS code base's configuration (``fcos_core/config/defaults.py`` with
``configs/fcos/fcos_R_50_FPN_1x.yaml``; RetinaNet with the defaults alone) and
``preset="torchvision"`` is torchvision's ``fcos_resnet50_fpn`` / ``retinanet_resnet50_fpn`` with
pretrained weights. An option given explicitly overrides the preset's.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archprof.architectures.base import Architecture
from archprof.architectures.configs import check_choice, check_positive_int
from archprof.architectures.fpn import BACKBONE_LEVELS, EXTRA_FROM, FPN
from archprof.architectures.norm import group_norm
from archprof.architectures.registry import build_model, register_model

BACKBONES = ("resnet50", "resnet101", "resnet152", "mobilenet_v2")
PRESET_NAMES = ("seed", "torchvision")
HEAD_NORMS = ("gn", "none")
CENTERNESS_ON = ("cls", "reg")
BOX_ACTIVATIONS = ("exp", "relu")
MAX_LEVEL = 7
DEFAULT_INPUT = (800, 1333)  # the papers' test scale: shorter side 800, longer side at most 1333
PRIOR_PROBABILITY = 0.01  # the classification bias starts at -log((1 - p) / p) (focal loss, section 4.1)

# The options each preset sets; ``None`` in a builder's signature means "as the preset sets it".
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


def tied_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s tree whose parameters and buffers are ``module``'s own objects."""
    memo = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, memo)


def tower(channels: int, depth: int, norm: str) -> nn.Sequential:
    """``depth`` x (3x3 conv with bias, group norm if asked, ReLU), as both heads' towers."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers.append(nn.Conv2d(channels, channels, 3, padding=1))
        if norm == "gn":
            layers.append(group_norm(channels))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _init_head(head: nn.Module, classifier: nn.Conv2d) -> None:
    # Both code bases: N(0, 0.01) weights, zero biases, the classifier's bias at the focal-loss prior.
    if any(p.is_meta for p in head.parameters()):
        return
    for m in head.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
    nn.init.constant_(classifier.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))


class FCOSPredictor(nn.Module):
    """The FCOS head on one level: class scores, box distances (l, t, r, b) and centerness.

    Centerness comes from the classification tower (the paper, the seed) or the regression tower
    (torchvision, the seed's CENTERNESS_ON_REG). ``scale`` is the seed's per-level learnable scalar
    on the box distances, registered per level.
    """

    def __init__(self, channels: int, depth: int, norm: str, num_classes: int, centerness: str, box_activation: str) -> None:
        super().__init__()
        self.cls_tower = tower(channels, depth, norm)
        self.bbox_tower = tower(channels, depth, norm)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.centerness_on = centerness
        self.box_activation = box_activation
        self.register_parameter("scale", None)
        _init_head(self, self.cls_logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls, box = self.cls_tower(x), self.bbox_tower(x)
        distances = self.bbox_pred(box)
        if self.scale is not None:
            distances = distances * self.scale
        distances = torch.exp(distances) if self.box_activation == "exp" else F.relu(distances)
        return self.cls_logits(cls), distances, self.centerness(cls if self.centerness_on == "cls" else box)


class RetinaNetPredictor(nn.Module):
    """The RetinaNet head on one level: A x K class scores and A x 4 box deltas per position."""

    def __init__(self, channels: int, depth: int, norm: str, num_classes: int, num_anchors: int) -> None:
        super().__init__()
        self.cls_tower = tower(channels, depth, norm)
        self.bbox_tower = tower(channels, depth, norm)
        self.cls_logits = nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        _init_head(self, self.cls_logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_logits(self.cls_tower(x)), self.bbox_pred(self.bbox_tower(x))


class SharedHead(nn.Module):
    """One predictor's weights run on every level: ``shared`` owns them, ``P3``.. run them."""

    archprof_part = "head"

    def __init__(self, predictor: nn.Module, levels: tuple[int, ...], scales: bool) -> None:
        super().__init__()
        self.levels = levels
        self.shared = predictor
        predictor.archprof_level = "head (shared)"  # its parameters serve every level, its ops run on none
        for lv in levels:
            level = tied_copy(predictor)
            level.archprof_level = f"P{lv}"
            if scales:
                level.scale = nn.Parameter(torch.ones(1))
            self.add_module(f"P{lv}", level)

    def forward(self, pyramid: list[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
        """Each of the predictor's outputs as a list over the levels (the seed's head returns)."""
        per_level = [getattr(self, f"P{lv}")(x) for lv, x in zip(self.levels, pyramid, strict=True)]
        return tuple(list(outputs) for outputs in zip(*per_level, strict=True))


class Detector(Architecture):
    """backbone -> FPN -> shared head; the default input is the papers' 1 x 3 x 800 x 1333."""

    def __init__(self, backbone: nn.Module, neck: FPN, head: SharedHead, config: dict, input_size: tuple[int, int]) -> None:
        super().__init__()
        backbone.archprof_part = "backbone"
        self.backbone, self.neck, self.head = backbone, neck, head
        self.config = config
        self.input_size = input_size
        self.resolution = input_size[0]

    @property
    def default_input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, *self.input_size)

    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        stages = {name: tuple(f"backbone.{p}" for p in paths) for name, paths in self.backbone.stage_modules().items()}
        return {**stages, "neck": ("neck",), "head": ("head",)}

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
        features = dict(zip(BACKBONE_LEVELS, self.backbone(images), strict=True))
        return self.head(self.neck(features))


def parse_levels(levels: object) -> tuple[int, ...]:
    """``"P3-P7"`` or consecutive level numbers such as ``(3, 4, 5, 6, 7)``."""
    if isinstance(levels, str):
        match = re.fullmatch(r"\s*[Pp](\d+)\s*-\s*[Pp](\d+)\s*", levels)
        if not match:
            raise ValueError(f"levels must be like 'P3-P7' or (3, 4, 5, 6, 7), got {levels!r}")
        levels = tuple(range(int(match[1]), int(match[2]) + 1))
    if not isinstance(levels, Sequence) or not levels or any(isinstance(v, bool) or not isinstance(v, int) for v in levels):
        raise ValueError(f"levels must be like 'P3-P7' or (3, 4, 5, 6, 7), got {levels!r}")
    levels = tuple(levels)
    if levels != tuple(range(levels[0], levels[0] + len(levels))):
        raise ValueError(f"levels must be consecutive, got {list(levels)}")
    if levels[0] < BACKBONE_LEVELS[0] or levels[0] > BACKBONE_LEVELS[-1] or levels[-1] > MAX_LEVEL:
        raise ValueError(f"levels must start at P2..P5 and end at P7 or below, got P{levels[0]}-P{levels[-1]}")
    return levels


def parse_input_size(resolution: object) -> tuple[int, int]:
    if isinstance(resolution, (tuple, list)) and len(resolution) == 2:
        return (check_positive_int("resolution height", resolution[0], 32), check_positive_int("resolution width", resolution[1], 32))
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        size = check_positive_int("resolution", resolution, 32)
        return (size, size)
    raise ValueError(f"resolution must be a size >= 32 or (height, width), got {resolution!r}")


def build_backbone(name: str, options: dict[str, Any] | None, preset: str) -> tuple[nn.Module, dict[str, Any]]:
    """The registered backbone with the preset's options, then the user's; returns it and its options."""
    check_choice("backbone", name, BACKBONES)
    if options is None:
        options = {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValueError(f"backbone_options must be a dict of option names to values, got {options!r}")
    fixed = sorted(set(options) & set(SET_BY_DETECTOR))
    if fixed:
        raise ValueError(f"backbone_options may not set {', '.join(fixed)}: the detector takes every stage's features itself")
    resolved = {**(RESNET_PRESETS[preset] if name.startswith("resnet") else {}), **options}
    forced = dict(backbone=True, stages="FPN") if name.startswith("resnet") else dict(backbone=True)
    # The detector's builder runs under build_model's device: the backbone is built on the same one.
    return build_model(name, device=torch.get_default_device(), **resolved, **forced), resolved


def build_detector(kind: str, preset: str, given: dict[str, Any]) -> Detector:
    """``kind`` ("fcos", "retinanet") with the options ``given``; ``None`` ones come from ``preset``."""
    check_choice("preset", preset, PRESET_NAMES)
    options = {k: (PRESETS[kind][preset].get(k) if v is None else v) for k, v in given.items()}
    levels = parse_levels(options["levels"])
    input_size = parse_input_size(options["resolution"])
    channels = check_positive_int("head_channels", options["head_channels"])
    depth = check_positive_int("head_depth", options["head_depth"], 0)
    num_classes = check_positive_int("num_classes", options["num_classes"])
    check_choice("extra_from", options["extra_from"], EXTRA_FROM)
    check_choice("norm", options["norm"], HEAD_NORMS)
    backbone, backbone_options = build_backbone(options["backbone"], options["backbone_options"], preset)
    neck = FPN(dict(zip(BACKBONE_LEVELS, backbone.feature_channels, strict=True)), channels, levels, options["extra_from"])
    if kind == "fcos":
        check_choice("centerness", options["centerness"], CENTERNESS_ON)
        check_choice("box_activation", options["box_activation"], BOX_ACTIVATIONS)
        if not isinstance(options["scales"], bool):
            raise ValueError(f"scales must be True or False, got {options['scales']!r}")
        predictor = FCOSPredictor(channels, depth, options["norm"], num_classes, options["centerness"], options["box_activation"])
        head = SharedHead(predictor, levels, options["scales"])
    else:
        num_anchors = check_positive_int("num_anchors", options["num_anchors"])
        head = SharedHead(RetinaNetPredictor(channels, depth, options["norm"], num_classes, num_anchors), levels, scales=False)
    config = {"preset": preset, **options, "backbone_options": backbone_options, "levels": list(levels),
              "resolution": list(input_size)}
    return Detector(backbone, neck, head, config, input_size)


@register_model(
    "fcos",
    "FCOS: backbone + FPN + shared GN towers with class, box and centerness outputs per level; "
    "preset 'seed' (the FCOS code base) or 'torchvision' (fcos_resnet50_fpn); None: as the preset sets it",
)
def fcos(
    *,
    preset: str = "seed",
    backbone: str = "resnet50",
    backbone_options: dict[str, Any] | None = None,
    levels: str | tuple[int, ...] = "P3-P7",
    extra_from: str = "p5",
    head_channels: int = 256,
    head_depth: int = 4,
    norm: str = "gn",
    num_classes: int | None = None,
    centerness: str | None = None,
    scales: bool | None = None,
    box_activation: str | None = None,
    resolution: int | tuple[int, int] = DEFAULT_INPUT,
) -> Detector:
    return build_detector("fcos", preset, dict(
        backbone=backbone, backbone_options=backbone_options, levels=levels, extra_from=extra_from,
        head_channels=head_channels, head_depth=head_depth, norm=norm, num_classes=num_classes, centerness=centerness,
        scales=scales, box_activation=box_activation, resolution=resolution,
    ))


@register_model(
    "retinanet",
    "RetinaNet: backbone + FPN + shared towers with A x classes and A x 4 outputs per level; "
    "preset 'seed' (the FCOS code base) or 'torchvision' (retinanet_resnet50_fpn); None: as the preset sets it",
)
def retinanet(
    *,
    preset: str = "seed",
    backbone: str = "resnet50",
    backbone_options: dict[str, Any] | None = None,
    levels: str | tuple[int, ...] = "P3-P7",
    extra_from: str | None = None,
    head_channels: int = 256,
    head_depth: int = 4,
    norm: str = "none",
    num_classes: int | None = None,
    num_anchors: int = 9,  # 3 scales per octave x 3 aspect ratios, in both code bases
    resolution: int | tuple[int, int] = DEFAULT_INPUT,
) -> Detector:
    return build_detector("retinanet", preset, dict(
        backbone=backbone, backbone_options=backbone_options, levels=levels, extra_from=extra_from,
        head_channels=head_channels, head_depth=head_depth, norm=norm, num_classes=num_classes, num_anchors=num_anchors,
        resolution=resolution,
    ))
