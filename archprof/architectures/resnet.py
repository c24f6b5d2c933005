"""ResNet (He et al. 2015) built the way the seed's maskrcnn-benchmark / FCOS backbone builds it.

Stage specs are data (``configs.DEPTHS`` and ``BODIES``), norms are chosen from a registry by
name, the options are ``configs.ResNetConfig``, and module names follow torchvision (``conv1``, ``layer1.0.conv2``, ``layer1.0.downsample.0``, ``fc``) so
torchvision checkpoints load into the default configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from archprof.architectures.base import Architecture
from archprof.architectures.configs import BODIES, DEPTHS, ResNetConfig
from archprof.architectures.deformable import DeformConv2d
from archprof.architectures.norm import NORMS
from archprof.architectures.registry import register_builtins


class StageSpec(NamedTuple):
    index: int  # the ResNet paper's conv{index}_x, 2..5
    block_count: int
    return_features: bool


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
        self, in_channels: int, out_channels: int, stride: int, norm: Callable[[int], nn.Module], deformable: dict | None
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


STEM_OUT_CHANNELS = 64  # the seed's RESNETS.STEM_OUT_CHANNELS
RES2_OUT_CHANNELS = 256  # the seed's RESNETS.RES2_OUT_CHANNELS (bottleneck nets)


def init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if isinstance(m, DeformConv2d):  # start as a plain conv: zero offsets
        nn.init.zeros_(m.conv_offset.weight)
        nn.init.zeros_(m.conv_offset.bias)


class ResNet(Architecture):
    # The stem: 7x7/2 conv, norm, ReLU, 3x3/2 max pool; top-level names as in torchvision.
    stem_names = ("conv1", "bn1", "relu", "maxpool")

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ResNetConfig()
        self.resolution = config.resolution
        self.backbone = config.backbone
        norm_layer = NORMS[config.norm]
        self.conv1 = nn.Conv2d(3, STEM_OUT_CHANNELS, 7, 2, 3, bias=False)
        self.bn1 = norm_layer(STEM_OUT_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

        in_channels = STEM_OUT_CHANNELS
        bottlenecks = config.block == "Bottleneck"
        self.specs = stage_specs(config.depth, config.stages)
        self.feature_channels: tuple[int, ...] = ()  # of the stages returned as features, in order
        for spec in self.specs:
            factor = 2 ** (spec.index - 2)
            bottleneck_channels = config.groups * config.width_per_group * factor
            out_channels = (RES2_OUT_CHANNELS if bottlenecks else STEM_OUT_CHANNELS) * factor
            deformable = (
                dict(deformable_groups=config.deformable_groups, modulated=config.modulated_dcn)
                if spec.index in config.dcn_stages else None
            )
            blocks: list[nn.Module] = []
            for i in range(spec.block_count):
                stride = 2 if i == 0 and spec.index > 2 else 1
                blocks.append(
                    Bottleneck(in_channels, bottleneck_channels, out_channels, stride, norm_layer, config.stride_in_1x1,
                               config.groups, deformable)
                    if bottlenecks else BasicBlock(in_channels, out_channels, stride, norm_layer, deformable)
                )
                in_channels = out_channels
            self.add_module(f"layer{spec.index - 1}", nn.Sequential(*blocks))
            if spec.return_features:
                self.feature_channels += (out_channels,)
        self.out_channels = in_channels
        if not config.backbone:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten(1)
            self.fc = nn.Linear(in_channels, config.num_classes)
        self.initialize(init_weights)
        self._freeze(config.freeze_at)

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


register_builtins(ResNetConfig, ResNet)
