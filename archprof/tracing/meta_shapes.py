"""Output shapes of the commonest ops on the meta device, without running torch's meta kernels.

torch's meta kernels for batch and layer norm, softmax and element-wise arithmetic are Python
references that take 0.1-0.5 ms a call (a few ms for softmax), the bulk of a meta forward, and the
first call of its meta convolution imports torch._dynamo (over a second of a command-line run).
Outputs here have the shape and dtype of the kernel's, element-wise ops' its strides too (those of a
transposed or sliced operand), the others contiguous; the cost rules read nothing else. Ops not listed run their own meta kernel, once per trace for each set of input
shapes: :class:`MetaOutputs` answers the repeats (a model repeats its layers) from the first call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

aten = torch.ops.aten


def _empty(shape: Any, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _floats(*tensors: torch.Tensor) -> bool:
    """All floating point, of one dtype: the only case the shortcuts take (no type promotion)."""
    return all(t.is_floating_point() and t.dtype == tensors[0].dtype for t in tensors)


def _positive(*values: Any) -> bool:
    return all(isinstance(v, int) and v >= 1 for v in values)


def _batch_norm(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    x = args[0]
    if kwargs or x.dim() < 2 or x.numel() == 0 or x.dtype not in (torch.float32, torch.float64):
        return None
    tensors = [a for a in args[1:5] if isinstance(a, torch.Tensor)]
    if not _floats(x, *tensors) or any(t.shape != (x.shape[1],) for t in tensors):
        return None
    stats = (x.shape[1],)
    return _empty(x.shape, x.dtype), _empty(stats, x.dtype), _empty(stats, x.dtype)


def _binary(args: tuple, kwargs: dict) -> torch.Tensor | None:
    a, b = args[0], args[1]
    if kwargs or len(args) > 2 or not a.is_floating_point():
        return None
    if not isinstance(b, torch.Tensor):
        return _scalar_operands(args, kwargs) if isinstance(b, (int, float)) and not isinstance(b, bool) else None
    if not _floats(a, b):
        return None
    if a.is_contiguous() and b.is_contiguous() and a.shape == b.shape:
        return _empty(a.shape, a.dtype)
    shape = _broadcast(a.shape, b.shape)
    if shape is None:
        return None  # not broadcastable: torch's kernel raises
    strides = _elementwise_strides(shape, [_expanded_strides(t, shape) for t in (a, b)])
    return None if strides is None else torch.empty_strided(shape, strides, dtype=a.dtype, device=_META)


def _expanded_strides(t: torch.Tensor, shape: list[int]) -> list[int]:
    """``t.expand(shape).stride()``: 0 along the dims it is broadcast over."""
    offset = len(shape) - t.dim()
    return [0] * offset + [0 if n == 1 and shape[offset + i] != 1 else s for i, (n, s) in enumerate(zip(t.shape, t.stride(), strict=True))]


def _contiguous_in(shape: Sequence[int], strides: Sequence[int], order: Sequence[int]) -> bool:
    expected = 1
    for d in order:
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def _elementwise_strides(shape: list[int], operands: list[list[int]]) -> list[int] | None:
    """The output strides of an element-wise op on operands of ``shape`` (their strides broadcast to
    it), as torch lays them out (torch._prims_common.compute_elementwise_output_strides, which is
    TensorIterator's rule): contiguous in the order of the operands' strides. None for the corner
    cases (no or one dimension, an empty or one-element tensor), which the kernel decides."""
    ndim = len(shape)
    if ndim < 2 or any(n < 1 for n in shape) or math.prod(shape) < 2:
        return None
    backwards = list(range(ndim - 1, -1, -1))
    contiguous = all(_contiguous_in(shape, s, backwards) for s in operands)
    channels_last = ndim == 4 and all(_contiguous_in(shape, s, (1, 3, 2, 0)) for s in operands)
    if contiguous and not channels_last:
        perm = list(range(ndim))
    elif channels_last and not contiguous:
        perm = [0, 2, 3, 1]
    else:
        def should_swap(a: int, b: int) -> int:
            for strides in operands:
                sa, sb = strides[a], strides[b]
                if sa == 0 or sb == 0:
                    continue
                if sa == sb:
                    if shape[b] >= shape[a]:
                        continue
                    return 1
                return -1 if sb >= sa else 1
            return 0

        order = backwards[:]  # innermost first, sorted by insertion with ambiguous comparisons
        for i in range(1, ndim):
            dim1 = i
            for dim0 in range(i - 1, -1, -1):
                comparison = should_swap(order[dim0], order[dim1])
                if comparison > 0:
                    order[dim0], order[dim1] = order[dim1], order[dim0]
                    dim1 = dim0
                elif comparison < 0:
                    break
        perm = order[::-1]
    strides = [0] * ndim
    step = 1
    for d in reversed(perm):
        strides[d] = step
        step *= max(shape[d], 1)
    return strides


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int] | None:
    """torch.broadcast_shapes for two shapes (which is a Python reference, 15 us a call)."""
    if len(a) < len(b):
        a, b = b, a
    shape = list(a)
    offset = len(a) - len(b)
    for i, n in enumerate(b):
        m = a[offset + i]
        if n != m and n != 1:
            if m != 1:
                return None
            shape[offset + i] = n
    return shape


def _convolution(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """aten.convolution's output; None (torch's kernel decides, and raises) for anything unusual."""
    if kwargs or len(args) != 9:
        return None
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args
    dims = w.dim() - 2
    if dims < 1 or x.dim() != dims + 2 or x.numel() == 0 or not _floats(x, w, *([bias] if bias is not None else [])):
        return None
    if not all(isinstance(v, (list, tuple)) and len(v) == dims for v in (stride, padding, dilation, output_padding)):
        return None
    if not (_positive(*stride, *dilation, groups) and all(isinstance(p, int) and p >= 0 for p in (*padding, *output_padding))):
        return None
    if transposed:
        if x.shape[1] != w.shape[0] or w.shape[0] % groups:
            return None
        channels = w.shape[1] * groups
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for n, k, s, p, d, op in zip(x.shape[2:], w.shape[2:], stride, padding, dilation, output_padding, strict=True)]
    else:
        if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups or any(op for op in output_padding):
            return None
        channels = w.shape[0]
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation, strict=True)]
    if any(n < 1 for n in sizes) or (bias is not None and bias.shape != (channels,)):
        return None
    return _empty((x.shape[0], channels, *sizes), x.dtype)


def _mean(args: tuple, kwargs: dict) -> torch.Tensor | None:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if len(args) > 3 or set(kwargs) - {"dim", "keepdim"} or not dims or x.dim() == 0 or not x.is_floating_point():
        return None
    if not all(isinstance(d, int) and -x.dim() <= d < x.dim() for d in dims):
        return None
    reduced = {d % x.dim() for d in dims}
    if len(reduced) != len(dims):
        return None  # a dim named twice: torch raises
    shape = [1 if i in reduced else n for i, n in enumerate(x.shape) if keepdim or i not in reduced]
    return _empty(shape, x.dtype)


def _addmm(args: tuple, kwargs: dict) -> torch.Tensor | None:
    if kwargs or len(args) != 3:
        return None
    bias, a, b = args
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or not _floats(bias, a, b):
        return None
    m, n = a.shape[0], b.shape[1]
    if bias.dim() > 2 or (bias.dim() >= 1 and bias.shape[-1] not in (1, n)) or (bias.dim() == 2 and bias.shape[0] not in (1, m)):
        return None
    return _empty((m, n), a.dtype)


def _max_pool2d(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    if kwargs or len(args) != 6 or args[5]:  # ceil_mode: torch's kernel
        return None
    x, kernel, stride, padding, dilation, _ = args
    if x.dim() not in (3, 4) or x.numel() == 0 or not x.is_floating_point():
        return None
    if not (len(kernel) == len(stride) == len(padding) == len(dilation) == 2):
        return None
    if not _positive(*kernel, *stride, *dilation) or any(not isinstance(p, int) or p < 0 or 2 * p > k for p, k in zip(padding, kernel, strict=True)):
        return None
    sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
             for n, k, s, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation, strict=True)]
    if any(n < 1 for n in sizes):
        return None
    shape = (*x.shape[:-2], *sizes)
    return _empty(shape, x.dtype), _empty(shape, torch.int64)


def _scalar_operands(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """An element-wise op on one float tensor and numbers (``-x``, ``rsqrt``, ``x ** 2``, ``x * 0.5``):
    the input's shape and dtype, its strides where it is dense (as the kernel keeps them)."""
    x = args[0]
    if kwargs or not x.is_floating_point():
        return None
    if any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args[1:]):
        return None
    if x.is_contiguous():
        return _empty(x.shape, x.dtype)
    if x.dim() < 2:
        return None
    # Dense: the input's own strides; else (a slice) dense strides in the order of the input's, as
    # the kernel's empty_like infers them (and _elementwise_strides orders one operand).
    strides = x.stride() if _dense(x.shape, x.stride()) else _elementwise_strides(list(x.shape), [list(x.stride())])
    return None if strides is None else torch.empty_strided(x.shape, strides, dtype=x.dtype, device=_META)


