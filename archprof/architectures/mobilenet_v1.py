"""MobileNet V1 (Howard et al. 2017, arXiv:1704.04861), the body of the paper's Table 1."""

from __future__ import annotations

import torch
from torch import nn

from archprof.architectures.base import Architecture, check_positive_int
from archprof.architectures.registry import register_model

# (output channels, stride) of the 13 depthwise-separable blocks. The paper's Table 1 prints the
# last depthwise conv as "s2" although its input and output are both 7x7; like the official
# TF-slim code we use stride 1 there.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)

# Output stride of each named stage; stage k covers the blocks whose output is at stride 2**k.
STAGE_OF_STRIDE = {2: "stage1", 4: "stage2", 8: "stage3", 16: "stage4", 32: "stage5"}


def scaled(channels: int, width: float) -> int:
    # TF-slim's depth(): max(int(c * alpha), 8).
    return max(int(channels * width), 8)


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv, BN, ReLU, then 1x1 pointwise conv, BN, ReLU (the paper's Figure 3)."""

    archprof_block = "DepthwiseSeparable"

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNReLU(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvBNReLU(in_channels, out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


def init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")


class MobileNetV1(Architecture):
    def __init__(self, width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise ValueError(f"width must be a number in (0, 4], got {width!r}")
        check_positive_int("resolution", resolution, 32)
        check_positive_int("num_classes", num_classes)
        self.config = dict(width=width, resolution=resolution, num_classes=num_classes)
        self.resolution = resolution
        channels = scaled(32, width)
        self.stem = ConvBNReLU(3, channels, 3, 2)
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
        self.fc = nn.Linear(channels, num_classes)
        self.initialize(init_weights)

    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        stages: dict[str, tuple[str, ...]] = {"stem": ("stem",)}
        for i, stride in enumerate(self.block_strides):
            name = STAGE_OF_STRIDE[stride]
            stages[name] = stages.get(name, ()) + (f"features.{i}",)
        stages["head"] = ("avgpool", "flatten", "fc")
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(self.stem(x)))))


@register_model("mobilenet_v1", "MobileNet V1 (paper Table 1); width multiplier alpha, resolution multiplier")
def mobilenet_v1(*, width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> MobileNetV1:
    return MobileNetV1(width=width, resolution=resolution, num_classes=num_classes)
