"""The tracer's shape-only outputs on the meta device agree with torch's own meta kernels: same
shape and dtype where they answer, and they decline (torch's kernel decides, or raises) on
anything they cannot vouch for."""

from __future__ import annotations

import pytest
import torch

from archprof.tracing.meta_shapes import MetaOutputs, _broadcast, fast_meta_output

aten = torch.ops.aten


def meta(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


# Whether the shortcut answers a case from its shapes, or declines it (torch's kernel decides).
ANSWERS, DECLINES = True, False


CASES = [
    (aten.add.Tensor, (meta(2, 3), meta(3)), ANSWERS),
    (aten.add.Tensor, (meta(2, 3), meta(4)), DECLINES),  # not broadcastable
    (aten.mul.Tensor, (meta(2, 3, dtype=torch.int64), 2.5), DECLINES),  # promotes to float
    (aten.sub.Tensor, (meta(2, 3, dtype=torch.bool), meta(2, 3, dtype=torch.bool)), DECLINES),  # torch rejects
    (aten.mul.Tensor, (meta(2, 3), meta(2, 3, dtype=torch.float64)), DECLINES),  # mixed dtypes: torch promotes
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 4, 3, 3), None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1), ANSWERS),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 2, 3, 3), meta(8), [1, 1], [0, 0], [2, 2], False, [0, 0], 2), ANSWERS),
    (aten.convolution.default, (meta(1, 4, 5, 5), meta(4, 3, 3, 3), None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1), ANSWERS),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), DECLINES),
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 4, 3, 3), None, [0, 1], [0, 0], [1, 1], False, [0, 0], 1), DECLINES),
    (aten.convolution.default, (meta(1, 4, 2, 2), meta(8, 4, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), DECLINES),
    (aten.mean.dim, (meta(2, 3, 4, 4), [-1, -2], True), ANSWERS),
    (aten.mean.dim, (meta(2, 3, 4, 4), [7]), DECLINES),
    (aten.mean.dim, (meta(2, 3, 4, 4), [-1, 3]), DECLINES),
    (aten.mean.dim, (meta(2, 3, 4, 4, dtype=torch.float16), [1]), ANSWERS),
    (aten.addmm.default, (meta(7), meta(5, 3), meta(3, 7)), ANSWERS),
    (aten.addmm.default, (meta(3, 7), meta(5, 3), meta(3, 7)), DECLINES),
    (aten.addmm.default, (meta(7, dtype=torch.float64), meta(5, 3), meta(3, 7)), DECLINES),  # mixed dtypes
    (aten.max_pool2d_with_indices.default, (meta(1, 3, 8, 8), [3, 3], [2, 2], [1, 1], [1, 1], False), ANSWERS),
    (aten.max_pool2d_with_indices.default, (meta(1, 3, 8, 8), [3, 3], [2, 2], [-1, -1], [1, 1], False), DECLINES),
    (aten.max_pool2d_with_indices.default, (meta(1, 3, 8, 8), [0, 0], [2, 2], [0, 0], [1, 1], False), DECLINES),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4), meta(8), meta(8), meta(8), meta(8), False, 0.1, 1e-5), ANSWERS),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4, dtype=torch.float64), meta(8, dtype=torch.float64),
                                      meta(8, dtype=torch.float64), meta(8, dtype=torch.float64), meta(8, dtype=torch.float64),
                                      False, 0.1, 1e-5), ANSWERS),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4), meta(4), meta(4), meta(4), meta(4), False, 0.1, 1e-5), DECLINES),
    (aten.relu_.default, (meta(2, 3),), ANSWERS),
    (aten.add_.Tensor, (meta(2, 3, dtype=torch.int64), 1.5), DECLINES),  # a float into integers: torch rejects
    (aten.add_.Tensor, (meta(2, 3), meta(3)), DECLINES),  # broadcast in place: the kernel checks it
    # Transformers: element-wise ops with numbers, softmax, causal masks, matmuls, layer norm.
    (aten.pow.Tensor_Scalar, (meta(2, 3), 2), ANSWERS),
    (aten.pow.Tensor_Scalar, (meta(2, 3, dtype=torch.int64), 0.5), DECLINES),  # promotes to float: declined
    (aten.mul.Scalar, (meta(2, 3, dtype=torch.bfloat16), 0.5), ANSWERS),
    (aten.mul.Scalar, (meta(2, 3), True), DECLINES),  # a bool scalar: left to torch
    (aten.neg.default, (meta(4, 5),), ANSWERS),
    (aten.rsqrt.default, (meta(4, 5, dtype=torch.float16),), ANSWERS),
    (aten.rsqrt.default, (meta(3, 4).t(),), ANSWERS),  # not contiguous: answered with the kernel's strides
    (aten.tanh.default, (meta(4, 5),), ANSWERS),
    (aten.silu.default, (meta(4, 5),), ANSWERS),
    (aten._softmax.default, (meta(2, 4, 8, 8), -1, False), ANSWERS),
    (aten._softmax.default, (meta(2, 4, 8, 8, dtype=torch.float16), -1, True), DECLINES),  # to float32: declined
    (aten._softmax.default, (meta(2, 4, 8, 8), 4, False), DECLINES),  # no such dim
    (aten.tril.default, (meta(8, 8, dtype=torch.bool),), ANSWERS),
    (aten.triu.default, (meta(2, 8, 8), 1), ANSWERS),
    (aten.tril.default, (meta(8),), DECLINES),  # one dimension: torch rejects
    (aten.mm.default, (meta(5, 3), meta(3, 7)), ANSWERS),
    (aten.mm.default, (meta(5, 3), meta(4, 7)), DECLINES),
    (aten.mm.default, (meta(5, 3, dtype=torch.float16), meta(3, 7)), DECLINES),  # mixed dtypes
    (aten.native_layer_norm.default, (meta(2, 16, 64), [64], meta(64), meta(64), 1e-5), ANSWERS),
    (aten.native_layer_norm.default, (meta(2, 16, 8, 8), [8, 8], None, None, 1e-5), ANSWERS),
    (aten.native_layer_norm.default, (meta(2, 16, 64), [32], meta(32), meta(32), 1e-5), DECLINES),  # shape mismatch
    (aten.native_layer_norm.default, (meta(2, 16, 64, dtype=torch.bfloat16), [64], None, None, 1e-5), DECLINES),  # float32 and float64 only
    *([(aten._safe_softmax.default, (meta(1, 12, 16, 16), -1), ANSWERS)] if hasattr(aten, "_safe_softmax") else []),
]


