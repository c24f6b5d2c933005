"""Tests that kill the mutants the rest of the suite let survive (benchmarks/mutation.py): each pins
a boundary of a cost rule or of the rule registry, with its closed form."""

from __future__ import annotations

import os

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


# --- the profile: strict mode's error, the repr, the memory message, the copies it runs ---------


class TwoInputs(nn.Module):
    def forward(self, x, y):
        torch.ops.aten._fft_r2c(x, [1], 0, True)  # no cost rule: uncounted, reported by name
        return x + y


def test_strict_mode_names_every_uncounted_op_and_keeps_them_on_the_error():
    from archprof.analysis.profile import UncountedOpsError

    class Twice(nn.Module):
        def forward(self, x):
            torch.ops.aten._fft_r2c(x, [1], 0, True)
            torch.ops.aten._fft_r2c(x, [1], 0, True)
            return torch.ops.aten.special_bessel_j0(x)

    with pytest.raises(UncountedOpsError) as caught:
        archprof.profile(Twice(), (2, 4), strict=True)
    assert caught.value.uncounted == {"aten._fft_r2c": 2, "aten.special_bessel_j0": 1}
    assert str(caught.value) == "ops with no cost rule: aten._fft_r2c x2, aten.special_bessel_j0 x1"


def test_repr_lists_every_input_and_the_uncounted_ops_and_says_none_for_no_input():
    p = archprof.profile(TwoInputs(), inputs=(torch.randn(2, 4), torch.randn(2, 4)))
    assert repr(p) == ("<Profile TwoInputs: 0 MACs, 8 FLOPs, 0 params; input 2x4, 2x4 (float32) on meta, "
                       "1 uncounted ops>")

    class Constant(nn.Module):
        def forward(self, n):
            return torch.ones(n, device="meta") * 2

    assert repr(archprof.profile(Constant(), inputs=(3,))) == "<Profile Constant: 0 MACs, 3 FLOPs, 0 params; input none (float32) on meta>"


def test_memory_sizes_are_written_in_binary_units():
    from archprof.analysis.profile import _gib

    assert [_gib(n) for n in (1023, 3 * 2**10, 5 * 2**20 + 2**19, 2**30)] == ["1023 B", "3.00 KiB", "5.50 MiB", "1.00 GiB"]


