"""The tracer's shape-only outputs on the meta device agree with torch's own meta kernels: same
shape and dtype where they answer, and they decline (torch's kernel decides, or raises) on
anything they cannot vouch for."""

from __future__ import annotations

import pytest
import torch

from archprof.tracing.meta_shapes import fast_meta_output

aten = torch.ops.aten


def meta(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


CASES = [
    (aten.add.Tensor, (meta(2, 3), meta(3))),
    (aten.add.Tensor, (meta(2, 3), meta(4))),  # not broadcastable
    (aten.mul.Tensor, (meta(2, 3, dtype=torch.int64), 2.5)),  # promotes to float
    (aten.sub.Tensor, (meta(2, 3, dtype=torch.bool), meta(2, 3, dtype=torch.bool))),  # torch rejects
    (aten.mul.Tensor, (meta(2, 3), meta(2, 3, dtype=torch.float64))),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 4, 3, 3), None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1)),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 2, 3, 3), meta(8), [1, 1], [0, 0], [2, 2], False, [0, 0], 2)),
    (aten.convolution.default, (meta(1, 4, 5, 5), meta(4, 3, 3, 3), None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1)),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 4, 3, 3), None, [0, 1], [0, 0], [1, 1], False, [0, 0], 1)),
    (aten.convolution.default, (meta(1, 4, 2, 2), meta(8, 4, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)),
    (aten.mean.dim, (meta(2, 3, 4, 4), [-1, -2], True)),
    (aten.mean.dim, (meta(2, 3, 4, 4), [7])),
    (aten.mean.dim, (meta(2, 3, 4, 4), [-1, 3])),
    (aten.mean.dim, (meta(2, 3, 4, 4, dtype=torch.float16), [1])),
    (aten.addmm.default, (meta(7), meta(5, 3), meta(3, 7))),
    (aten.addmm.default, (meta(3, 7), meta(5, 3), meta(3, 7))),
    (aten.addmm.default, (meta(7, dtype=torch.float64), meta(5, 3), meta(3, 7))),
    (aten.max_pool2d_with_indices.default, (meta(1, 3, 8, 8), [3, 3], [2, 2], [1, 1], [1, 1], False)),
    (aten.max_pool2d_with_indices.default, (meta(1, 3, 8, 8), [3, 3], [2, 2], [-1, -1], [1, 1], False)),
    (aten.max_pool2d_with_indices.default, (meta(1, 3, 8, 8), [0, 0], [2, 2], [0, 0], [1, 1], False)),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4), meta(8), meta(8), meta(8), meta(8), False, 0.1, 1e-5)),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4, dtype=torch.float64), meta(8, dtype=torch.float64),
                                      meta(8, dtype=torch.float64), meta(8, dtype=torch.float64), meta(8, dtype=torch.float64),
                                      False, 0.1, 1e-5)),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4), meta(4), meta(4), meta(4), meta(4), False, 0.1, 1e-5)),
    (aten.relu_.default, (meta(2, 3),)),
    (aten.add_.Tensor, (meta(2, 3, dtype=torch.int64), 1.5)),
    (aten.add_.Tensor, (meta(2, 3), meta(3))),
    # Transformers: element-wise ops with numbers, softmax, causal masks, matmuls, layer norm.
    (aten.pow.Tensor_Scalar, (meta(2, 3), 2)),
    (aten.pow.Tensor_Scalar, (meta(2, 3, dtype=torch.int64), 0.5)),  # promotes to float: declined
    (aten.mul.Scalar, (meta(2, 3, dtype=torch.bfloat16), 0.5)),
    (aten.mul.Scalar, (meta(2, 3), True)),
    (aten.neg.default, (meta(4, 5),)),
    (aten.rsqrt.default, (meta(4, 5, dtype=torch.float16),)),
    (aten.rsqrt.default, (meta(3, 4).t(),)),  # not contiguous: the kernel keeps its strides, declined
    (aten.tanh.default, (meta(4, 5),)),
    (aten.silu.default, (meta(4, 5),)),
    (aten._softmax.default, (meta(2, 4, 8, 8), -1, False)),
    (aten._softmax.default, (meta(2, 4, 8, 8, dtype=torch.float16), -1, True)),  # to float32: declined
    (aten._softmax.default, (meta(2, 4, 8, 8), 4, False)),  # no such dim
    (aten.tril.default, (meta(8, 8, dtype=torch.bool),)),
    (aten.triu.default, (meta(2, 8, 8), 1)),
    (aten.tril.default, (meta(8),)),  # one dimension: torch rejects
    (aten.mm.default, (meta(5, 3), meta(3, 7))),
    (aten.mm.default, (meta(5, 3), meta(4, 7))),
    (aten.mm.default, (meta(5, 3, dtype=torch.float16), meta(3, 7))),
    (aten.native_layer_norm.default, (meta(2, 16, 64), [64], meta(64), meta(64), 1e-5)),
    (aten.native_layer_norm.default, (meta(2, 16, 8, 8), [8, 8], None, None, 1e-5)),
    (aten.native_layer_norm.default, (meta(2, 16, 64), [32], meta(32), meta(32), 1e-5)),  # shape mismatch
    (aten.native_layer_norm.default, (meta(2, 16, 64, dtype=torch.bfloat16), [64], None, None, 1e-5)),
    *([(aten._safe_softmax.default, (meta(1, 12, 16, 16), -1))] if hasattr(aten, "_safe_softmax") else []),
]


def shapes(out):
    items = out if isinstance(out, tuple) else (out,)
    return [(tuple(t.shape), t.dtype) for t in items]


@pytest.mark.parametrize(("op", "args"), CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(CASES)])
def test_shortcut_agrees_with_torchs_meta_kernel_or_declines(op, args):
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    fast = fast_meta_output(op, args, {}, tensors)
    try:
        real = op(*args)
    except Exception:
        assert fast is None  # what torch rejects, the shortcut must not accept
        return
    if fast is not None:
        assert shapes(fast) == shapes(real)


ANSWERED = [
    (aten.pow.Tensor_Scalar, (meta(2, 3), 2)),
    (aten.mul.Scalar, (meta(2, 3, dtype=torch.bfloat16), 0.5)),
    (aten.neg.default, (meta(4, 5),)),
    (aten.rsqrt.default, (meta(4, 5, dtype=torch.float16),)),
    (aten._softmax.default, (meta(2, 4, 8, 8), -1, False)),
    (aten.tril.default, (meta(8, 8, dtype=torch.bool),)),
    (aten.mm.default, (meta(5, 3), meta(3, 7))),
    (aten.native_layer_norm.default, (meta(2, 16, 64), [64], meta(64), meta(64), 1e-5)),
    (aten.native_layer_norm.default, (meta(2, 16, 8, 8), [8, 8], None, None, 1e-5)),
]


@pytest.mark.parametrize(("op", "args"), ANSWERED, ids=[f"{op}-{i}" for i, (op, _) in enumerate(ANSWERED)])
def test_transformer_ops_are_answered_from_shapes_with_the_kernels_strides(op, args):
    # A GPT-2 or Llama forward on meta spends most of its time in these ops' Python meta kernels.
    fast = fast_meta_output(op, args, {}, [a for a in args if isinstance(a, torch.Tensor)])
    assert fast is not None
    real = op(*args)
    items = (fast, real) if isinstance(fast, tuple) else ((fast,), (real,))
    assert [(tuple(t.shape), t.dtype, t.stride()) for t in items[0]] == [(tuple(t.shape), t.dtype, t.stride()) for t in items[1]]
