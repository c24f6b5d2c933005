"""``profile(rules=...)``: a convention changed for one profile, the global registry untouched."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import archprof
from archprof.tracing.rules import COST_RULES

aten = torch.ops.aten


def _gelu_net() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16, bias=False), nn.GELU())


def test_an_override_changes_one_profile_and_leaves_the_registry_as_it_was():
    before = dict(COST_RULES)
    plain = archprof.profile(_gelu_net(), (4, 8))
    # GELU is 5 FLOPs per element by default (README conventions); count it as 1 here only.
    cheap = archprof.profile(_gelu_net(), (4, 8), rules={aten.gelu: lambda args, kwargs, out: archprof.Cost(0, out.numel())})
    again = archprof.profile(_gelu_net(), (4, 8))
    plain_gelu, cheap_gelu, again_gelu = (next(r for r in p.group("layer") if r.name == "1").flops for p in (plain, cheap, again))
    assert plain_gelu == again_gelu == 5 * 4 * 16
    assert cheap_gelu == 4 * 16
    assert next(r for r in cheap.group("type") if r.name == "activation").flops == 4 * 16  # the layer type is kept
    assert before == COST_RULES


def test_an_override_by_overload_and_none_leaves_the_op_uncounted():
    p = archprof.profile(_gelu_net(), (4, 8), rules={aten.gelu.default: None})
    assert p.uncounted == {"aten.gelu": 1}
    with pytest.raises(archprof.UncountedOpsError, match="aten.gelu x1"):
        archprof.profile(_gelu_net(), (4, 8), rules={aten.gelu: None}, strict=True)


def test_a_bad_override_is_refused():
    with pytest.raises(TypeError, match="keyed by a torch.ops op"):
        archprof.profile(_gelu_net(), (4, 8), rules={"gelu": None})
    with pytest.raises(TypeError, match="must be a cost function, a CostRule or None"):
        archprof.profile(_gelu_net(), (4, 8), rules={aten.gelu: 5})


def test_ops_costed_by_names_exactly_the_ops_a_rule_is_registered_for():
    # crosscheck reads its sets of convolution and batch-norm ops from here
    from archprof.tracing.rules import batch_norm_cost, conv_cost, inference_batch_norm_cost, ops_costed_by

    aten = torch.ops.aten
    assert ops_costed_by(conv_cost) == {aten.convolution, aten._convolution}
    assert ops_costed_by(batch_norm_cost, inference_batch_norm_cost) == {
        getattr(aten, name) for name in ("native_batch_norm", "_native_batch_norm_legit", "_batch_norm_with_update",
                                         "cudnn_batch_norm", "miopen_batch_norm", "_native_batch_norm_legit_no_training",
                                         "_batch_norm_no_update") if hasattr(aten, name)}


# --- register_cost_rule, the public registry: its defaults and its one-line refusals -------------

_LIBRARIES: list[torch.library.Library] = []


def _fresh_ops(*names: str) -> list[torch._ops.OpOverloadPacket]:
    """Ops with no rule, defined once per process (this module may be imported twice)."""
    if not hasattr(torch.ops.archprof_registry_test, names[0]):
        _LIBRARIES.append(torch.library.Library("archprof_registry_test", "FRAGMENT"))
        for name in names:
            _LIBRARIES[-1].define(f"{name}(Tensor x) -> Tensor")
    return [getattr(torch.ops.archprof_registry_test, name) for name in names]


@pytest.fixture
def registry():
    """The global registry, restored after the test."""
    before = dict(COST_RULES)
    yield COST_RULES
    COST_RULES.clear()
    COST_RULES.update(before)


def test_a_rule_registers_for_each_op_of_a_list_with_its_flags_defaulting_to_false(registry):
    from archprof.tracing.rules import register_cost_rule

    first, second = _fresh_ops("first", "second")

    def cost(call):
        return archprof.Cost(0, 1)

    assert register_cost_rule([first, second], layer_type="elementwise")(cost) is cost
    assert registry[first] is registry[second]
    assert (registry[first].layer_type, registry[first].first_output_only, registry[first].whole) == ("elementwise", False, False)
    registry.pop(first), registry.pop(second)
    register_cost_rule(first, layer_type="elementwise", first_output_only=True, whole=True)(cost)
    assert (registry[first].first_output_only, registry[first].whole) == (True, True)


def test_register_cost_rule_refuses_what_it_cannot_register_in_one_line(registry):
    from archprof.tracing.rules import register_cost_rule

    (op,) = _fresh_ops("first", "second")[:1]
    with pytest.raises(TypeError) as caught:
        register_cost_rule(op, layer_type="elementwise", category="elementwise")
    assert str(caught.value) == "register_cost_rule takes layer_type or its deprecated name category, not both"
    with pytest.raises(TypeError) as caught:
        register_cost_rule(op)
    assert str(caught.value) == 'register_cost_rule needs the ops\' layer_type (e.g. layer_type="activation")'
    with pytest.raises(TypeError) as caught:
        register_cost_rule([aten.gelu.default], layer_type="activation")(lambda call: None)
    assert str(caught.value) == f"register_cost_rule expects torch.ops.<namespace>.<op> packets, got {aten.gelu.default!r}"
    with pytest.raises(ValueError) as caught:
        register_cost_rule(aten.gelu, layer_type="activation")(lambda call: None)
    assert str(caught.value) == "aten.gelu already has a cost rule"


def test_the_deprecated_category_warns_at_the_callers_line(registry):
    from archprof.tracing.rules import register_cost_rule

    (op,) = _fresh_ops("first", "second")[:1]
    with pytest.warns(DeprecationWarning) as caught:
        register_cost_rule(op, category="elementwise")(lambda call: None)
    assert str(caught[0].message) == "register_cost_rule(category=...) is deprecated: use layer_type="
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline is one more frame between
        assert caught[0].filename == __file__  # stacklevel 2: the line that called it
    assert registry[op].layer_type == "elementwise"


def test_a_rule_takes_one_call_unless_it_takes_args_kwargs_out():
    from archprof.tracing.rules import takes_call

    assert takes_call(lambda call: None)
    assert not takes_call(lambda args, kwargs, out: None)
    assert not takes_call(lambda call, *more: None)  # variadic: the 0.1 form's arguments may follow
    assert not takes_call(max)  # a builtin without a signature: the 0.1 form


def test_a_rule_in_the_0_1_form_gets_the_dispatchers_args_and_kwargs_and_keeps_its_function():
    from archprof.tracing.rules import make_rule

    seen = []

    def legacy_cost(args, kwargs, out):
        seen.append((type(args), type(kwargs)))
        return archprof.Cost(0, args[0].numel() + out.numel())

    def legacy_type(args, kwargs):
        return f"activation {args[0].dim()}d" if isinstance(kwargs, dict) else "?"

    rule = make_rule(legacy_cost, legacy_type)
    assert (rule.first_output_only, rule.whole) == (False, False)
    assert rule.cost.__wrapped__ is legacy_cost and rule.layer_type.__wrapped__ is legacy_type  # what the user registered
    p = archprof.profile(_gelu_net(), (4, 8), rules={aten.gelu: rule})
    assert seen == [(tuple, dict)]
    gelu = next(op for op in p.ops if op.op == "aten.gelu")
    assert (gelu.flops, gelu.layer_type) == (2 * 4 * 16, "activation 2d")
    flagged = make_rule(lambda call: None, "x", first_output_only=True, whole=True)
    assert (flagged.first_output_only, flagged.whole) == (True, True)


@pytest.mark.parametrize(("mask", "batch_statistics", "per_element"), [
    ((True, True, True), True, 9),  # x_hat 2, sum(dy) 1, sum(dy x_hat) 2, input 4
    ((True, True, True), False, 6),  # running statistics: the input gradient is dy * (w * rstd), 1
    ((True, False, False), True, 9),  # batch statistics need both sums for the input gradient
    ((True, False, False), False, 1),
    ((False, True, True), True, 5),  # weight and bias gradients alone
    ((False, True, False), True, 4),  # x_hat and sum(dy x_hat)
    ((False, False, True), True, 1),  # sum(dy)
    ((False, False, False), True, 0),
])
def test_a_normalizations_backward_costs_the_gradients_its_mask_asks_for(mask, batch_statistics, per_element):
    from archprof.tracing.rules import norm_backward_flops

    assert norm_backward_flops(10, mask, batch_statistics) == 10 * per_element
