"""Which layer type, block and stage an operation or a parameter belongs to."""

from __future__ import annotations

from torch import nn

from archprof.tracing.rules import conv_type

_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid,
    nn.LeakyReLU, nn.ELU, nn.PReLU, nn.Mish, nn.Softplus, nn.SELU, nn.CELU, nn.GLU, nn.LogSigmoid, nn.Threshold,
)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
_POOLS = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
_DATA_MOVEMENT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Flatten, nn.Unflatten)


def module_layer_type(module: nn.Module) -> str | None:
    """The layer type a module's class names, or None for containers and unknown classes."""
    declared = getattr(type(module), "archprof_layer_type", None)
    if declared:
        return declared
    if isinstance(module, nn.modules.conv._ConvNd):
        return conv_type(module.kernel_size, module.groups, module.in_channels, module.transposed)
    if isinstance(module, (nn.Linear, nn.Bilinear)):
        return "fully connected"
    if isinstance(module, _NORMS) or type(module).__name__ == "RMSNorm":
        return "normalization"
    if isinstance(module, _ACTIVATIONS):
        return "activation"
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        return "softmax"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, _POOLS):
        return "pooling"
    if isinstance(module, nn.Upsample):
        return "resampling"
    if isinstance(module, _DATA_MOVEMENT):
        return "data movement"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    return None
