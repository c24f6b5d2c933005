"""Output shapes of the commonest ops on the meta device, without running torch's meta kernels.

torch's meta kernels for batch norm and broadcasting arithmetic are Python references that take
0.1-0.5 ms a call, the bulk of a meta forward, and the first call of its meta convolution imports
torch._dynamo (over a second of a command-line run). Outputs here are contiguous tensors of the same
shape and dtype as the kernel's; the cost rules read nothing else. Ops not listed run their own
meta kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

aten = torch.ops.aten


def _empty(shape: Any, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _batch_norm(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = args[0]
    stats = (x.shape[1],) if x.dim() > 1 else (0,)
    return _empty(x.shape, x.dtype), _empty(stats, torch.float32), _empty(stats, torch.float32)


def _binary(args: tuple, kwargs: dict) -> torch.Tensor | None:
    a, b = args[0], args[1]
    if not isinstance(b, torch.Tensor):
        return _empty(a.shape, torch.result_type(a, b))
    if a.dtype != b.dtype:
        return None  # type promotion between tensors: leave it to torch's kernel
    shape = a.shape if a.shape == b.shape else torch.broadcast_shapes(a.shape, b.shape)
    return _empty(shape, a.dtype)


def _convolution(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """aten.convolution's output; None (torch's kernel decides, and raises) for anything unusual."""
    if kwargs or len(args) != 9:
        return None
    x, w, _bias, stride, padding, dilation, transposed, output_padding, groups = args
    dims = w.dim() - 2
    if x.dim() != dims + 2 or not all(isinstance(v, (list, tuple)) and len(v) == dims for v in (stride, padding, dilation)):
        return None
    if transposed:
        if x.shape[1] != w.shape[0] or len(output_padding) != dims:
            return None
        channels = w.shape[1] * groups
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for n, k, s, p, d, op in zip(x.shape[2:], w.shape[2:], stride, padding, dilation, output_padding, strict=True)]
    else:
        if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
            return None
        channels = w.shape[0]
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation, strict=True)]
    if any(n < 1 for n in sizes):
        return None
    return _empty((x.shape[0], channels, *sizes), x.dtype)


def _mean(args: tuple, kwargs: dict) -> torch.Tensor | None:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if len(args) > 3 or kwargs.get("dtype") is not None or not dims or not x.is_floating_point():
        return None
    reduced = {d % x.dim() for d in dims}
    shape = [1 if i in reduced else n for i, n in enumerate(x.shape) if keepdim or i not in reduced]
    return _empty(shape, x.dtype)


def _addmm(args: tuple, kwargs: dict) -> torch.Tensor | None:
    bias, a, b = args[:3]
    if kwargs or len(args) > 3 or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype:
        return None
    if bias.dim() > 2 or (bias.dim() >= 1 and bias.shape[-1] not in (1, b.shape[1])):
        return None
    return _empty((a.shape[0], b.shape[1]), a.dtype)


def _max_pool2d(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    if kwargs or len(args) != 6 or args[5]:  # ceil_mode: torch's kernel
        return None
    x, kernel, stride, padding, dilation, _ = args
    if x.dim() not in (3, 4) or not (len(kernel) == len(stride) == len(padding) == len(dilation) == 2):
        return None
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        return None  # torch rejects padding over half the kernel
    sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
             for n, k, s, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation, strict=True)]
    if any(n < 1 for n in sizes):
        return None
    shape = (*x.shape[:-2], *sizes)
    return _empty(shape, x.dtype), _empty(shape, torch.int64)


FAST_META: dict[Any, Callable[[tuple, dict], Any]] = {
    aten.convolution.default: _convolution,
    aten.mean.dim: _mean,
    aten.addmm.default: _addmm,
    aten.max_pool2d_with_indices.default: _max_pool2d,
    aten.native_batch_norm.default: _batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm,
    aten.add.Tensor: _binary,
    aten.sub.Tensor: _binary,
    aten.mul.Tensor: _binary,
    aten.div.Tensor: _binary,
}
# In-place element-wise ops return their first argument, unchanged in shape.
IN_PLACE_META = {
    aten.relu_.default,
    aten.hardtanh_.default,
    aten.add_.Tensor,
    aten.mul_.Tensor,
    aten.clamp_.default,
    aten.clamp_min_.default,
    aten.sigmoid_.default,
    aten.silu_.default,
    aten.hardswish_.default,
}


def fast_meta_output(func: Any, args: tuple, kwargs: dict, tensors: list[torch.Tensor]) -> Any:
    """The op's output computed from shapes alone, or None to run torch's meta kernel."""
    if not tensors or any(t.device.type != "meta" for t in tensors):
        return None
    if func in IN_PLACE_META:
        other = args[1] if len(args) > 1 else None
        if isinstance(other, torch.Tensor) and other.shape != args[0].shape:
            return None  # broadcasting in place: let the kernel check it
        return args[0]
    shape_fn = FAST_META.get(func)
    return shape_fn(args, kwargs) if shape_fn is not None else None
