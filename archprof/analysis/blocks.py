"""The ResNet bottleneck against the MobileNet V2 inverted residual, at matched input.

Each block is built from the architectures' own classes, traced like any model, and shown next
to its paper's closed form for the multiply-adds:

- standard KxK conv (V1 paper, section 3.1): Dk^2 * M * N * Df^2
- depthwise separable (V1 paper): Dk^2 * M * Df^2 + M * N * Df^2, a ratio of 1/N + 1/Dk^2 to the
  standard conv
- inverted residual (V2 paper, section 3.3): h * w * d' * t * (d' + k^2 + d'') at stride 1; with
  stride s the depthwise and projection run on (h/s) x (w/s)
- bottleneck (ResNet paper, figure 5): h * w * (C * b + 9 * b^2 + b * C') with b = C' / 4, plus a
  1x1 projection shortcut when the channels or the stride change
- basic block: h * w * 9 * (C * C' + C'^2), plus the projection
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from archprof.analysis.profile import Conditions, profile
from archprof.architectures.configs import check_positive_int
from archprof.architectures.layers import ConvNormAct
from archprof.architectures.mobilenet_v1 import DepthwiseSeparable
from archprof.architectures.mobilenet_v2 import InvertedResidual
from archprof.architectures.registry import build_model
from archprof.architectures.resnet import BasicBlock, Bottleneck
from archprof.errors import ArchprofValueError


@dataclass(frozen=True)
class BlockCost:
    block: str
    layers: str  # what the block is made of, as its paper draws it
    macs: int  # traced
    closed_form_macs: int  # the paper's formula at these shapes
    formula: str
    params: int
    activations: int
    peak_activation_bytes: int
    network: str | None  # the registered network this block type builds
    network_share: float | None  # the block type's share of that network's MACs


@dataclass(frozen=True)
class BlockShapes:
    channels: int = 64  # input channels (C, M, d')
    out_channels: int = 64  # output channels (C', N, d'')
    size: int = 56  # input height and width (h, w, Df at stride 1)
    stride: int = 1
    expansion: int = 6  # the inverted residual's t
    kernel: int = 3


class StandardConv(ConvNormAct):
    archprof_block = "StandardConv"


@cache
def _network_shares() -> dict[str, tuple[str, float]]:
    shares = {}
    for network, block in (("resnet50", "Bottleneck"), ("resnet18", "BasicBlock"),
                            ("mobilenet_v1", "DepthwiseSeparable"), ("mobilenet_v2", "InvertedResidual")):
        p = profile(build_model(network, device="meta"))
        row = next(r for r in p.group("block") if r.name == block)
        shares[block] = (network, row.macs / p.totals.macs)
    return shares


@dataclass(frozen=True)
class BlockComparison:
    shapes: BlockShapes
    blocks: list[BlockCost]
    separable_ratio: float  # traced depthwise separable MACs over the standard conv's
    separable_ratio_closed_form: float  # the V1 paper's 1/N + 1/Dk^2
    conditions: Conditions | None = None  # every block's trace: one input of 1 x channels x size x size on meta


def compare_blocks(shapes: BlockShapes | None = None) -> BlockComparison:
    s = shapes or BlockShapes()
    for name in ("channels", "out_channels", "size", "stride", "expansion", "kernel"):
        check_positive_int(name, getattr(s, name))
    if s.kernel % 2 == 0:
        raise ArchprofValueError(f"kernel must be odd, got {s.kernel}")
    c, n, h, st, t, k = s.channels, s.out_channels, s.size, s.stride, s.expansion, s.kernel
    ho = (h - 1) // st + 1  # output size of a k x k conv with padding k // 2
    if n % 4:
        raise ArchprofValueError(f"out_channels must be divisible by 4 for the bottleneck (C' / 4), got {n}")
    b = n // 4
    project = (c != n or st != 1) * c * n * ho * ho
    bn = nn.BatchNorm2d
    shares = _network_shares()
    try:
        with torch.device("meta"):  # shapes are all a trace needs: no weight memory at any width
            blocks = [
        ("StandardConv", f"conv {k}x{k}, BN, ReLU", StandardConv(c, n, k, st),
         k * k * c * n * ho * ho, "Dk^2 * M * N * Df^2"),
        ("DepthwiseSeparable", f"dw {k}x{k}, BN, ReLU, conv 1x1, BN, ReLU", DepthwiseSeparable(c, n, st),
         k * k * c * ho * ho + c * n * ho * ho, "Dk^2 * M * Df^2 + M * N * Df^2"),
        ("InvertedResidual", f"conv 1x1 to t*d', dw {k}x{k}, linear conv 1x1", InvertedResidual(c, n, st, t),
         h * h * c * t * c + ho * ho * c * t * (k * k + n) if t != 1 else ho * ho * c * (k * k + n),
         "h * w * d' * t * (d' + k^2 + d'')"),
        ("Bottleneck", "conv 1x1 to C'/4, conv 3x3, conv 1x1", Bottleneck(c, b, n, st, bn, False, 1, None),
         h * h * c * b + ho * ho * (9 * b * b + b * n) + project, "h * w * (C * b + 9 * b^2 + b * C') + shortcut"),
        ("BasicBlock", "conv 3x3, conv 3x3", BasicBlock(c, n, st, bn, None),
         ho * ho * 9 * (c * n + n * n) + project, "h * w * 9 * (C * C' + C'^2) + shortcut"),
            ]
    except (RuntimeError, OverflowError) as err:
        raise ArchprofValueError(f"blocks of {c} -> {n} channels cannot be built: {str(err).strip().splitlines()[0]}") from err
    result = []
    conditions = None
    for name, layers, module, closed, formula in blocks:
        p = profile(module, (1, c, h, h), device="meta")
        conditions = p.conditions
        network, share = shares.get(name, (None, None))
        result.append(BlockCost(
            block=name, layers=layers, macs=p.totals.macs, closed_form_macs=closed, formula=formula,
            params=p.totals.params, activations=p.totals.activations,
            peak_activation_bytes=p.totals.peak_activation_bytes, network=network, network_share=share,
        ))
    macs = {b.block: b.macs for b in result}
    return BlockComparison(s, result, macs["DepthwiseSeparable"] / macs["StandardConv"], 1 / n + 1 / (k * k), conditions)