@pytest.mark.parametrize(("op", "args", "answers"), CASES, ids=[f"{op}-{i}" for i, (op, *_) in enumerate(CASES)])
def test_shortcut_answers_its_cases_as_torchs_meta_kernel_and_declines_the_rest(op, args, answers):
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    fast = fast_meta_output(op, args, {}, tensors)
    assert (fast is not None) == answers
    try:
        real = op(*args)
    except Exception:
        assert not answers  # what torch rejects, the shortcut must not accept
        return
    if answers:
        assert layout(fast) == layout(real)


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


def layout(out):
    items = out if isinstance(out, (tuple, list)) else (out,)
    return [(tuple(t.shape), t.stride(), t.dtype, t.untyped_storage().nbytes()) if isinstance(t, torch.Tensor) else t
            for t in items]


def rotated_half(x):
    return x[..., x.shape[-1] // 2:]


REPEATED = [
    (aten.neg.default, (rotated_half(meta(1, 4, 16, 8)),)),  # a slice: the kernel's strides, not a contiguous guess
    (aten.mul.Tensor, (meta(1, 4, 16, 8).transpose(1, 2), meta(1, 16, 1, 8))),  # broadcast over a transposed operand
    (aten.cat.default, ([meta(2, 3), meta(2, 5)], -1)),
    (aten.where.self, (meta(16, 16, dtype=torch.bool), meta(1, 16), meta(16, 1))),
    (aten.bmm.default, (meta(12, 197, 64), meta(12, 64, 197))),
    (aten.gelu.default, (meta(1, 197, 3072),)),
    (aten.embedding.default, (meta(32000, 64), meta(1, 128, dtype=torch.int64))),
    (aten.div.Tensor, (meta(4, dtype=torch.int64), 2)),  # true division of integers: the default dtype
    (aten.mul.Tensor, (meta(4, dtype=torch.int64), 2)),  # stays integer: 2 and 2.0 are different calls
    (aten.mul.Tensor, (meta(4, dtype=torch.int64), 2.0)),
    (aten.native_layer_norm.default, (meta(1, 197, 768), [768], meta(768), meta(768), 1e-6)),
    (aten.clone.default, (meta(3, 4).t(),)),
    (aten._to_copy.default, (meta(2, 3),), {"dtype": torch.float16}),
    (aten.arange.default, (16,), {"dtype": torch.int64, "device": torch.device("meta")}),  # a factory: no tensor in
]


@pytest.mark.parametrize("case", REPEATED, ids=[f"{c[0]}-{i}" for i, c in enumerate(REPEATED)])
def test_a_repeated_op_gets_what_torchs_meta_kernel_gives(case):
    # The first call runs (a shape rule or torch's kernel); a repeat with the same signature is
    # answered from it: the same shape, strides, dtype and storage size as the kernel's, in a new storage.
    op, args, kwargs = case if len(case) == 3 else (*case, {})
    tensors = [a for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor)]
    tensors += [t for a in args if isinstance(a, list) for t in a if isinstance(t, torch.Tensor)]
    outputs = MetaOutputs()
    first, signature = outputs.run(op, args, kwargs, tensors)
    again, same = outputs.run(op, args, kwargs, tensors)
    assert signature is not None and same == signature
    assert layout(first) == layout(again) == layout(op(*args, **kwargs))
    assert (again if isinstance(again, torch.Tensor) else again[0]).untyped_storage()._cdata not in {
        t.untyped_storage()._cdata for t in [*tensors, *([first] if isinstance(first, torch.Tensor) else first)]}


