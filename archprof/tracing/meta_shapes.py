"""Output shapes of the commonest ops on the meta device, without running torch's meta kernels.

torch's meta kernels for batch norm and broadcasting arithmetic are Python references that take
0.1-0.5 ms a call, the bulk of a meta forward. Outputs here are contiguous tensors of the same
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


FAST_META: dict[Any, Callable[[tuple, dict], Any]] = {
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