def test_a_meta_model_runs_on_the_cpu_with_seeded_weights_each_layer_initializing_its_own():
    """_real_state's contract: no builder, so a copy initialized by each layer's reset_parameters
    (seeded), other parameters from N(0, 0.02), other buffers zero; the global RNG left as it was."""
    from archprof.analysis.profile import _initialized_copy

    class Free(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.empty(1000, dtype=torch.float64, device="meta"))  # no layer initializes it
            self.lin = nn.Linear(4, 3, device="meta")
            self.steps = nn.Parameter(torch.empty(2, dtype=torch.int64, device="meta"), requires_grad=False)
            self.register_buffer("count", torch.empty(3, device="meta"))

    rng = torch.random.get_rng_state()
    copy = _initialized_copy(Free(), seed=7)
    assert torch.equal(torch.random.get_rng_state(), rng)
    # drawn in its own dtype (a float32 draw copied into float64 is another number)
    assert torch.equal(copy.scale, torch.randn(1000, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.02)
    torch.manual_seed(7)
    assert torch.equal(copy.lin.weight, nn.Linear(4, 3).weight)  # Linear's own initialization, seeded
    torch.random.set_rng_state(rng)
    assert copy.steps.tolist() == [0, 0] and copy.count.tolist() == [0.0, 0.0, 0.0]
    assert copy.scale.dtype == torch.float64 and copy.steps.dtype == torch.int64


def test_lazy_modules_are_initialized_on_meta_in_their_dtype_with_their_requires_grad():
    from archprof.analysis.profile import materialize_lazy
    from archprof.tracing.inputs import as_inputs

    model = nn.Sequential(nn.Linear(4, 4, dtype=torch.float64), nn.LazyLinear(3, dtype=torch.float64),
                          nn.LazyBatchNorm1d(dtype=torch.float64))
    model[1].weight = nn.parameter.UninitializedParameter(requires_grad=False, dtype=torch.float64)  # frozen
    copy = materialize_lazy(model, as_inputs(archprof.InputSpec((2, 4), torch.float64)))
    assert {t.device.type for t in [*copy.parameters(), *copy.buffers()]} == {"meta"}  # the eager layer too
    assert {t.dtype for t in [*copy.parameters(), *copy.buffers()] if t.is_floating_point()} == {torch.float64}
    assert (copy[1].weight.shape, copy[1].weight.requires_grad, copy[1].bias.requires_grad) == ((3, 4), False, True)
    assert isinstance(model[1].weight, nn.parameter.UninitializedParameter)  # the user's model stays lazy


def test_a_lazy_model_that_cannot_run_on_meta_is_initialized_on_the_cpu_with_ids_inside_its_vocabulary():
    class LazyTokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(1, 4)  # one token: any id but 0 is out of range on the CPU
            self.head = nn.LazyLinear(3)

        def forward(self, ids, *, scale):
            h = self.embed(ids)
            if h.sum().item() > float("inf"):  # data-dependent: meta cannot decide it
                h = h * 2
            return self.head(h) * scale

    inputs = {"ids": archprof.InputSpec((2, 5), torch.int64), "scale": 2.0}
    with pytest.warns(Warning, match="cannot run on the meta device"):
        p = archprof.profile(LazyTokens(), inputs=inputs)
    assert p.totals.macs == 2 * 5 * 4 * 3


def test_a_lazy_model_on_the_cpu_gets_inputs_in_its_own_dtype():
    class LazyStatistics(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4, bias=False, dtype=torch.float64)
            self.norm = nn.LazyBatchNorm1d(affine=False, dtype=torch.float64)  # lazy buffers, no lazy parameter

        def forward(self, x):
            h = self.lin(x)
            if h.sum().item() > float("inf"):  # data-dependent: meta cannot decide it
                h = h * 2
            return self.norm(h)

    # the CPU refuses a float32 input to a float64 layer: the input takes the model's dtype
    with pytest.warns(Warning, match="cannot run on the meta device"):
        p = archprof.profile(LazyStatistics(), (2, 4))
    assert (p.dtype, p.totals.macs) == ("float64", 2 * 4 * 4)


class FailsInside(nn.Module):
    def forward(self, x):
        raise ValueError("  bad input  \nsecond line")


class Wrapped(nn.Module):
    def __init__(self, at_root: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Identity(), FailsInside())
        self.at_root = at_root

    def forward(self, x):
        if self.at_root:
            raise KeyError("")
        return self.body(x)


def test_a_failing_forward_is_one_line_naming_the_innermost_module_and_the_errors_first_line():
    with pytest.raises(archprof.ProfileError) as caught:
        archprof.profile(Wrapped(at_root=False), (2, 3))
    assert str(caught.value) == "forward failed at input [2, 3] in body.1 (FailsInside): ValueError: bad input"
    with pytest.raises(archprof.ProfileError) as caught:
        archprof.profile(Wrapped(at_root=True), (2, 3))
    assert str(caught.value) == "forward failed at input [2, 3] in (model) (Wrapped): KeyError: ''"


def test_an_error_is_one_line_its_type_alone_when_it_says_nothing():
    from archprof.analysis.profile import _one_line

    class EmptyX(Exception):  # a name ending in X: only ": " is stripped from the end
        pass

    assert _one_line(ValueError("  first  \nsecond")) == "ValueError: first"
    assert _one_line(RuntimeError()) == "RuntimeError"
    assert _one_line(EmptyX()) == "EmptyX"


class SaysMeta(nn.Module):
    def forward(self, x):
        if x.device.type == "meta":
            raise RuntimeError("Meta tensors hold no data")  # as torch words it, capitalized or not
        return x * 2


def test_an_error_naming_the_meta_device_in_any_case_falls_back_to_the_cpu():
    with pytest.warns(Warning, match="cannot run on the meta device"):
        p = archprof.profile(SaysMeta(), (2, 3))
    assert (p.device, p.totals.flops) == ("cpu", 6)


def test_a_float64_lazy_model_that_cannot_run_on_meta_is_initialized_with_float64_inputs():
    # its lazy parameters carry their dtype before they have a shape: the inputs take it
    class LazyDouble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.LazyLinear(3, dtype=torch.float64)

        def forward(self, x):
            if x.sum().item() > float("inf"):  # data-dependent: meta cannot decide it
                x = x * 2
            return self.lin(x)

    with pytest.warns(Warning, match="cannot run on the meta device"):
        p = archprof.profile(LazyDouble(), (2, 4))
    assert (p.dtype, p.totals.macs) == ("float64", 2 * 4 * 3)


def test_a_real_forward_may_allocate_half_the_machines_memory_by_default(monkeypatch):
    import os

    from archprof.analysis.profile import default_max_memory

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 6_000_000}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert default_max_memory() == 4096 * 6_000_000 // 2 == 12_288_000_000
    assert type(default_max_memory()) is int  # a count of bytes

    def unsupported(name):
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", unsupported)  # not a POSIX system: 8 GiB
    assert default_max_memory() == 8 * 2**30 == 8_589_934_592


# --- the profile's groupings, conditions, memory limit and real copies -------------------------


def test_conditions_name_the_inputs_batch_device_mode_convention_and_version():
    from archprof.analysis.profile import CONVENTION

    p = archprof.profile(nn.Conv2d(3, 4, 1), (2, 3, 8, 8))
    assert p.conditions.as_dict() == {"input": "2x3x8x8", "dtype": "float32", "batch": 2, "device": "meta",
                                      "mode": "inference", "convention": CONVENTION, "version": archprof.__version__}
    two = archprof.profile(TwoInputs(), inputs=(torch.randn(2, 4), torch.randn(1, 4)))  # no batch they share
    assert (two.conditions.batch, two.conditions.shapes, two.conditions.dtypes) == (None, "2x4, 1x4", "float32")  # one dtype, once
    assert archprof.profile(TwoInputs(), inputs=(torch.randn(5, 4), torch.randn(5, 4))).conditions.batch == 5


