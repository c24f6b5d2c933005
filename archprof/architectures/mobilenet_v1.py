"""MobileNet V1 (Howard et al. 2017, arXiv:1704.04861), the body of the paper's Table 1."""

from __future__ import annotations

import torch
from torch import nn

from archprof.architectures.base import Architecture
from archprof.architectures.configs import MobileNetV1Config
from archprof.architectures.layers import ConvNormAct, stages_by_stride
from archprof.architectures.registry import register_builtins

# (output channels, stride) of the 13 depthwise-separable blocks. The paper's Table 1 prints the
# last depthwise conv as "s2" although its input and output are both 7x7; like the official
# TF-slim code we use stride 1 there.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)


def scaled(channels: int, width: float) -> int:
    # TF-slim's depth(): max(int(c * alpha), 8).
    return max(int(channels * width), 8)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv, BN, ReLU, then 1x1 pointwise conv, BN, ReLU (the paper's Figure 3)."""

    archprof_block = "DepthwiseSeparable"

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvNormAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvNormAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


def init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")


class MobileNetV1(Architecture):
    def __init__(self, config: MobileNetV1Config | None = None) -> None:
        super().__init__()
        self.config = config = config or MobileNetV1Config()
        self.resolution = config.resolution
        width = config.width
        channels = scaled(32, width)
        self.stem = ConvNormAct(3, channels, 3, 2)
        blocks, self.block_strides = [], []
        stride = 2
        for out, s in BLOCKS:
            blocks.append(DepthwiseSeparable(channels, scaled(out, width), s))
            channels = scaled(out, width)
            stride *= s
            self.block_strides.append(stride)
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, config.num_classes)
        self.initialize(init_weights)

    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        return {"stem": ("stem",), **stages_by_stride(self.block_strides, 0), "head": ("avgpool", "flatten", "fc")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(self.stem(x)))))


register_builtins(MobileNetV1Config, MobileNetV1)
