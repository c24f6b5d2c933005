"""``profile(rules=...)``: a convention changed for one profile, the global registry untouched."""

from __future__ import annotations

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