def test_a_real_forward_is_refused_one_byte_above_its_memory_limit():
    # Linear(4, 3): 12 weights + 3 biases, 60 bytes; a 2 x 4 float input, 32 bytes
    assert archprof.profile(nn.Linear(4, 3), (2, 4), device="cpu", max_memory=92).totals.macs == 24
    with pytest.raises(archprof.ProfileError) as caught:
        archprof.profile(nn.Linear(4, 3), (2, 4), device="cpu", max_memory=91)
    assert str(caught.value) == ("a real cpu forward needs at least 92 B (inputs 32 B + weights 60 B), above the limit "
                                 "of 91 B; raise max_memory (--max-memory) to allow it")


class Tied(nn.Module):
    def __init__(self, device: str = "meta") -> None:
        super().__init__()
        self.a = nn.Linear(4, 4, device=device)
        self.b = nn.Linear(4, 4, device=device)
        self.b.weight = self.a.weight  # one tensor, two names
        self.register_buffer("scale", torch.ones(4, device=device))
        self.register_buffer("same_scale", self.scale)

    def forward(self, x):
        return self.b(self.a(x) * self.scale) * self.same_scale


def test_a_meta_model_with_tied_weights_runs_on_the_cpu_with_them_tied():
    p = archprof.profile(Tied(), (2, 4), device="cpu", strict=True)
    assert (p.device, p.totals.macs, p.totals.params) == ("cpu", 2 * 16 * 2, 16 + 4 + 4)
    built = archprof.profile(Tied(), (2, 4), device="cpu", build=lambda: Tied("cpu"))  # the builder's weights
    assert (built.device, built.totals.macs) == ("cpu", 2 * 16 * 2)


def test_a_builder_that_lacks_a_tensor_is_a_one_line_error():
    with pytest.raises(archprof.ProfileError) as caught:
        archprof.profile(Tied(), (2, 4), device="cpu", build=lambda: nn.Linear(4, 4))
    assert str(caught.value) == "the model built for the real forward has no tensor 'a.weight'"


def test_layer_rows_fold_to_a_depth_and_a_bad_depth_is_refused():
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU())), nn.Linear(4, 2))
    p = archprof.profile(model, (1, 4))
    assert [r.name for r in p.group("layer", 2)] == ["0.0", "0.1", "1"]
    assert [r.name for r in p.group("layer")] == ["0.0", "0.1.0", "0.1.1", "1"]
    for depth in (0, True, 1.5):
        with pytest.raises(ValueError) as caught:
            p.group("layer", depth)
        assert str(caught.value) == f"depth must be an integer >= 1, got {depth!r}"


def test_saved_bytes_rows_add_up_to_the_total_in_every_grouping():
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU()), nn.Linear(8, 2))
    p = archprof.profile(model, (3, 4), mode="train")
    assert p.totals.saved_bytes > 0
    for by in ("layer", "stage", "type"):
        assert sum(r.saved_bytes for r in p.group(by)) == p.totals.saved_bytes, by
    # by layer type: each ReLU keeps its 3 x 8 output (96 B), the first linear layer its 3 x 4 input
    # (48 B); the second and third linear layers' inputs are those ReLU outputs, held once
    assert [(r.name, r.saved_bytes) for r in p.group("type")] == [
        ("fully connected", 48), ("activation", 192), ("loss", 0), ("data movement", 0)]


