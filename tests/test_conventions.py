"""Each counting convention of the README's table ("What is counted: conventions"), pinned to the
number that table states, and the named-argument calls the rules read.

Every expected number below is the README row it cites applied to the shapes in the test, written
out as arithmetic: a rule that changes its per-element cost, forgets an affine term or reads the
wrong argument fails here. Each op is checked on meta (what ``archprof profile`` runs) and on CPU.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import archprof
from archprof.architectures.checkpoint import check_checkpoint
from archprof.rendering.writers import models_to_json
from archprof.tracing.rules import COST_RULES, Call, bind

aten = torch.ops.aten
DEVICES = ("meta", "cpu")


class Fn(nn.Module):
    """A model whose forward is one function (so the op runs outside any typed layer)."""

    def __init__(self, fn, *params: torch.Tensor | None) -> None:
        super().__init__()
        self.fn = fn
        self.extra = [p for p in params]

    def forward(self, x):
        return self.fn(x, *self.extra)


def flops(model: nn.Module, shape: tuple[int, ...], device: str) -> int:
    p = archprof.profile(model, shape, device=device)
    assert p.uncounted == {}, p.uncounted
    return p.totals.flops


# --- resampling: "bilinear ... upsampling | 0 | 7 ... per output element" -------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_bilinear_upsampling_is_7_flops_per_output_element(device):
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    assert flops(up, (1, 3, 4, 5), device) == 7 * (1 * 3 * 8 * 10)


@pytest.mark.parametrize("device", DEVICES)
def test_grid_sample_is_12_per_point_and_7_per_output_bilinear_6_per_point_nearest(device):
    grid = torch.zeros(1, 3, 4, 2)  # 12 sampling points; output 1 x 2 channels x 3 x 4 = 24 elements
    bilinear = Fn(lambda x, g: F.grid_sample(x, g.to(x.device), mode="bilinear", align_corners=False), grid)
    nearest = Fn(lambda x, g: F.grid_sample(x, g.to(x.device), mode="nearest", align_corners=False), grid)
    assert flops(bilinear, (1, 2, 5, 5), device) == 12 * 12 + 7 * 24
    assert flops(nearest, (1, 2, 5, 5), device) == 6 * 12


# --- reductions: "sum, max, min | inputs - outputs"; "variance, standard deviation | 4 per input" --


@pytest.mark.parametrize("device", DEVICES)
def test_sum_and_max_reductions_cost_inputs_minus_outputs(device):
    # 2 x 3 x 4 = 24 inputs; over the last dim 6 outputs, over everything 1.
    assert flops(Fn(lambda x: x.sum(dim=-1)), (2, 3, 4), device) == 24 - 6
    assert flops(Fn(lambda x: x.amax(dim=-1)), (2, 3, 4), device) == 24 - 6
    assert flops(Fn(lambda x: x.max()), (2, 3, 4), device) == 24 - 1
    assert flops(Fn(lambda x: x.sum()), (2, 3, 4), device) == 24 - 1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", [torch.var, torch.std])
def test_variance_and_standard_deviation_are_4_flops_per_input_element(device, fn):
    assert flops(Fn(lambda x: fn(x, dim=-1)), (2, 3, 4), device) == 4 * 24
    assert flops(Fn(lambda x: fn(x)), (2, 3, 4), device) == 4 * 24


# --- normalization: "with statistics | 5 per element, + 2 if affine"; "inference | 2 per element" --


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("affine", [True, False])
def test_group_and_layer_norm_are_5_per_element_plus_2_with_affine(device, affine):
    per_element = 5 + (2 if affine else 0)
    assert flops(nn.GroupNorm(2, 4, affine=affine), (2, 4, 3, 3), device) == per_element * 72
    assert flops(nn.LayerNorm(8, elementwise_affine=affine), (2, 4, 8), device) == per_element * 64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("affine", [True, False])
def test_training_mode_batch_norm_is_5_per_element_plus_2_with_affine_inference_2(device, affine):
    weight, bias = (torch.ones(4), torch.zeros(4)) if affine else (None, None)

    def batch_norm(x, training):
        w, b = (t.to(x.device) if t is not None else None for t in (weight, bias))
        stats = torch.zeros(4, device=x.device), torch.ones(4, device=x.device)
        return F.batch_norm(x, *stats, w, b, training=training)

    elements = 2 * 4 * 3 * 3
    assert flops(Fn(lambda x: batch_norm(x, True)), (2, 4, 3, 3), device) == (5 + (2 if affine else 0)) * elements
    assert flops(Fn(lambda x: batch_norm(x, False)), (2, 4, 3, 3), device) == 2 * elements


# --- bytes: "arithmetic intensity is FLOPs per byte" (read + written) -------------------------------


def test_arithmetic_intensity_is_flops_per_byte_read_and_written():
    # x @ W^T, float32: reads x (4 x 8) and W (16 x 8), writes 4 x 16; 2 FLOPs per MAC, no bias.
    p = archprof.profile(nn.Linear(8, 16, bias=False), (4, 8))
    read, written, flops_ = 4 * (4 * 8 + 16 * 8), 4 * (4 * 16), 2 * (4 * 8 * 16)
    assert (p.totals.bytes_read, p.totals.bytes_written, p.totals.flops) == (read, written, flops_)
    assert p.totals.arithmetic_intensity == flops_ / (read + written)
    (row,) = p.group("type")
    assert row.arithmetic_intensity == flops_ / (read + written)


# --- output contracts: JSON "input_shape" -----------------------------------------------------------


def test_json_input_shape_is_the_one_input_shape_or_a_list_of_shapes():
    class Two(nn.Module):
        def forward(self, a, b):
            return a + b

    one = json.loads(models_to_json([archprof.profile(nn.Linear(8, 16), (4, 8))], ["type"], None))
    assert one["models"][0]["input_shape"] == [4, 8]
    two = archprof.profile(Two(), inputs=archprof.Inputs(args=(torch.empty(2, 3), torch.empty(1, 3))))
    assert json.loads(models_to_json([two], ["type"], None))["models"][0]["input_shape"] == [[2, 3], [1, 3]]


# --- checkpoints: a DistributedDataParallel state dict's "module." prefix ---------------------------


def test_a_checkpoint_whose_keys_all_start_with_module_is_read_without_the_prefix(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = model.state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    torch.save(state, tmp_path / "plain.pt")
    assert check_checkpoint(model, tmp_path / "ddp.pt") == len(state) == 7  # weight, bias, 5 BN tensors
    assert check_checkpoint(model, tmp_path / "plain.pt") == 7
    # Only a prefix on every key is DDP's: one key without it and the prefixed ones are unexpected.
    mixed = {f"module.{k}" if k != "0.weight" else k: v for k, v in state.items()}
    torch.save(mixed, tmp_path / "mixed.pt")
    with pytest.raises(Exception, match="unexpected: module.0.bias"):
        check_checkpoint(model, tmp_path / "mixed.pt")


# --- rules read arguments by their schema names -----------------------------------------------------


def test_bind_names_every_argument_and_fills_the_schemas_defaults():
    x, w = torch.empty(1, 4, 5, 5, device="meta"), torch.empty(8, 2, 3, 3, device="meta")
    named = bind(aten.convolution.default, (x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 2), {})
    assert named["groups"] == 2 and named["transposed"] is False and named["input"] is x and named["weight"] is w
    pooled = bind(aten.max_pool2d.default, (x, [3, 3]), {})
    assert (pooled["stride"], pooled["padding"], pooled["dilation"], pooled["ceil_mode"]) == ([], [0, 0], [1, 1], False)
    assert bind(aten.sort.stable, (x,), {"stable": True})["dim"] == -1  # keyword-only, defaulted
    assert bind(aten.mse_loss.default, (x, x), {})["reduction"] == 1  # at::Reduction::Mean


def test_a_rule_reads_keyword_and_defaulted_arguments_by_name():
    # The same grouped convolution with groups passed by position: 4 in, 8 out, 2 groups, 3x3 on 5x5
    # -> 3x3 outputs: 8 x 9 outputs x (4 / 2) x 9 taps = 1296 MACs; the layer type is read from groups.
    p = archprof.profile(nn.Conv2d(4, 8, 3, groups=2, bias=False), (1, 4, 5, 5))
    assert p.totals.macs == 8 * 9 * 2 * 9
    assert [r.name for r in p.group("type")] == ["grouped conv 3x3"]
    call = Call(aten.mse_loss.default, (torch.empty(3), torch.empty(3)), {}, torch.empty(()))
    assert dict(call) == {"self": call.args[0], "target": call.args[1], "reduction": 1}


def test_mse_loss_reduction_is_read_by_name_whether_passed_or_defaulted():
    # mse_loss: 2 per element (subtract, square) + 1 per element when reduced (README "losses" row).
    target = torch.zeros(2, 5)
    reduced = Fn(lambda x, t: F.mse_loss(x, t.to(x.device)), target)
    unreduced = Fn(lambda x, t: F.mse_loss(x, t.to(x.device), reduction="none"), target)
    assert flops(reduced, (2, 5), "meta") == 2 * 10 + 10
    assert flops(unreduced, (2, 5), "meta") == 2 * 10


torch.library.define("archprof_conventions::scale", "(Tensor x, float factor=2.0) -> Tensor")


@torch.library.impl("archprof_conventions::scale", "CompositeExplicitAutograd")
def _scale(x, factor=2.0):
    return x * factor


@torch.library.register_fake("archprof_conventions::scale")
def _scale_fake(x, factor=2.0):
    return torch.empty_like(x)


class Scales(nn.Module):
    def forward(self, x):
        return torch.ops.archprof_conventions.scale(x) + torch.ops.archprof_conventions.scale(x, factor=1.0)


def test_a_custom_rule_takes_the_call_by_name_and_the_old_form_still_works():
    scale = torch.ops.archprof_conventions.scale

    def by_name(call):  # 1 FLOP per element, none when the factor is 1 (read by name, or defaulted)
        return archprof.Cost(0, 0 if call["factor"] == 1.0 else call.out.numel())

    def by_position(args, kwargs, out):
        return archprof.Cost(0, out.numel())

    p = archprof.profile(Scales(), (2, 3), rules={scale: by_name})
    assert p.totals.flops == 6 + 6  # the defaulted call (factor 2.0), then the add
    assert archprof.profile(Scales(), (2, 3), rules={scale: by_position}).totals.flops == 6 + 6 + 6
    assert scale not in COST_RULES
    archprof.register_cost_rule(scale, layer_type="elementwise")(by_name)
    try:
        assert [r.name for r in archprof.profile(Scales(), (2, 3)).group("type")] == ["elementwise"]
        assert archprof.profile(Scales(), (2, 3)).totals.flops == 12
    finally:
        COST_RULES.pop(scale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        archprof.register_cost_rule(scale, category="elementwise")(by_position)
    try:
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)
        assert archprof.profile(Scales(), (2, 3)).totals.flops == 18
    finally:
        COST_RULES.pop(scale)


def test_an_op_event_keeps_category_as_the_deprecated_name_of_layer_type():
    (op,) = [o for o in archprof.profile(nn.ReLU(), (2, 3)).ops if o.op == "aten.relu"]
    assert op.layer_type == op.category == "activation"