def _dense(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Non-overlapping and dense: contiguous in the order of its strides (size-1 dims aside)."""
    return _contiguous_in(shape, strides, sorted(range(len(shape)), key=lambda d: strides[d]))


def _softmax(args: tuple, kwargs: dict) -> torch.Tensor | None:
    # _softmax(x, dim, half_to_float) and _safe_softmax(x, dim, dtype=None): no change of dtype only.
    x, dim = args[0], args[1] if len(args) > 1 else None
    if len(args) not in (2, 3) or (len(args) == 3 and args[2] not in (False, None)) or any(v is not None for v in kwargs.values()):
        return None
    if not isinstance(dim, int) or isinstance(dim, bool) or x.dim() == 0 or not -x.dim() <= dim < x.dim():
        return None
    return _empty(x.shape, x.dtype) if x.is_floating_point() and x.is_contiguous() else None


def _triangle(args: tuple, kwargs: dict) -> torch.Tensor | None:
    # tril/triu(x, diagonal): any dtype (SDPA's causal mask is boolean).
    x = args[0]
    if kwargs or x.dim() < 2 or not x.is_contiguous() or any(isinstance(a, bool) or not isinstance(a, int) for a in args[1:]):
        return None
    return _empty(x.shape, x.dtype)


def _mm(args: tuple, kwargs: dict) -> torch.Tensor | None:
    if kwargs or len(args) != 2:
        return None
    a, b = args
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or not _floats(a, b):
        return None
    return _empty((a.shape[0], b.shape[1]), a.dtype)


def _layer_norm(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    # native_layer_norm(x, normalized_shape, weight, bias, eps) -> (out, mean, rstd)
    if kwargs or len(args) != 5:
        return None
    x, normalized, weight, bias, _ = args
    n = len(normalized) if isinstance(normalized, (list, tuple)) else 0
    if n == 0 or x.dim() < n or tuple(x.shape[x.dim() - n:]) != tuple(normalized) or x.dtype not in (torch.float32, torch.float64):
        return None
    params = [t for t in (weight, bias) if t is not None]
    if not all(isinstance(t, torch.Tensor) for t in params) or not _floats(x, *params) or any(t.shape != x.shape[x.dim() - n:] for t in params):
        return None
    stats = (*x.shape[: x.dim() - n], *([1] * n))
    return _empty(x.shape, x.dtype), _empty(stats, x.dtype), _empty(stats, x.dtype)


# --- a training step's backward: each gradient has the shape of what it is the gradient of ---------


def _like(grad: torch.Tensor, *others: torch.Tensor) -> torch.Tensor | None:
    """A gradient shaped as ``grad`` and ``others`` (all contiguous, one shape and dtype)."""
    if not _floats(grad, *others) or any(t.shape != grad.shape or not t.is_contiguous() for t in (grad, *others)):
        return None
    return _empty(grad.shape, grad.dtype)


def _pointwise_backward(args: tuple, kwargs: dict) -> torch.Tensor | None:
    # threshold_backward(grad_output, self, threshold), hardtanh_backward(grad_output, self, min, max), ...
    if kwargs or not isinstance(args[1], torch.Tensor):
        return None
    return _like(args[0], args[1])


def _input_like_backward(args: tuple, kwargs: dict) -> torch.Tensor | None:
    # max_pool2d_with_indices_backward(grad_output, self, ...), _adaptive_avg_pool2d_backward(grad_output, self):
    # the gradient of the pool's input, shaped as that input.
    grad, x = args[0], args[1]
    if kwargs or not _floats(grad, x) or not grad.is_contiguous() or not x.is_contiguous():
        return None
    return _empty(x.shape, x.dtype)


def _masked(mask: Any, *made: Callable[[], torch.Tensor]) -> tuple | None:
    if not isinstance(mask, (list, tuple)) or len(mask) != len(made) or not all(isinstance(m, bool) for m in mask):
        return None
    return tuple(make() if wanted else None for wanted, make in zip(mask, made, strict=True))


def _convolution_backward(args: tuple, kwargs: dict) -> tuple | None:
    # convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
    # output_padding, groups, output_mask): the input's, the weight's and the bias's gradients.
    if kwargs or len(args) != 11 or not isinstance(args[10], (list, tuple)) or len(args[10]) != 3:
        return None
    grad, x, w, bias_sizes = args[:4]
    if not _floats(grad, x, w) or not all(t.is_contiguous() for t in (grad, x, w)) or grad.dim() != x.dim():
        return None
    bias = (grad.shape[1],)
    if args[10][2] and (bias_sizes is None or list(bias_sizes) != list(bias)):
        return None  # a bias gradient of another size than the output's channels: the kernel decides
    return _masked(args[10], lambda: _empty(x.shape, x.dtype), lambda: _empty(w.shape, w.dtype), lambda: _empty(bias, grad.dtype))


def _batch_norm_backward(args: tuple, kwargs: dict) -> tuple | None:
    # native_batch_norm_backward(grad_out, input, weight, running_mean, running_var, save_mean,
    # save_invstd, train, eps, output_mask): the input's, the weight's and the bias's gradients.
    if kwargs or len(args) != 10:
        return None
    grad, x, weight = args[:3]
    if x.dim() < 2 or not _floats(grad, x) or grad.shape != x.shape or not grad.is_contiguous() or not x.is_contiguous():
        return None
    channels = (x.shape[1],)
    if weight is not None and (weight.shape != channels or weight.dtype != x.dtype):
        return None
    return _masked(args[9], lambda: _empty(x.shape, x.dtype), lambda: _empty(channels, x.dtype), lambda: _empty(channels, x.dtype))


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
    aten.mul.Scalar: _scalar_operands,
    aten.pow.Tensor_Scalar: _scalar_operands,
    aten.neg.default: _scalar_operands,
    aten.rsqrt.default: _scalar_operands,
    aten.tanh.default: _scalar_operands,
    aten.silu.default: _scalar_operands,
    aten._softmax.default: _softmax,
    aten.tril.default: _triangle,
    aten.triu.default: _triangle,
    aten.mm.default: _mm,
    aten.native_layer_norm.default: _layer_norm,
    aten.threshold_backward.default: _pointwise_backward,
    aten.hardtanh_backward.default: _pointwise_backward,
    aten.max_pool2d_with_indices_backward.default: _input_like_backward,
    aten._adaptive_avg_pool2d_backward.default: _input_like_backward,
    aten.convolution_backward.default: _convolution_backward,
    aten.native_batch_norm_backward.default: _batch_norm_backward,
}
if hasattr(aten, "_safe_softmax"):  # torch >= 2.5: SDPA's softmax, where a fully masked row gives zeros
    FAST_META[aten._safe_softmax.default] = _softmax
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
    if not tensors or not all(t.is_meta for t in tensors):
        return None
    if func in IN_PLACE_META:
        if kwargs or not args[0].is_floating_point():
            return None
        others = [a for a in args[1:] if isinstance(a, torch.Tensor)]
        if any(t.shape != args[0].shape for t in others) or not _floats(args[0], *others):
            return None  # broadcasting or promotion in place: let the kernel check it
        if any(isinstance(a, bool) or not isinstance(a, (int, float, torch.Tensor, type(None))) for a in args[1:]):
            return None
        return args[0]
    shape_fn = FAST_META.get(func)
    return shape_fn(args, kwargs) if shape_fn is not None else None


_META = torch.device("meta")
# Arguments that decide an op's output metadata by their value (and type: 1, 1.0 and True promote
# differently), alongside the tensors' shapes, strides and dtypes.
_VALUES = frozenset({int, float, bool, complex, str, type(None), torch.dtype, torch.device, torch.layout, torch.memory_format})
_TENSORS = (torch.Tensor, torch.nn.Parameter)


class MetaOutputs:
    """An op's output on the meta device, torch's meta kernel run once per trace and input signature.

    A model repeats its layers: the second time an op sees the same input shapes, strides and
    dtypes and the same other arguments, its outputs are new empty tensors with the shapes, strides
    and dtypes that its meta kernel (or a shape rule above) gave the first time, as FakeTensorMode's
    dispatch cache answers a repeated op. Ops that return an input's storage (views) or write into
    an argument run every time: the tracer follows storages. One instance per trace, so that a
    trace's time does not depend on what an earlier trace ran.

    The signature :meth:`run` returns (views and writes included) decides everything the tracer
    records about the call but its storages: on meta a cost rule sees shapes and dtypes only, so
    the tracer measures a signature once.
    """

    def __init__(self) -> None:
        self._outputs: dict[tuple, tuple | None] = {}  # None: the first call's output cannot be rebuilt
        self._always_run: dict[Any, bool] = {}  # per op: views and writes

    def run(self, func: Any, args: tuple, kwargs: dict, tensors: list[torch.Tensor]) -> tuple[Any, tuple | None]:
        """The op's output, and its signature on meta (None on a real device, or for an argument
        that is not plain data): what decides its output's metadata and everything a rule reads."""
        if not all(t.is_meta for t in tensors):
            return func(*args, **kwargs), None
        always = self._always_run.get(func)
        if always is None:
            always = self._always_run[func] = _aliases_or_writes(func)
        key = _signature(func, args, kwargs)
        if always or key is None:  # a view or a write: run, for the storage it returns
            return _rule_or_kernel(func, args, kwargs, tensors), key
        spec = self._outputs.get(key, _UNSEEN)
        if spec is not _UNSEEN:  # None: not rebuilt from shapes, the kernel again
            return (_rule_or_kernel(func, args, kwargs, tensors) if spec is None else _rebuild(spec)), key
        out = _rule_or_kernel(func, args, kwargs, tensors)
        spec = _spec_of(out, {t.untyped_storage()._cdata for t in tensors})
        if spec is _ALIASES:  # _unsafe_view and the like: a view with no alias annotation
            self._always_run[func] = True
        else:
            self._outputs[key] = spec
        return out, key


