"""Deformable 3x3 convolution (Dai et al. 2017; modulated: Zhu et al. 2019) in pure torch.

The seed's DFConv2d: an offset conv predicts 2*k*k offsets per deformable group (3*k*k with the
modulation masks), the input is sampled bilinearly at the shifted taps, then the kernel is
applied. Here the sampling is ``F.grid_sample`` and the kernel a grouped 1x1 conv over the
sampled taps, so every step is an ordinary aten op that the profiler can cost; no compiled
extension is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archprof.errors import ArchprofValueError


class DeformConv2d(nn.Module):
    archprof_layer_type = "deformable conv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        modulated: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if in_channels % deformable_groups:
            raise ArchprofValueError(
                f"deformable_groups={deformable_groups} must divide the {in_channels} input channels"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.groups, self.deformable_groups, self.modulated = groups, deformable_groups, modulated
        taps = kernel_size * kernel_size
        self.conv_offset = nn.Conv2d(
            in_channels,
            deformable_groups * taps * (3 if modulated else 2),
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
        )
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if not self.weight.is_meta:
            nn.init.kaiming_uniform_(self.weight, a=1)
            # The seed starts from a regular conv: zero offsets (and masks of sigmoid(0)).
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k, dg = self.kernel_size, self.deformable_groups
        taps = k * k
        out = self.conv_offset(x)
        ho, wo = out.shape[-2:]
        offset = out[:, : 2 * dg * taps].reshape(n, dg, taps, 2, ho, wo)

        # Sampling positions: output grid * stride - padding + tap * dilation + learned offset.
        dtype, device = x.dtype, x.device
        tap = torch.arange(k, dtype=dtype, device=device) * self.dilation
        base_y = torch.arange(ho, dtype=dtype, device=device) * self.stride - self.padding
        base_x = torch.arange(wo, dtype=dtype, device=device) * self.stride - self.padding
        tap_y = tap.repeat_interleave(k)  # row-major kernel taps, as in the kernel's layout
        tap_x = tap.repeat(k)
        pos_y = base_y.reshape(1, -1, 1) + tap_y.reshape(-1, 1, 1) + offset[:, :, :, 0]
        pos_x = base_x.reshape(1, 1, -1) + tap_x.reshape(-1, 1, 1) + offset[:, :, :, 1]
        # grid_sample wants (x, y) in [-1, 1]; align_corners=True maps -1/1 to the border pixels
        # and zero padding gives deformable conv's zero outside the image.
        grid = torch.stack((pos_x * (2.0 / max(w - 1, 1)) - 1, pos_y * (2.0 / max(h - 1, 1)) - 1), dim=-1)
        grid = grid.reshape(n * dg, taps * ho, wo, 2)
        sampled = F.grid_sample(
            x.reshape(n * dg, c // dg, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        sampled = sampled.reshape(n, dg, c // dg, taps, ho, wo)
        if self.modulated:
            mask = torch.sigmoid(out[:, 2 * dg * taps :]).reshape(n, dg, 1, taps, ho, wo)
            sampled = sampled * mask
        # Channel index c * taps + t matches weight.reshape(out, in/groups * taps): a grouped 1x1
        # conv over the sampled taps is exactly the k x k kernel applied at the deformed positions.
        columns = sampled.reshape(n, c * taps, ho, wo)
        weight = self.weight.reshape(self.out_channels, -1, 1, 1)
        return F.conv2d(columns, weight, self.bias, groups=self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"deformable_groups={self.deformable_groups}, modulated={self.modulated}"
        )
