"""MobileNet V2 (Sandler et al. 2018, arXiv:1801.04381) with the seed's InvertedResidual/ConvBNReLU
(here ``ConvNormAct`` with ReLU6).

Module names follow torchvision's ``mobilenet_v2`` (``features.1.conv.0.0``, ``classifier.1``) so
its checkpoints load.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from archprof.architectures.base import Architecture
from archprof.architectures.configs import MobileNetV2Config
from archprof.architectures.layers import ConvNormAct, make_divisible, stages_by_stride
from archprof.architectures.registry import register_builtins

# The paper's Table 2: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
LAST_CHANNELS = 1280
conv_bn_relu6 = partial(ConvNormAct, activation=nn.ReLU6)  # every activation is ReLU6 (the paper's section 3.1)


class InvertedResidual(nn.Module):
    """1x1 expansion to t*k channels, 3x3 depthwise, linear 1x1 projection (the paper's Table 1)."""

    archprof_block = "InvertedResidual"

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        self.expand_ratio = expand_ratio
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_channels, hidden, kernel_size=1))
        layers += [
            conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


def init_weights(m: nn.Module) -> None:
    # torchvision's initialization
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.zeros_(m.bias)


class MobileNetV2(Architecture):
    """The classifier, or with ``backbone`` the seed's detection body (FCOS ``mobilenet.py``): no last
    1x1 conv, pool or classifier; the forward returns the last block's output at strides 4, 8, 16
    and 32 (the seed's ``return_features_indices`` [3, 6, 13, 17])."""

    def __init__(self, config: MobileNetV2Config | None = None) -> None:
        super().__init__()
        self.config = config = config or MobileNetV2Config()
        self.resolution = config.resolution
        self.backbone = backbone = config.backbone
        width = config.width
        channels = make_divisible(32 * width)
        # Below width 1.0 the last conv keeps its 1280 channels (the paper's section 6.1).
        last = make_divisible(LAST_CHANNELS * max(1.0, width))
        features: list[nn.Module] = [conv_bn_relu6(3, channels, stride=2)]
        self.block_strides: list[int] = []
        stride = 2
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out = make_divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
                stride *= s if i == 0 else 1
                self.block_strides.append(stride)
        # The seed's body rounds channels as int(c * width), torchvision (and this) to multiples of 8:
        # the same at width 1.0.
        last_at_stride = {s: i for i, s in enumerate(self.block_strides, start=1)}  # strides only grow
        self.return_features = tuple(last_at_stride[s] for s in (4, 8, 16, 32)) if backbone else ()
        self.feature_channels = tuple(features[i].conv[-2].out_channels for i in self.return_features)
        if not backbone:
            features.append(conv_bn_relu6(channels, last, kernel_size=1))
        self.features = nn.Sequential(*features)
        if not backbone:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten(1)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, config.num_classes))
        self.initialize(init_weights)

    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        stages = {"stem": ("features.0",), **stages_by_stride(self.block_strides, 1)}
        if not self.backbone:
            stages["head"] = (f"features.{len(self.features) - 1}", "avgpool", "flatten", "classifier")
        return stages

    def materialized_modules(self) -> list[str]:
        # The paper's memory measure (section 5.1, Table 3): only the tensors between inverted
        # residuals exist in memory; each block's expansion is streamed. The first block has t=1,
        # so the stem conv plays its expansion layer and the stem's output is streamed too; the
        # last 1x1 conv streams into the global pool (Table 3 lists 320 channels at 7x7).
        if self.backbone:
            return [f"features.{i}" for i in range(1, len(self.features))]
        return [f"features.{i}" for i in range(1, len(self.features) - 1)] + ["avgpool", "classifier"]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not self.backbone:
            return self.classifier(self.flatten(self.avgpool(self.features(x))))
        features = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.return_features:
                features.append(x)
        return features


register_builtins(MobileNetV2Config, MobileNetV2)