class Declared(nn.Module):
    """Parts and pyramid levels as a detector declares them; P4 runs before P3 (top-down)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.body.archprof_part = "backbone"
        self.p3, self.p4 = nn.Linear(4, 4), nn.Linear(4, 4)
        self.p3.archprof_level, self.p4.archprof_level = "P3", "P4"
        self.p3.archprof_part = self.p4.archprof_part = "neck"
        self.head = nn.Linear(4, 2)
        self.head.archprof_part = "head"

    def forward(self, x):
        h = self.body(x)
        top = self.p4(h)
        return self.head(self.p3(h) + top)


def test_parts_and_levels_are_listed_as_declared():
    p = archprof.profile(Declared(), (1, 4))
    assert [(r.name, r.macs) for r in p.group("part")] == [("(model)", 0), ("backbone", 16), ("neck", 32), ("head", 8)]
    # a module outside every level is listed by its part
    assert [(r.name, r.macs) for r in p.group("level")] == [("(model)", 0), ("backbone", 16), ("P3", 16), ("P4", 16), ("head", 8)]


def test_a_declared_stage_that_never_ran_keeps_its_name_in_the_stride_grouping():
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, 2, 1)
            self.spare = nn.Conv2d(4, 4, 1)  # declared, never called

        def forward(self, x):
            return self.conv(x)

    assert archprof.profile(Unused(), (1, 3, 8, 8)).stage_strides() == {"(model)": "(model)", "conv": "/2", "spare": "spare"}


def test_materialized_memory_is_at_two_bytes_per_element_by_default():
    p = archprof.profile(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()), (1, 3, 8, 8))
    assert p.materialized_peak_bytes() == p.materialized_peak_bytes(2) == p.materialized_peak_bytes(4) // 2 > 0
    assert p.materialized_memory() == p.materialized_memory(2)


def test_an_empty_list_of_groupings_is_refused():
    p = archprof.profile(nn.Linear(4, 2), (1, 4))
    with pytest.raises(ValueError, match=r"^no grouping given \(choose from "):
        p.to_csv([])
    with pytest.raises(ValueError, match=r"^unknown grouping 'stages' \(choose from "):
        p.to_markdown(["stage", "stages"])


def test_a_convolution_without_bias_has_no_bias_gradient_to_sum():
    # weight gradient alone (the image needs none): N x C_out x H x W x C_in x k x k = 2 x 4 x 6 x 6 x 3 x 9
    p = archprof.profile(nn.Conv2d(3, 4, 3, padding=1, bias=False), (2, 3, 6, 6), mode="train")
    macs = 2 * 4 * 6 * 6 * 3 * 9
    conv = next(op for op in p.ops if op.op == "aten.convolution_backward")
    assert (conv.macs, conv.flops) == (macs, 2 * macs)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_reducing_a_dimension_of_one_costs_nothing(device):
    assert flops_of(lambda x: x.sum(dim=1), (3, 1), device) == 0


def test_a_model_that_materializes_nothing_peaks_at_zero_bytes():
    class Passes(nn.Module):
        def forward(self, n):
            return n  # no tensor in, none made

    p = archprof.profile(Passes(), inputs=(3,))
    assert (p.materialized_memory(), p.materialized_peak_bytes()) == ([], 0)


def test_an_empty_list_of_groupings_names_the_choices():
    from archprof.analysis.profile import GROUPINGS

    with pytest.raises(ValueError) as caught:
        archprof.profile(nn.Linear(4, 2), (1, 4)).to_csv([])
    assert str(caught.value) == f"no grouping given (choose from {', '.join(GROUPINGS)})"


def test_a_rule_made_with_a_layer_type_of_the_call_gets_the_call():
    from archprof.tracing.rules import make_rule

    rule = make_rule(lambda call: archprof.Cost(0, 1), lambda call: f"gelu of {call['self'].dim()}d")
    p = archprof.profile(nn.GELU(), (2, 3), rules={aten.gelu: rule})
    assert [(op.flops, op.layer_type) for op in p.ops if op.op == "aten.gelu"] == [(1, "gelu of 2d")]


def test_a_batch_norm_op_without_a_training_flag_trains():
    # _batch_norm_with_update (what export and compile lower a training batch norm to) has no
    # training argument: statistics 5 and affine 2 per element of its 2 x 3 x 4 x 4 input
    from archprof.tracing.rules import batch_norm_cost

    x, c = torch.empty(2, 3, 4, 4, device="meta"), torch.empty(3, device="meta")
    call = Call(aten._batch_norm_with_update.default, (x, c, c, c, c, 0.1, 1e-5), {}, (x, c, c, c))
    assert batch_norm_cost(call) == archprof.Cost(0, 7 * 96)


@pytest.mark.parametrize(("groups", "transposed", "layer_type"), [
    (1, False, "conv 3x3"), (2, False, "grouped conv 3x3"), (4, False, "depthwise 3x3"), (1, True, "transposed conv 3x3")])
def test_a_functional_convolution_is_typed_from_its_call(groups, transposed, layer_type):
    # outside an nn.Conv2d the op's own arguments say what it is: groups == input channels is depthwise
    weight = torch.empty(4, 4 // groups, 3, 3, device="meta")
    conv = (lambda x: torch.nn.functional.conv_transpose2d(x, weight)) if transposed else (
        lambda x: torch.nn.functional.conv2d(x, weight, groups=groups))
    p = archprof.profile(Apply(conv), (1, 4, 6, 6))
    assert [op.layer_type for op in p.ops if op.op == "aten.convolution"] == [layer_type]


def _nested(levels: int, inner: object = 1) -> object:
    return inner if levels == 0 else {"k": _nested(levels - 1, inner)}


def test_a_models_config_becomes_plain_data():
    from archprof.analysis.profile import config_of

    class Configured(nn.Linear):
        config = {"width": 0.5, "depth": None, "flag": True, "name": "r", "nan": float("nan"), "inf": float("inf"),
                  "sizes": (1, 2), "set": {3}, "nested": {1: [torch.float16]}, "device": torch.device("cpu"),
                  "deep": [[[[[[[[[1]]]]]]]]], "deepdict": _nested(9), "other": range(2), "cls": nn.Linear}

    assert config_of(Configured(2, 2)) == {
        "width": 0.5, "depth": None, "flag": True, "name": "r", "nan": "nan", "inf": "inf", "sizes": [1, 2],
        "set": [3], "nested": {"1": ["float16"]}, "device": "cpu", "deep": [[[[[[[["[1]"]]]]]]]],
        "deepdict": _nested(8, str(_nested(1))), "other": "range(0, 2)",  # 8 levels deep, then its text
        "cls": "<class 'torch.nn.modules.linear.Linear'>"}  # only dtypes and devices lose their "torch."


def test_ops_outside_every_stage_are_the_stride_row_of_the_model_itself():
    class RootAdd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, 2, 1)

        def forward(self, x):
            return self.conv(x) + 1  # the add runs in the model itself

    rows = archprof.profile(RootAdd(), (1, 3, 8, 8)).group("stride")
    assert [(r.name, r.stages) for r in rows] == [("/2", ("conv",)), ("(model)", ("(model)",))]


# --- the profile's bookkeeping: modes, declarations, shared tensors, tied weights on meta ---------


def test_numel_counts_every_tensor_of_a_nested_output_and_nothing_else():
    # an op's output may be a tuple of tensors (and Nones): the elements of each tensor, added
    from archprof.tracing.rules import numel

    assert numel((torch.empty(2, 3, device="meta"), [torch.empty(4, device="meta"), None], 7.0)) == 6 + 4
    assert (numel(None), numel(3), numel(())) == (0, 0, 0)


def test_a_profile_built_by_hand_refuses_an_unknown_mode_with_the_choices():
    p = archprof.profile(nn.Linear(4, 2), (1, 4))
    fields = {f: getattr(p, f) for f in ("model", "config", "input_shapes", "dtype", "device", "ops", "layer_types",
                                         "modules", "peak_activation_bytes", "materialized_tensors")}
    with pytest.raises(archprof.ArchprofError, match=r"^mode must be one of inference, train, got 'eval'$"):
        archprof.Profile(**fields, mode="eval")


def test_a_block_declared_by_a_property_is_the_propertys_value():
    class Numbered(nn.Module):  # a block that names itself from its own state
        def __init__(self, i):
            super().__init__()
            self.i, self.fc = i, nn.Linear(4, 4, bias=False)

        @property
        def archprof_block(self):
            return f"unit{self.i}"

        def forward(self, x):
            return self.fc(x)

    rows = archprof.profile(nn.Sequential(Numbered(1), Numbered(2)), (3, 4)).group("block")
    assert [(r.name, r.macs) for r in rows] == [("unit1", 3 * 4 * 4), ("unit2", 3 * 4 * 4)]


def test_a_plain_models_blocks_are_the_classes_of_its_top_level_children():
    class Stem(nn.Sequential):
        pass

    class Body(nn.Sequential):
        pass

    model = nn.Sequential(Stem(nn.Linear(4, 8, bias=False)), Body(nn.Linear(8, 2, bias=False), nn.ReLU()))
    rows = archprof.profile(model, (3, 4)).group("block")
    assert [(r.name, r.macs, r.flops) for r in rows] == [("Stem", 3 * 4 * 8, 2 * 3 * 4 * 8), ("Body", 3 * 8 * 2, 2 * 3 * 8 * 2 + 3 * 2)]


def test_a_buffer_two_modules_share_is_counted_once_and_a_missing_one_not_at_all():
    shared = torch.zeros(5)
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    a.register_buffer("table", shared)
    b.register_buffer("table", shared)
    model = nn.Sequential(a, b, nn.BatchNorm1d(4, track_running_stats=False))  # its running stats are None
    p = archprof.profile(model, (2, 4))
    assert p.totals.buffers == 5 == sum(t.numel() for t in model.buffers())  # named_buffers dedupes the same way


def test_training_a_meta_model_gives_its_own_parameters_no_gradient():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    p = archprof.profile(model, (5, 4), mode="train")
    assert p.totals.backward_macs == 5 * 3 * 2 + 5 * 4 * 3 + 5 * 3 * 2  # dW2 and dx of the second, dW1 of the first
    assert all(t.grad is None for t in model.parameters())


def test_a_block_whose_property_raises_attribute_error_declares_nothing():
    class Unnamed(nn.Module):  # its name is read from an attribute it never got
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        @property
        def archprof_block(self):
            return self.label

        def forward(self, x):
            return self.fc(x)

    assert [r.name for r in archprof.profile(nn.Sequential(Unnamed()), (3, 4)).group("block")] == ["Unnamed"]


def test_conditions_name_a_scalar_input_and_a_keyword_input_with_their_dtypes():
    class ScaledEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)

        def forward(self, scale, ids):
            return self.embed(ids) * scale

    p = archprof.profile(ScaledEmbedding(), inputs=archprof.Inputs((archprof.InputSpec(()),), {"ids": archprof.InputSpec((2, 3), torch.int64, 0, 10)}))
    assert (p.conditions.shapes, p.conditions.dtypes) == ("scalar, ids=2x3", "float32, int64")
    same = archprof.profile(nn.Linear(4, 2), (3, 4)).conditions
    assert (same.shapes, same.dtypes) == ("3x4", "float32")  # one dtype, named once


def test_a_training_steps_totals_split_forward_and_backward():
    # Linear(4, 2) without bias at batch 5: the forward's mm (40 MACs), the loss's sum of 10 values
    # (9 adds), the backward's weight gradient dy^T x (40 MACs); the input needs no gradient
    p = archprof.profile(nn.Linear(4, 2, bias=False), (5, 4), mode="train")
    t = p.totals
    assert (t.macs, t.flops, t.backward_macs, t.backward_flops) == (80, 80 + 9 + 80, 40, 80)
    assert (t.forward_macs, t.forward_flops) == (40, 89)


def test_a_training_steps_dataframe_carries_its_backward_columns_and_inferences_does_not():
    pytest.importorskip("pandas")  # the notebook extra
    p = archprof.profile(nn.Linear(4, 2, bias=False), (5, 4), mode="train")
    training = ("backward_macs", "backward_flops", "saved_bytes")
    assert p.row_fields[-3:] == training and list(p.to_dataframe("layer").columns)[-3:] == list(training)
    inference = archprof.profile(nn.Linear(4, 2, bias=False), (5, 4))
    assert not set(training) & set(inference.row_fields) and inference.row_fields[-1] == "bytes_written"


def test_arithmetic_intensity_is_flops_per_byte_moved_and_zero_where_nothing_moves():
    from archprof.analysis.profile import Row

    t = archprof.profile(nn.Linear(4, 2, bias=False), (5, 4)).totals
    assert t.arithmetic_intensity == t.flops / (t.bytes_read + t.bytes_written) == 80 / ((5 * 4 + 4 * 2) * 4 + 5 * 2 * 4)  # x and W read, y written, 4 bytes each
    assert Row("layer", "view").arithmetic_intensity == 0.0  # a group of views moves no bytes


def test_a_parameter_no_layer_type_owns_is_of_type_other_under_its_class():
    class Scale(nn.Module):  # a learned per-feature scale: a bare parameter and a multiply
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.w

    p = archprof.profile(nn.Sequential(nn.Linear(4, 4, bias=False), Scale()), (2, 4))
    assert (p.modules["1"].cls, p.modules["1"].layer_type, p.modules["0"].cls) == ("Scale", "other", "Linear")
    assert [(r.name, r.params) for r in p.group("type")] == [("fully connected", 16), ("elementwise", 0), ("other", 4)]


@pytest.mark.parametrize("rule", [lambda call: None, lambda call: 1 / 0], ids=["declines", "raises"])
def test_a_rule_that_cannot_read_a_call_leaves_it_uncounted_by_name(rule):
    p = archprof.profile(nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU()), (2, 4), rules={aten.relu: rule})
    assert [(o.op, o.layer_type, o.counted) for o in p.ops][-1] == ("aten.relu", "uncounted", False)
    assert p.uncounted == {"aten.relu": 1}


def test_a_configs_own_accessors_win_over_its_attributes():
    import dataclasses

    from archprof.analysis.profile import config_of

    class Exported:  # a transformers-like config: to_dict() is its data, not its attributes
        def __init__(self):
            self.cache = {"built": True}

        def to_dict(self):
            return {"hidden": 8}

    @dataclasses.dataclass
    class Fields:  # a dataclass: its fields, not what __post_init__ adds
        width: int = 4

        def __post_init__(self):
            self.derived = self.width * 2

    class With(nn.Linear):
        def __init__(self, config):
            super().__init__(2, 2)
            self.config = config

    assert config_of(With(Exported())) == {"hidden": 8}
    assert config_of(With(Fields())) == {"width": 4}
    # no config, or a "config" that is a layer or a tensor: nothing to report
    assert config_of(nn.Linear(2, 2)) == config_of(With(nn.Linear(2, 2))) == config_of(With(torch.zeros(2))) == {}


def test_an_ops_schema_is_read_once():
    from archprof.tracing import rules

    rules.bind(aten.add.Tensor, (torch.zeros(1), torch.zeros(1)), {})
    plan = rules._PLANS[aten.add.Tensor]
    assert rules._plan(aten.add.Tensor) is plan and [name for name, _, _ in plan] == ["self", "other", "alpha"]


def test_a_model_declares_its_default_inputs_or_is_told_it_has_none():
    class Tokens(nn.Module):  # an hf: model's pattern: its own default inputs, token ids
        archprof_inputs = archprof.InputSpec((2, 3), torch.int64, 0, 10)

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)

        def forward(self, ids):
            return self.embed(ids)

    p = archprof.profile(Tokens())
    assert (p.input_shapes, p.conditions.dtypes, p.totals.params) == ([(2, 3)], "int64", 40)
    with pytest.raises(archprof.ProfileError, match=r"^this model has no default input: pass input_shape or inputs$"):
        archprof.profile(nn.Linear(4, 2))


def test_a_forward_with_open_keywords_takes_any_and_one_with_no_arguments_says_so():
    class Open(nn.Module):
        def forward(self, x, **extra):
            return x * extra["scale"]

    class Constant(nn.Module):
        def forward(self):
            return torch.ones(3)

    p = archprof.profile(Open(), inputs={"x": archprof.InputSpec((2, 3)), "scale": 2.0})
    assert p.totals.flops == 6  # one multiply per element
    with pytest.raises(archprof.ProfileError, match=r"^the model's forward rejects these inputs: .* \(it takes: no arguments\)$"):
        archprof.profile(Constant(), (2, 3))


# --- which device runs the forward, and what each failure says -------------------------------------


class _DataDependent(nn.Module):  # reads a value: meta cannot run it, a real forward can
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return y if y.sum().item() > 1e9 else y * 2


class _RefusesItsData(nn.Module):  # reads a value, then fails on the real one too
    def forward(self, x):
        if x.sum().item() > -1e9:
            raise ValueError("no data like this")
        return x


def test_each_device_names_itself_in_a_failed_forward():
    bad = archprof.InputSpec((2, 5))  # Linear(4, 2) takes 4 features
    with pytest.raises(archprof.ProfileError, match=r"^forward failed on meta at input \[2, 5\] in \(model\) \(Linear\): RuntimeError: "):
        archprof.profile(nn.Linear(4, 2), inputs=bad, device="meta")
    with pytest.raises(archprof.ProfileError, match=r"^forward failed on cpu in \(model\) \(Linear\): RuntimeError: mat1 and mat2 shapes"):
        archprof.profile(nn.Linear(4, 2), inputs=bad, device="cpu")
    with pytest.raises(archprof.ProfileError, match=r"^forward failed on cpu in \(model\) \(_RefusesItsData\): ValueError: no data like this$"):
        archprof.profile(_RefusesItsData(), inputs=bad)  # meta cannot read the value; the CPU fallback fails


def test_only_a_real_forward_is_held_to_the_memory_limit():
    # Linear(4, 4) at 2 x 4, float32: weights 16 + 4 values, inputs 8 values, 4 bytes each
    assert archprof.profile(nn.Linear(4, 4), (2, 4), device="meta", max_memory=1).device == "meta"
    with pytest.raises(archprof.ProfileError, match=r"^a real CPU forward needs at least 112 B \(inputs 32 B \+ weights 80 B\), above the limit of 10 B; "):
        archprof.profile(_DataDependent(), (2, 4), max_memory=10)  # the CPU fallback


def test_the_cpu_fallback_says_why_meta_could_not_run_it():
    with pytest.warns(archprof.ArchprofNotice) as caught:
        p = archprof.profile(_DataDependent(), (2, 4))
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampolines are more frames between
        assert caught[0].filename == __file__  # stacklevel 3: the line that called profile()
    assert (p.device, p.notices) == ("cpu", [
        "the model cannot run on the meta device (RuntimeError: Tensor.item() cannot be called on meta tensors); profiled "
        "with a real CPU forward on seeded inputs (seed 0): a data-dependent model's count depends on its data"])


def test_a_bfloat16_model_on_meta_gets_bfloat16_inputs():
    p = archprof.profile(nn.Linear(4, 2, bias=False).to(torch.bfloat16), (3, 4), device="meta")
    assert (p.conditions.dtypes, p.totals.bytes_read, p.totals.bytes_written) == ("bfloat16", (3 * 4 + 4 * 2) * 2, 3 * 2 * 2)


def test_a_device_archprof_cannot_use_is_refused_by_name():
    with pytest.raises(archprof.ArchprofError, match=r"^device must be 'meta', 'cpu' or 'cuda', got 'tpu'$"):
        archprof.profile(nn.Linear(4, 2), (1, 4), device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_is_refused_where_there_is_none():
    with pytest.raises(archprof.ProfileError, match=r"^device 'cuda': CUDA is not available on this machine$"):
        archprof.profile(nn.Linear(4, 2), (1, 4), device="cuda")


def test_the_materialized_tensors_are_the_input_and_every_leaf_layers_output():
    # the V2 paper's Table 3 counts the tensors a layer writes: containers write none of their own
    model = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 2)))
    assert archprof.profile(model, (2, 4)).materialized_tensors == [
        ("input", (2, 4)), ("0", (2, 8)), ("1.0", (2, 8)), ("1.1", (2, 2))]


def test_a_built_model_keeps_its_architecture_under_another_name():
    from archprof.rendering.names import profile_names

    p = archprof.profile(archprof.build_model("mobilenet_v2", width=0.5), name="half")
    assert (p.model, p.architecture, profile_names([p])) == ("half", "mobilenet_v2", ["MobileNetV2 (0.5, 224)"])
    assert archprof.profile(nn.Linear(4, 2), (1, 4)).architecture is None  # not built from the registry


@pytest.mark.parametrize("n", [10, 1000])
def test_a_training_steps_peak_leaves_the_weights_gradient_to_the_step_total(n):
    # Linear(n, n) at batch 1: x and y (n each), the loss (1), and mm's n x n product dy^T x, the
    # temporary that AccumulateGrad copies into .grad; .grad itself is the step total's (README)
    p = archprof.profile(nn.Linear(n, n, bias=False), (1, n), mode="train")
    assert p.totals.peak_activation_bytes == 4 * (n * n + 2 * n + 1)


def test_lazy_modules_that_cannot_be_initialized_say_why_on_either_device():
    lazy_then_wrong = nn.Sequential(nn.LazyLinear(4), nn.Linear(3, 2))  # 4 features out, 3 expected
    with pytest.raises(archprof.ProfileError, match=r"^cannot initialize the model's lazy modules at these inputs: RuntimeError: "):
        archprof.profile(lazy_then_wrong, (2, 5))  # the meta attempt's error: any device would raise it
    with pytest.raises(archprof.ProfileError, match=r"^cannot initialize the model's lazy modules at these inputs: ValueError: no data like this$"):
        archprof.profile(nn.Sequential(nn.LazyLinear(4), _RefusesItsData()), (2, 5))  # meta cannot; the CPU fails


class _StridedBuffers(nn.Module):  # buffers that are views: every 2nd value, and one row expanded to three
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 16)
        self.register_buffer("odd", torch.arange(32.0)[1::2])
        self.register_buffer("rows", torch.arange(16.0).expand(3, 16))

    def forward(self, x):
        return self.fc(x) * self.odd.contiguous() + self.rows.contiguous()


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_views_stand_in_keeps_its_strides_so_contiguous_copies_it_as_the_model_does(device):
    # the model's own forward clones both views (16 and 3 x 16 values written); a contiguous stand-in would not
    p = archprof.profile(_StridedBuffers(), (3, 4), device=device)
    assert [(op.op, op.activations) for op in p.ops if op.op != "aten.t"] == [
        ("aten.addmm", 3 * 16), ("aten.clone", 16), ("aten.mul", 3 * 16), ("aten.clone", 3 * 16), ("aten.add", 3 * 16)]


def test_a_views_real_copy_holds_its_values():
    from archprof.analysis.profile import _moved

    model = _StridedBuffers()
    for view in (model.odd, model.rows, torch.arange(12).view(3, 4)[:, 1], torch.ones(6, dtype=torch.float64)[::3]):
        copy = _moved(view, "cpu", copy=True)
        assert (copy.stride(), copy.dtype, torch.equal(copy, view), copy.data_ptr() != view.data_ptr()) == (
            view.stride(), view.dtype, True, True)


def test_a_sparse_buffer_is_refused_by_name():
    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("adjacency", torch.eye(4).to_sparse())
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.sparse.mm(self.adjacency, self.fc(x))

    with pytest.raises(archprof.ProfileError, match=r"^adjacency is a sparse_coo tensor: archprof profiles models whose weights and buffers are dense$"):
        archprof.profile(Graph(), (4, 4))


class _ReadsAValue(nn.Module):  # data-dependent: meta cannot run it
    def __init__(self, lazy: bool = False):
        super().__init__()
        self.fc = nn.LazyLinear(4) if lazy else nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return y if y.sum().item() > 1e9 else y * 2


@pytest.mark.parametrize("lazy", [False, True])
def test_the_cpu_fallback_runs_inside_a_users_meta_device_context(lazy):
    # built and profiled under `with torch.device("meta")`: the seeded inputs and weights are still
    # made on the CPU. Linear(4, 4) at 2 x 4: 32 MACs, 64 + 8 (bias) FLOPs, the sum 7, the doubling 8
    with torch.device("meta"), pytest.warns(archprof.ArchprofNotice):
        p = archprof.profile(_ReadsAValue(lazy), (2, 4))
    assert (p.device, p.totals.macs, p.totals.flops) == ("cpu", 32, 64 + 8 + 7 + 8)


def test_a_meta_profile_neither_builds_nor_copies_the_model():
    import threading

    class Guarded(nn.Linear):  # holds a lock: a deep copy of it fails
        def __init__(self):
            super().__init__(4, 2)
            self.lock = threading.Lock()

    builds = []
    with torch.device("meta"):
        model = Guarded()
    p = archprof.profile(model, (1, 4), device="meta", build=lambda: builds.append(1) or Guarded())
    assert (p.device, p.totals.macs, builds) == ("meta", 8, [])


def test_binding_a_call_reads_keyword_only_arguments_by_name_and_leaves_missing_ones_out():
    from archprof.tracing.rules import bind

    x = torch.zeros(2, 3)
    # sum(Tensor self, *, ScalarType? dtype=None): a second positional value is not its dtype
    assert bind(aten.sum.default, (x, torch.float64), {}) == {"self": x, "dtype": None}
    # a required argument the call does not give is absent (a rule reading it declines), not None
    assert bind(aten.sum.default, (), {"input": x}) == {"dtype": None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_profile_counts_what_meta_counts():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    cuda, meta = archprof.profile(model, (2, 3, 8, 8), device="cuda"), archprof.profile(model, (2, 3, 8, 8), device="meta")
    assert cuda.device == "cuda" and (cuda.totals.macs, cuda.totals.flops) == (meta.totals.macs, meta.totals.flops)
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model left where it was


def test_a_views_real_copy_is_made_where_the_view_is_whatever_the_default_device():
    from archprof.analysis.profile import _moved

    view = torch.arange(32.0)[1::2]
    with torch.device("meta"):  # a user's context: the copy still holds the view's values
        copy = _moved(view, "cpu", copy=True)
    assert (copy.device.type, copy.stride(), torch.equal(copy, view)) == ("cpu", (2,), True)
