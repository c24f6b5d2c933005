"""A training step's backward ops answered from shapes on meta agree with torch's meta kernels, and
the shortcut answers every backward call of a ResNet's and a MobileNet's step (so a shortcut that
always declined would fail here)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import archprof
from archprof.tracing.meta_shapes import FAST_META, fast_meta_output

aten = torch.ops.aten
BACKWARD = {op for op in FAST_META if "backward" in str(op)}


def layout(value):
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), value.stride(), value.dtype
    if isinstance(value, (tuple, list)):
        return tuple(layout(v) for v in value)
    return value


class _Compare(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = self.answered = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        real = func(*args, **kwargs)
        if func in BACKWARD:
            self.calls += 1
            fast = fast_meta_output(func, args, kwargs, [a for a in args if isinstance(a, torch.Tensor)])
            if fast is not None:
                self.answered += 1
                assert layout(fast) == layout(real), func
        return real


@pytest.mark.parametrize(("name", "options", "calls"), [
    # ResNet-18: 20 convolutions, 20 batch norms, 17 ReLUs and a max pool (the global average pool
    # runs as a mean, whose gradient is a broadcast); its first convolution computes no input
    # gradient (the image needs none), the rest all three masks. MobileNetV2: 52, 52 and 35 ReLU6.
    ("resnet18", {}, 20 + 20 + 17 + 1),
    ("mobilenet_v2", {}, 52 + 52 + 35),
    ("resnet50", {"freeze_at": 2, "norm": "frozen_bn"}, None),
])
def test_every_backward_call_of_a_step_is_answered_as_torchs_meta_kernel(name, options, calls):
    model = archprof.build_model(name, **options).to("meta").train()
    check = _Compare()
    with check:
        model(torch.empty(2, 3, 64, 64, device="meta")).sum().backward()
    assert check.answered == check.calls > 0
    if calls is not None:
        assert check.calls == calls


def meta(*shape):
    return torch.empty(shape, device="meta")


@pytest.mark.parametrize(("op", "args"), [
    # a bias gradient of another size than the output's channels: left to the kernel
    (aten.convolution_backward.default, (meta(1, 8, 4, 4), meta(1, 4, 4, 4), meta(8, 4, 1, 1), [4], [1, 1], [0, 0], [1, 1],
                                         False, [0, 0], 1, [True, True, True])),
    (aten.threshold_backward.default, (meta(2, 3), meta(3, 2).t(), 0)),  # not contiguous
    (aten.native_batch_norm_backward.default, (meta(2, 4, 3), meta(2, 4, 3), meta(3), None, None, meta(4), meta(4), True,
                                                1e-5, [True, True, True])),  # weight of the wrong size
])
def test_the_backward_shortcut_declines_what_it_cannot_vouch_for(op, args):
    assert fast_meta_output(op, args, {}, [a for a in args if isinstance(a, torch.Tensor)]) is None
