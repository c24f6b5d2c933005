"""Normalization layers by name, as the seed's backbone chooses them from its config."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from archprof.errors import ArchprofValueError


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine terms, as in maskrcnn-benchmark.

    Weight, bias and running statistics are buffers, not parameters, and the seed applies no eps:
    ``x * (weight * running_var.rsqrt()) + (bias - running_mean * scale)``.
    """

    archprof_layer_type = "normalization"

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # BatchNorm2d checkpoints (torchvision's) carry a counter this layer has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * self.running_var.rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return str(self.num_features)


GN_GROUPS = 32  # the seed's MODEL.GROUP_NORM.NUM_GROUPS


def group_norm(channels: int) -> nn.GroupNorm:
    if channels % GN_GROUPS:
        raise ArchprofValueError(f"norm='gn' needs channels divisible by {GN_GROUPS}, got a layer with {channels}")
    return nn.GroupNorm(GN_GROUPS, channels)


NORMS: dict[str, Callable[[int], nn.Module]] = {
    "bn": nn.BatchNorm2d,
    "frozen_bn": FrozenBatchNorm2d,
    "gn": group_norm,
}
