"""Feature Pyramid Network (Lin et al. 2017, arXiv:1612.03144) as FCOS and RetinaNet build it.

Each pyramid level is its own module (``neck.P4``) holding the level's lateral 1x1 conv, its
top-down merge and its 3x3 output conv, so every op of the neck is charged to the level it
computes. P6 and P7 are RetinaNet's extra levels (the seed's and torchvision's ``LastLevelP6P7``):
a 3x3/2 conv of C5 or P5, then a 3x3/2 conv of relu(P6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archprof.architectures.configs import BACKBONE_LEVELS


class LateralLevel(nn.Module):
    """P_l = conv3x3(conv1x1(C_l) + upsample(the level above's merged map))."""

    def __init__(self, level: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.archprof_level = f"P{level}"
        self.lateral = nn.Conv2d(in_channels, out_channels, 1)
        self.output = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, c: torch.Tensor, above: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        merged = self.lateral(c)
        if above is not None:
            # To the lateral's size, as torchvision does; the seed doubles (scale_factor=2), which is the
            # same on its inputs padded to a multiple of 32 (DATALOADER.SIZE_DIVISIBILITY).
            merged = merged + F.interpolate(above, size=merged.shape[-2:], mode="nearest")
        return merged, self.output(merged)


class ExtraLevel(nn.Module):
    """P6 = conv3x3/2(C5 or P5); P7 = conv3x3/2(relu(P6))."""

    def __init__(self, level: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.archprof_level = f"P{level}"
        self.relu_first = level > 6
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(x) if self.relu_first else x)


class FPN(nn.Module):
    """Levels P{first}..P{last} of ``out_channels`` from the backbone features C2..C5.

    ``in_channels`` maps each backbone level (2..5) to its channels; levels above 5 are extra
    levels whose first input is C5 or P5 (``extra_from``).
    """

    archprof_part = "neck"

    def __init__(self, in_channels: dict[int, int], out_channels: int, levels: tuple[int, ...], extra_from: str) -> None:
        super().__init__()
        self.levels = levels
        self.extra_from = extra_from
        self.lateral_levels = tuple(lv for lv in levels if lv in BACKBONE_LEVELS)
        self.extra_levels = tuple(lv for lv in levels if lv not in BACKBONE_LEVELS)
        for lv in self.lateral_levels:
            self.add_module(f"P{lv}", LateralLevel(lv, in_channels[lv], out_channels))
        for lv in self.extra_levels:
            first_in = in_channels[5] if extra_from == "c5" else out_channels
            self.add_module(f"P{lv}", ExtraLevel(lv, first_in if lv == 6 else out_channels, out_channels))
        # kaiming_uniform_(a=1) and zero biases, as the seed's conv_with_kaiming_uniform and torchvision
        if not any(p.is_meta for p in self.parameters()):
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_uniform_(m.weight, a=1)
                    nn.init.zeros_(m.bias)

    def forward(self, features: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        outputs: dict[int, torch.Tensor] = {}
        above = None
        for lv in reversed(self.lateral_levels):  # top-down
            above, outputs[lv] = getattr(self, f"P{lv}")(features[lv], above)
        x = features[5] if self.extra_from == "c5" else outputs.get(5)
        for lv in self.extra_levels:
            x = outputs[lv] = getattr(self, f"P{lv}")(x)
        return [outputs[lv] for lv in self.levels]
