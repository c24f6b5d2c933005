"""Tests that kill the mutants the rest of the suite let survive (benchmarks/mutation.py): each pins
a boundary of a cost rule or of the rule registry, with its closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archprof
from archprof.tracing.rules import COST_RULES, Call, rules_with
from tests.test_cost_rules import Apply

aten = torch.ops.aten


def flops_of(fn, shape: tuple[int, ...], device: str = "meta") -> int:
    p = archprof.profile(Apply(fn), shape, device=device, strict=True)
    return p.totals.flops


# --- sorting: ceil(log2 k) comparisons per value of a row of k (README conventions) -------------


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize(("row", "per_value"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3)])
def test_a_sort_costs_ceil_log2_of_its_row_per_value(device, row, per_value):
    # a row of one needs no comparison; of two, one; of three, two (ceil(log2 3) = 2)
    assert flops_of(lambda x: torch.sort(x, dim=1)[0], (3, row), device) == 3 * row * per_value


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_sorting_a_single_number_costs_nothing_and_is_counted(device):
    # x[0, 0] is a view of one element (0-dimensional): its row is that one number
    assert flops_of(lambda x: torch.sort(x[0, 0])[0], (2, 3), device) == 0


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_searching_a_sequence_of_one_costs_nothing(device):
    # searchsorted: ceil(log2 n) per query; a sequence of n = 1 needs no comparison
    assert flops_of(lambda x: torch.searchsorted(x[:, :1].contiguous(), x), (4, 5), device) == 0


# --- adaptive pools: torch's windows [floor(i n / o), ceil((i + 1) n / o)) -----------------------
# (aten/src/ATen/native/AdaptivePooling.h start_index / end_index). From 7 to 3 the windows are
# [0, 3), [2, 5), [4, 7): 3 taps each, 9 per output row, 81 per channel in two dimensions.


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_adaptive_average_pool_over_uneven_windows_reads_each_windows_taps(device):
    # average: taps - 1 adds and one division per output, the taps in total
    assert flops_of(nn.AdaptiveAvgPool2d(3), (1, 2, 7, 7), device) == 2 * 81


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_adaptive_max_pool_over_uneven_windows_compares_taps_less_outputs(device):
    assert flops_of(lambda x: nn.functional.adaptive_max_pool2d(x, 3), (1, 2, 7, 7), device) == 2 * (81 - 9)


def test_adaptive_pool_counts_are_integers():
    # an uneven window must not turn the count into a fraction (floor division, not division)
    p = archprof.profile(nn.AdaptiveAvgPool1d(3), (1, 1, 7))
    assert p.totals.flops == 9 and isinstance(p.totals.flops, int)


# --- per-profile rule overrides -------------------------------------------------------------------


def test_removing_a_rule_the_registry_never_had_is_allowed():
    assert aten.lgamma not in COST_RULES  # no rule: the override has nothing to remove
    assert aten.lgamma not in rules_with({aten.lgamma: None})


def test_an_override_by_rule_object_is_that_rule():
    silu = COST_RULES[aten.silu]
    assert rules_with({aten.gelu: silu})[aten.gelu] is silu
    # SiLU's rule on GELU: 5 FLOPs per element either way (README conventions), under SiLU's layer type
    p = archprof.profile(nn.GELU(), (2, 8), rules={aten.gelu: silu})
    assert p.totals.flops == 5 * 16


# --- a call as a rule reads it ----------------------------------------------------------------------


def test_a_call_lists_its_arguments_by_the_ops_schema_names_defaults_filled_in():
    x, w = torch.empty(1, 4, 9, 9, device="meta"), torch.empty(8, 4, 3, 3, device="meta")
    call = Call(aten.convolution.default, (x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), {}, None)
    # aten::convolution(Tensor input, Tensor weight, Tensor? bias, SymInt[] stride, SymInt[] padding,
    # SymInt[] dilation, bool transposed, SymInt[] output_padding, SymInt groups)
    assert list(call) == ["input", "weight", "bias", "stride", "padding", "dilation", "transposed", "output_padding", "groups"]
    assert dict(Call(aten.sum.dim_IntList, (x, [1]), {}, None)) == {"self": x, "dim": [1], "keepdim": False, "dtype": None}


def test_an_override_by_function_keeps_the_ops_layer_type_and_first_output_only():
    def one(call):
        return archprof.Cost(0, 1)

    gelu = rules_with({aten.gelu: one})[aten.gelu]
    assert (gelu.layer_type, gelu.first_output_only) == ("activation", False)
    # batch norm's saved statistics are not activations: its override still counts the first output only
    batch_norm = rules_with({aten.native_batch_norm: one})[aten.native_batch_norm]
    assert (batch_norm.layer_type, batch_norm.first_output_only) == ("normalization", True)
    lgamma = rules_with({aten.lgamma: one})[aten.lgamma]  # an op without a rule of its own
    assert (lgamma.layer_type, lgamma.first_output_only) == ("other", False)


# --- an op with an auxiliary output -------------------------------------------------------------------


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_log_sigmoid_costs_and_writes_its_output_only_not_its_backward_buffer(device):
    # log_sigmoid_forward returns (output, buffer); the buffer is kept for backward. README: 3 FLOPs
    # per element, and activations exclude an op's auxiliary outputs.
    p = archprof.profile(nn.LogSigmoid(), (2, 5), device=device, strict=True)
    assert (p.totals.flops, p.totals.activations) == (3 * 10, 10)


def test_a_loss_outside_a_layer_is_of_layer_type_loss():
    # README conventions: the common losses are their own layer type, "loss"; mse: 2 per element + the mean's add
    p = archprof.profile(Apply(lambda x: nn.functional.mse_loss(x, x)), (3, 4), strict=True)
    assert [(r.name, r.flops) for r in p.group("type")] == [("loss", 2 * 12 + 12)]
