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
pretrained weights. An option given explicitly overrides the preset's. The options, the presets
and their validation are ``configs.FCOSConfig`` and ``configs.RetinaNetConfig``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from archprof.architectures.base import Architecture
from archprof.architectures.configs import BACKBONE_LEVELS, DetectorConfig, FCOSConfig, RetinaNetConfig
from archprof.architectures.fpn import FPN
from archprof.architectures.norm import group_norm
from archprof.architectures.registry import build_model, register_builtins

PRIOR_PROBABILITY = 0.01  # the classification bias starts at -log((1 - p) / p) (focal loss, section 4.1)


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

    def __init__(self, backbone: nn.Module, neck: FPN, head: SharedHead, config: DetectorConfig) -> None:
        super().__init__()
        backbone.archprof_part = "backbone"
        self.backbone, self.neck, self.head = backbone, neck, head
        self.config = config
        self.input_size = config.resolution
        self.resolution = self.input_size[0]

    @property
    def default_input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, *self.input_size)

    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        stages = {name: tuple(f"backbone.{p}" for p in paths) for name, paths in self.backbone.stage_modules().items()}
        return {**stages, "neck": ("neck",), "head": ("head",)}

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
        features = dict(zip(BACKBONE_LEVELS, self.backbone(images), strict=True))
        return self.head(self.neck(features))


def build_detector(config: DetectorConfig) -> Detector:
    """The backbone (the preset's options, then the user's), the FPN neck and the shared head."""
    forced = dict(backbone=True, stages="FPN") if config.backbone.startswith("resnet") else dict(backbone=True)
    # The detector's builder runs under build_model's device: the backbone is built on the same one.
    backbone = build_model(config.backbone, device=torch.get_default_device(), **config.backbone_options, **forced)
    channels, depth = config.head_channels, config.head_depth
    neck = FPN(dict(zip(BACKBONE_LEVELS, backbone.feature_channels, strict=True)), channels, config.levels, config.extra_from)
    if isinstance(config, FCOSConfig):
        predictor = FCOSPredictor(channels, depth, config.norm, config.num_classes, config.centerness, config.box_activation)
        head = SharedHead(predictor, config.levels, config.scales)
    else:
        predictor = RetinaNetPredictor(channels, depth, config.norm, config.num_classes, config.num_anchors)
        head = SharedHead(predictor, config.levels, scales=False)
    return Detector(backbone, neck, head, config)


register_builtins(FCOSConfig, build_detector)
register_builtins(RetinaNetConfig, build_detector)