def test_views_and_writes_run_every_time_and_share_their_inputs_storage():
    outputs = MetaOutputs()
    x = meta(2, 3, 4)
    for op, args in [(aten.view.default, (x, [6, 4])), (aten._unsafe_view.default, (x, [6, 4])), (aten.t.default, (meta(3, 4),)),
                     (aten.add_.Tensor, (x, 1.0)), (aten.transpose.int, (x, 0, 1))]:
        (first, signature), (again, same) = outputs.run(op, args, {}, [args[0]]), outputs.run(op, args, {}, [args[0]])
        assert signature == same is not None  # the tracer measures the call once
        assert first.untyped_storage()._cdata == again.untyped_storage()._cdata == args[0].untyped_storage()._cdata
        assert (first is args[0]) == (op == aten.add_.Tensor) and (again is not first or op == aten.add_.Tensor)


def test_nothing_is_remembered_on_a_real_device():
    outputs = MetaOutputs()
    x = torch.ones(2, 3)
    out, signature = outputs.run(aten.mul.Tensor, (x, 2.0), {}, [x])
    assert signature is None and out.tolist() == [[2.0] * 3] * 2


def test_a_signature_tells_apart_what_decides_the_output():
    outputs = MetaOutputs()
    signatures = {
        outputs.run(op, args, {}, [a for a in args if isinstance(a, torch.Tensor)])[1]
        for op, args in [
            (aten.mul.Tensor, (meta(4, dtype=torch.int64), 2)),
            (aten.mul.Tensor, (meta(4, dtype=torch.int64), 2.0)),
            (aten.mul.Tensor, (meta(4, dtype=torch.int64), True)),
            (aten.mul.Tensor, (meta(4, dtype=torch.int32), 2)),
            (aten.mul.Tensor, (meta(2, 2), 2)),
            (aten.mul.Tensor, (meta(2, 2).t(), 2)),
            (aten.add.Tensor, (meta(2, 2), 2)),
        ]
    }
    assert len(signatures) == 7 and None not in signatures
    # what cannot be read as plain data is not remembered
    assert outputs.run(aten.normal.Tensor_float, (meta(3),), {"generator": torch.Generator()}, [meta(3)])[1] is None


@pytest.mark.parametrize(("a", "b"), [((2, 3), (3,)), ((2, 1), (1, 3)), ((0, 3), (1, 3)), ((5,), ()), ((1,), (0,)),
                                      ((2, 3), (4,)), ((0,), (2,)), ((4, 1, 2), (3, 1)), ((1, 1), (1, 1, 1))])
def test_broadcast_is_torchs(a, b):
    try:
        expected = list(torch.broadcast_shapes(a, b))
    except RuntimeError:
        expected = None
    assert _broadcast(a, b) == expected


def _layouts():
    """Operands laid out every way a model lays them out: contiguous, transposed, permuted, sliced,
    expanded, channels last, with size-1 dims, broadcast against each other."""
    base = meta(2, 3, 4, 5)
    yield base, meta(5)
    yield base.transpose(1, 2), base.transpose(1, 2)
    yield base.transpose(1, 2), meta(2, 4, 1, 5)
    yield meta(2, 4, 3, 5).transpose(1, 2), meta(1, 1, 4, 5)
    yield base.permute(0, 2, 3, 1), base.permute(0, 2, 3, 1).contiguous()
    yield base[..., 2:], base[..., :3]
    yield base.contiguous(memory_format=torch.channels_last), meta(1, 3, 1, 1)
    yield base.contiguous(memory_format=torch.channels_last), base
    yield meta(2, 1, 4, 5).contiguous(memory_format=torch.channels_last), meta(2, 1, 4, 5)
    yield meta(1, 8, 16, 4).transpose(1, 2), meta(1, 16, 8, 4)
    yield meta(4, 1).expand(4, 6), meta(6, 4).t()
    yield meta(3, 4).t(), meta(4, 1)
    yield meta(5, 6)[::2], meta(3, 6)
    yield meta(6, 6).t()[1:], meta(5, 1)
    yield meta(2, 3, 4).permute(2, 0, 1), meta(4, 1, 3)


@pytest.mark.parametrize("operands", list(_layouts()), ids=lambda o: "x".join(map(str, o[0].stride())) if isinstance(o, tuple) else "")
def test_elementwise_outputs_have_the_kernels_strides_on_any_layout(operands):
    # rotary embeddings and attention scale transposed and sliced tensors: the shape rule must give
    # the strides torch's meta kernel gives, or decline
    a, b = operands
    for op, args in [(aten.add.Tensor, (a, b)), (aten.mul.Tensor, (b, a)), (aten.neg.default, (a,)),
                     (aten.mul.Scalar, (a, 0.5)), (aten.mul.Tensor, (a, 2.0)), (aten.rsqrt.default, (b,))]:
        fast = fast_meta_output(op, args, {}, [t for t in args if isinstance(t, torch.Tensor)])
        real = op(*args)
        if fast is not None:
            assert (tuple(fast.shape), fast.stride(), fast.dtype) == (tuple(real.shape), real.stride(), real.dtype), op
