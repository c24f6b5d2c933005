"""Layers the architectures share: conv-norm-activation (torchvision's ``Conv2dNormActivation``),
channel rounding (its ``_make_divisible``) and the stages of a mobile net by output stride."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor``, never below 90 % of ``value`` (torchvision, TF-slim)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvNormAct(nn.Sequential):
    """KxK conv without bias (padded to keep the size at stride 1), batch norm, activation: children
    ``0``, ``1``, ``2`` as torchvision names them, so its checkpoints load."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            activation(inplace=True),
        )


# Stage k covers the blocks whose output is at stride 2**k (both MobileNet papers' tables).
STAGE_OF_STRIDE = {2: "stage1", 4: "stage2", 8: "stage3", 16: "stage4", 32: "stage5"}


def stages_by_stride(block_strides: Sequence[int], first: int) -> dict[str, tuple[str, ...]]:
    """Stage name -> the ``features.{i}`` blocks at its stride; block ``first + j`` has ``block_strides[j]``."""
    stages: dict[str, tuple[str, ...]] = {}
    for i, stride in enumerate(block_strides, start=first):
        name = STAGE_OF_STRIDE[stride]
        stages[name] = stages.get(name, ()) + (f"features.{i}",)
    return stages