def _rule_or_kernel(func: Any, args: tuple, kwargs: dict, tensors: list[torch.Tensor]) -> Any:
    """A shape rule's output, else the kernel's."""
    out = fast_meta_output(func, args, kwargs, tensors)
    return func(*args, **kwargs) if out is None else out


_UNSEEN = object()
_ALIASES = object()


def _aliases_or_writes(func: Any) -> bool:
    schema = func._schema
    if any(r.alias_info is not None for r in schema.returns) or torch.Tag.inplace_view in func.tags:
        return True
    return any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)


def _signature(func: Any, args: tuple, kwargs: dict) -> tuple | None:
    """What decides the op's output metadata: its arguments (tensors by shape, stride and dtype) and
    the default dtype (integer division and factories use it); None if an argument is not plain data."""
    parts: list[Any] = [func, torch.get_default_dtype()]
    if not _describe(args, parts):
        return None
    for name, value in kwargs.items():
        parts.append(name)
        if not _describe((value,), parts):
            return None
    return tuple(parts)


def _describe(values: Sequence[Any], parts: list[Any]) -> bool:
    for value in values:
        kind = type(value)
        if kind in _VALUES:
            parts.append(kind)
            parts.append(value)
        elif kind in _TENSORS:
            parts.append(kind)
            parts.append(value.shape)
            parts.append(value.stride())
            parts.append(value.dtype)
        elif kind is list or kind is tuple:
            parts.append(kind)
            parts.append(len(value))
            if not _describe(value, parts):
                return False
        else:  # a generator, a tensor subclass, an object: no telling what the kernel reads from it
            return False
    return True


