"""The tracer pushes its torch-function mode (which costs every torch call of a forward) only for a
model whose code names a function costed whole (one_hot, the recurrent ops), and still costs those
whole wherever the model's code names them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import archprof
from archprof.tracing.tracer import names_in_code

WHOLE = {"one_hot", "lstm", "gru", "rnn_tanh", "rnn_relu"}


def _labels(x):
    return F.one_hot(x, 6)


def _encode(x):
    return _labels(x).float()


class InForward(nn.Module):
    def forward(self, x):
        return F.one_hot(x, 6)


class ThroughHelpers(nn.Module):  # forward -> _encode -> _labels -> F.one_hot
    def forward(self, x):
        return _encode(x)


class Held(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_the_names_a_model_calls_are_found_in_its_methods_helpers_and_held_functions():
    assert WHOLE & names_in_code(InForward()) == {"one_hot"}
    assert WHOLE & names_in_code(ThroughHelpers()) == {"one_hot"}
    assert WHOLE & names_in_code(Held(lambda x: F.one_hot(x, 6))) == {"one_hot"}
    assert WHOLE & names_in_code(nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 4))) == {"lstm"}
    assert WHOLE & names_in_code(nn.GRU(3, 4)) == {"gru"}
    # a CNN names none: its trace runs without the torch-function mode
    assert WHOLE & names_in_code(archprof.build_model("resnet50", device="meta")) == set()


def test_one_hot_through_helpers_is_one_op_of_no_arithmetic_on_every_device():
    # as tests/test_cost_rules.py's one_hot in forward: meta compares with arange, CPU scatters
    labels = torch.tensor([0, 5, 2, 2])
    for device in ("meta", "cpu"):
        p = archprof.profile(ThroughHelpers(), inputs=(labels,), device=device, strict=True)
        assert [op.op for op in p.ops] == ["aten.one_hot", "aten._to_copy"]
        assert (p.totals.flops, p.totals.activations) == (0, 24 + 24)  # the 4 x 6 one-hot, then as floats
