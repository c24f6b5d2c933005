"""ResNet (He et al. 2015) built the way the seed's maskrcnn-benchmark / FCOS backbone builds it.

Stage specs are data, stems, blocks and norms are chosen from registries by name, and module
names follow torchvision (``conv1``, ``layer1.0.conv2``, ``layer1.0.downsample.0``, ``fc``) so
torchvision checkpoints load into the default configuration.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from archprof.architectures.base import Architecture, check_choice, check_positive_int
from archprof.architectures.deformable import DeformConv2d
from archprof.architectures.norm import NORMS
from archprof.architectures.registry import register_model


class StageSpec(NamedTuple):
    index: int  # the ResNet paper's conv{index}_x, 2..5
    block_count: int
    return_features: bool


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


def stage_specs(depth: int, body: str) -> tuple[StageSpec, ...]:
    counts = DEPTHS[depth][1]
    n_stages, returns = BODIES[body]
    return tuple(StageSpec(i + 2, counts[i], returns[i]) for i in range(n_stages))


def conv3x3(
    in_channels: int, out_channels: int, stride: int, groups: int, deformable: dict | None
) -> nn.Module:
    if deformable is not None:
        return DeformConv2d(in_channels, out_channels, 3, stride, 1, groups=groups, **deformable)
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, groups=groups, bias=False)


def projection(in_channels: int, out_channels: int, stride: int, norm: Callable[[int], nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), norm(out_channels))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, optionally deformable), 1x1 expand, plus shortcut.

    The downsampling stride sits in the first 1x1 conv with ``stride_in_1x1`` (the original MSRA
    ResNet and the seed's default) and in the 3x3 conv without it (torchvision's "v1.5").
    """

    archprof_block = "Bottleneck"

    def __init__(
        self,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        stride: int,
        norm: Callable[[int], nn.Module],
        stride_in_1x1: bool,
        groups: int,
        deformable: dict | None,
    ) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, bottleneck_channels, 1, stride_1x1, bias=False)
        self.bn1 = norm(bottleneck_channels)
        self.conv2 = conv3x3(bottleneck_channels, bottleneck_channels, stride_3x3, groups, deformable)
        self.bn2 = norm(bottleneck_channels)
        self.conv3 = nn.Conv2d(bottleneck_channels, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        # The seed projects whenever the channels change, so conv2_x's first block has one too.
        self.downsample = projection(in_channels, out_channels, stride, norm) if in_channels != out_channels or stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus shortcut (ResNet-18/34)."""

    archprof_block = "BasicBlock"

    def __init__(
        self,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        stride: int,
        norm: Callable[[int], nn.Module],
        stride_in_1x1: bool,
        groups: int,
        deformable: dict | None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels, 1, 1, deformable)
        self.bn2 = norm(out_channels)
        self.downsample = projection(in_channels, out_channels, stride, norm) if in_channels != out_channels or stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


BLOCKS: dict[str, type[nn.Module]] = {"Bottleneck": Bottleneck, "BasicBlock": BasicBlock}


def standard_stem(out_channels: int, norm: Callable[[int], nn.Module]) -> OrderedDict[str, nn.Module]:
    """7x7/2 conv, norm, ReLU, 3x3/2 max pool; top-level names as in torchvision."""
    return OrderedDict(
        conv1=nn.Conv2d(3, out_channels, 7, 2, 3, bias=False),
        bn1=norm(out_channels),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool2d(3, 2, 1),
    )


STEMS: dict[str, Callable[[int, Callable[[int], nn.Module]], OrderedDict[str, nn.Module]]] = {
    "standard": standard_stem,
}

STEM_OUT_CHANNELS = 64  # the seed's RESNETS.STEM_OUT_CHANNELS
RES2_OUT_CHANNELS = 256  # the seed's RESNETS.RES2_OUT_CHANNELS (bottleneck nets)


def init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if isinstance(m, DeformConv2d):  # start as a plain conv: zero offsets
        nn.init.zeros_(m.conv_offset.weight)
        nn.init.zeros_(m.conv_offset.bias)


class ResNet(Architecture):
    def __init__(
        self,
        depth: int = 50,
        *,
        norm: str = "bn",
        stride_in_1x1: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        dcn_stages: tuple[int, ...] = (),
        modulated_dcn: bool = False,
        deformable_groups: int = 1,
        freeze_at: int = 0,
        stages: str = "C5",
        backbone: bool = False,
        num_classes: int = 1000,
        resolution: int = 224,
        stem: str = "standard",
    ) -> None:
        super().__init__()
        check_choice("depth", depth, tuple(DEPTHS))
        check_choice("norm", norm, tuple(NORMS))
        check_choice("stages", stages, tuple(BODIES))
        check_choice("stem", stem, tuple(STEMS))
        check_positive_int("groups", groups)
        check_positive_int("width_per_group", width_per_group)
        check_positive_int("deformable_groups", deformable_groups)
        check_positive_int("num_classes", num_classes)
        check_positive_int("resolution", resolution, 32)
        check_choice("freeze_at", freeze_at, (0, 1, 2, 3, 4, 5))
        dcn_stages = tuple(sorted(set(dcn_stages)))
        for s in dcn_stages:
            check_choice("each of dcn_stages", s, (2, 3, 4, 5))
        if not dcn_stages and (modulated_dcn or deformable_groups != 1):
            raise ValueError("modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too")
        block_name, _ = DEPTHS[depth]
        if block_name == "BasicBlock" and (groups != 1 or width_per_group != 64 or stride_in_1x1):
            raise ValueError(f"resnet{depth} uses basic blocks: groups, width_per_group and stride_in_1x1 apply to depths 50, 101, 152")
        specs = stage_specs(depth, stages)
        if max(dcn_stages, default=0) > specs[-1].index:
            raise ValueError(f"dcn_stages {list(dcn_stages)} name a stage that stages={stages!r} does not build")
        self.config = dict(
            depth=depth, norm=norm, stride_in_1x1=stride_in_1x1, groups=groups, width_per_group=width_per_group,
            dcn_stages=list(dcn_stages), modulated_dcn=modulated_dcn, deformable_groups=deformable_groups,
            freeze_at=freeze_at, stages=stages, backbone=backbone, num_classes=num_classes, resolution=resolution,
        )
        self.resolution = resolution
        self.backbone = backbone
        norm_layer = NORMS[norm]
        block = BLOCKS[block_name]

        stem_layers = STEMS[stem](STEM_OUT_CHANNELS, norm_layer)
        self.stem_names = tuple(stem_layers)
        for name, module in stem_layers.items():
            self.add_module(name, module)

        in_channels = STEM_OUT_CHANNELS
        expansion = 4 if block is Bottleneck else 1
        self.specs = specs
        self.feature_channels: tuple[int, ...] = ()  # of the stages returned as features, in order
        for spec in specs:
            factor = 2 ** (spec.index - 2)
            bottleneck_channels = groups * width_per_group * factor
            out_channels = (RES2_OUT_CHANNELS if expansion == 4 else STEM_OUT_CHANNELS) * factor
            deformable = (
                dict(deformable_groups=deformable_groups, modulated=modulated_dcn) if spec.index in dcn_stages else None
            )
            blocks = []
            for i in range(spec.block_count):
                stride = 2 if i == 0 and spec.index > 2 else 1
                blocks.append(block(in_channels, bottleneck_channels, out_channels, stride, norm_layer, stride_in_1x1, groups, deformable))
                in_channels = out_channels
            self.add_module(f"layer{spec.index - 1}", nn.Sequential(*blocks))
            if spec.return_features:
                self.feature_channels += (out_channels,)
        self.out_channels = in_channels
        if not backbone:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten(1)
            self.fc = nn.Linear(in_channels, num_classes)
        self.initialize(init_weights)
        self._freeze(freeze_at)

    def _freeze(self, freeze_at: int) -> None:
        # The seed's FREEZE_CONV_BODY_AT: 1 freezes the stem, k >= 2 also conv2_x..conv{k}_x.
        frozen = [getattr(self, n) for n in self.stem_names] if freeze_at >= 1 else []
        frozen += [getattr(self, f"layer{s.index - 1}") for s in self.specs if s.index <= freeze_at]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        stages = {"stem": self.stem_names}
        stages.update({f"conv{s.index}_x": (f"layer{s.index - 1}",) for s in self.specs})
        if not self.backbone:
            stages["head"] = ("avgpool", "flatten", "fc")
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        for name in self.stem_names:
            x = getattr(self, name)(x)
        features = []
        for spec in self.specs:
            x = getattr(self, f"layer{spec.index - 1}")(x)
            if spec.return_features:
                features.append(x)
        if self.backbone:
            return features
        return self.fc(self.flatten(self.avgpool(x)))


def _resnet_builder(depth: int):
    def build(
        *,
        norm: str = "bn",
        stride_in_1x1: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        dcn_stages: tuple[int, ...] = (),
        modulated_dcn: bool = False,
        deformable_groups: int = 1,
        freeze_at: int = 0,
        stages: str = "C5",
        backbone: bool = False,
        num_classes: int = 1000,
        resolution: int = 224,
    ) -> ResNet:
        return ResNet(
            depth, norm=norm, stride_in_1x1=stride_in_1x1, groups=groups, width_per_group=width_per_group,
            dcn_stages=tuple(dcn_stages), modulated_dcn=modulated_dcn, deformable_groups=deformable_groups,
            freeze_at=freeze_at, stages=stages, backbone=backbone, num_classes=num_classes, resolution=resolution,
        )

    build.__name__ = f"resnet{depth}"
    return build


for _depth, (_block, _counts) in DEPTHS.items():
    register_model(
        f"resnet{_depth}",
        f"ResNet-{_depth} ({_block.lower()}s {list(_counts)}); seed-backbone options: norm, stride_in_1x1, "
        "ResNeXt groups, deformable stages, C4/C5/FPN",
    )(_resnet_builder(_depth))