def _spec_of(out: Any, input_storages: set[int]) -> Any:
    """How to rebuild ``out`` as new empty meta tensors; None where that would not be the same
    (not meta tensors, an offset or a storage larger than the tensor), _ALIASES for a view."""
    single = isinstance(out, torch.Tensor)
    items = (out,) if single else out
    if not single and type(out) not in (tuple, list):
        return None
    specs = []
    storages = set()
    for t in items:
        if type(t) in _VALUES:
            specs.append(t)
            continue
        if type(t) is not torch.Tensor or not t.is_meta:
            return None
        storage = t.untyped_storage()
        if storage._cdata in input_storages:
            return _ALIASES
        if storage._cdata in storages or t.storage_offset():
            return None
        storages.add(storage._cdata)
        spec = (tuple(t.shape), t.stride(), t.dtype)
        if _rebuild_one(spec).untyped_storage().nbytes() != storage.nbytes():
            return None
        specs.append(spec)
    return (specs[0],) if single else (type(out), tuple(specs))


def _rebuild_one(spec: tuple) -> torch.Tensor:
    shape, stride, dtype = spec
    return torch.empty_strided(shape, stride, dtype=dtype, device=_META)


def _rebuild(spec: tuple) -> Any:
    if len(spec) == 1:
        return _rebuild_one(spec[0])
    kind, items = spec
    return kind(_rebuild_one(s) if type(s) is tuple else s for s in items)
