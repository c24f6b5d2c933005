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
