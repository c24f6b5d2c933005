"""archprof beside fvcore, thop and FlopCounterMode: agreement where conventions agree, and every
difference attributed to a named convention where they do not.

Peer totals on peers.md's Tiny net: fvcore 4,616,512; thop 5,017,952; FlopCounterMode 8,229,504
FLOPs (../shared/reference/peers.md). On ResNet-50 at 224: fvcore 4,111,512,576 and
FlopCounterMode 8,178,368,512 (peers.md).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from test_profile import Tiny
from torch import nn

import archprof
from archprof.analysis.crosscheck import crosscheck
from archprof.cli import run
from archprof.rendering.tables import crosscheck_tables


def convention_totals(check, peer_name):
    peer = next(p for p in check.peers if p.name == peer_name)
    totals = {}
    for layer in peer.explained.values():
        for why, amount in layer.items():
            totals[why] = totals.get(why, 0) + amount
    return peer, totals


@pytest.mark.parametrize("bias", [False, True])
def test_conv_and_linear_only_nets_agree_exactly_after_unit_conversion(bias):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=bias), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=bias),
        nn.Conv2d(8, 16, 1, bias=bias), nn.Flatten(), nn.Linear(16 * 8 * 8, 10, bias=bias),
    )
    check = crosscheck(net, (1, 3, 16, 16), "macs")
    expected = 8 * 8 * 8 * 27 + 8 * 8 * 8 * 9 + 8 * 8 * 16 * 8 + 1024 * 10
    assert check.archprof_total == expected
    for peer in check.peers:
        assert peer.error is None
        assert peer.total * peer.factor("macs") == expected, peer.name
        assert peer.explained == {}, peer.name


def test_tiny_net_each_peer_total_is_reproduced_and_every_difference_named():
    check = crosscheck(Tiny(), (1, 32, 56, 56), "macs")
    assert check.archprof_total == 4_114_752
    e = 32 * 56 * 56
    fvcore, why = convention_totals(check, "fvcore")
    assert fvcore.total == 4_616_512 == sum(fvcore.predicted.values())
    assert why == {"BN at 2 per element (1 without affine)": 4 * e, "adaptive average pool at 1 per input element": e}
    thop, why = convention_totals(check, "thop")
    assert thop.total == 5_017_952 == sum(thop.predicted.values())
    assert why == {"normalization at 4 per element (2 without affine)": 8 * e,
                   "average pool at 1 per input plus 1 per output": e + 32}
    fcm, why = convention_totals(check, "FlopCounterMode")
    assert (fcm.total, fcm.unit, why) == (8_229_504, "FLOPs", {})
    assert all(check.unexplained(p) == 0 for p in check.peers)


def test_tiny_net_in_flops_names_the_missed_activations_add_and_bias():
    check = crosscheck(Tiny(), (1, 32, 56, 56), "flops")
    e = 32 * 56 * 56
    fcm, why = convention_totals(check, "FlopCounterMode")
    assert why == {
        "normalization not counted": -4 * e,  # two inference BNs at 2 per element
        "activation not counted": -3 * e,  # ReLU6 (2 per element) and F.relu
        "element-wise op (residual add, scaling) not counted": -e,  # out + x
        "pooling not counted": -e,
        "FLOPs = 2 x MACs of conv / matmul, no bias": -10,  # the linear layer's 10 bias adds
    }
    assert check.archprof_total + sum(why.values()) == fcm.total


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
@pytest.mark.parametrize("unit", ["macs", "flops"])
def test_explained_differences_add_up_to_the_total_difference(name, unit):
    check = crosscheck(archprof.build_model(name), (1, 3, 224, 224), unit)
    for peer in check.peers:
        assert peer.error is None, peer.error
        difference = peer.total * peer.factor(unit) - check.archprof_total
        explained = sum(sum(layer.values()) for layer in peer.explained.values())
        assert explained == pytest.approx(difference, abs=0.5), peer.name
        assert check.unexplained(peer) == pytest.approx(0, abs=0.5), peer.name
        assert all(check.unexplained(peer, layer) == pytest.approx(0, abs=0.5) for layer in check.layers())
    if name == "resnet50":
        totals = {p.name: p.total for p in check.peers}
        assert totals["fvcore"] == 4_111_512_576 and totals["FlopCounterMode"] == 8_178_368_512


class Box:
    def __init__(self, value):
        self.value = value


class ReturnsAnObject(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return Box(self.fc(x))  # jit tracing (fvcore) cannot return this


def test_a_peer_that_fails_is_shown_failed_and_the_rest_still_run(tmp_path, capsys):
    check = crosscheck(ReturnsAnObject(), (3, 4), "macs")
    failed = {p.name: p.error for p in check.peers if p.error}
    assert list(failed) == ["fvcore"]
    assert all(p.total * p.factor("macs") == 24 for p in check.peers if p.error is None)
    factory = tmp_path / "boxed.py"
    factory.write_text(
        "import torch.nn as nn\n\nclass Box:\n    def __init__(self, v):\n        self.v = v\n\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n\n"
        "    def forward(self, x):\n        return Box(self.fc(x))\n"
    )
    assert run(["crosscheck", f"{factory}:M", "--input-shape", "1x4", "--format", "json"]) == 0
    peers = {p["name"]: p for p in json.loads(capsys.readouterr().out)["peers"]}
    assert peers["fvcore"]["error"] and peers["thop"]["error"] is None


def test_crosscheck_command_formats_and_bad_input(tmp_path, capsys):
    out = tmp_path / "cc.csv"
    assert run(["crosscheck", "mobilenet_v1", "--resolution", "64", "--format", "csv", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("model,tool,unit,layer,reported,macs,archprof")
    assert any(",thop,MACs,features.0.dw.1," in line and "normalization at 4 per element" in line for line in lines)
    assert run(["crosscheck", "mobilenet_v1", "--resolution", "64"]) == 0
    assert "all explained" in capsys.readouterr().out
    assert run(["crosscheck", "mobilenet_v9"]) == 2
    assert "unknown model 'mobilenet_v9'" in capsys.readouterr().err


def test_only_the_crosscheck_command_imports_fvcore_and_thop():
    import subprocess
    import sys

    script = (
        "import io, contextlib, sys\n"
        "from archprof.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(['compare', 'mobilenet_v1', 'mobilenet_v2'])\n"
        "    run(['profile', 'resnet18', '--format', 'json'])\n"
        "    run(['blocks'])\n"
        "print(sorted(m for m in ('fvcore', 'thop', 'matplotlib') if m in sys.modules))\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(['crosscheck', 'mobilenet_v1', '--resolution', '32'])\n"
        "print(sorted(m for m in ('fvcore', 'thop', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["[]", "['fvcore', 'thop']"]


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8, bias=False)

    def forward(self, x):
        return torch.special.bessel_j0(self.fc(x))


def test_crosscheck_names_archprofs_own_uncounted_ops_and_keeps_the_input_shape(tmp_path, capsys):
    check = crosscheck(Gated(), (3, 4), "macs")
    assert check.uncounted == {"aten.special_bessel_j0": 1}
    assert check.archprof_total == 3 * 4 * 8  # the batch of 3 is kept
    factory = tmp_path / "gated.py"
    factory.write_text(
        "import torch\nimport torch.nn as nn\n\nclass G(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 8, bias=False)\n\n    def forward(self, x):\n        return torch.special.bessel_j0(self.fc(x))\n"
    )
    assert run(["crosscheck", f"{factory}:G", "--input-shape", "3x4", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["archprof"]["uncounted"] == {"aten.special_bessel_j0": 1} and data["archprof"]["total"] == 96
    assert run(["crosscheck", f"{factory}:G", "--input-shape", "3x4"]) == 0
    assert "archprof: ops with no cost rule, not counted: aten.special_bessel_j0 x1" in capsys.readouterr().out


# --- attention: the peers' blind spots named, thop's own rules modelled --------------------------

FVCORE_SDPA = "scaled dot-product attention: no fvcore handle"
FCM_CPU_ATTENTION = ("CPU fused attention kernel counted 0: no formula for "
                     "aten._scaled_dot_product_flash_attention_for_cpu (pytorch #195460)")
THOP_SDPA = "scaled dot-product attention counted by thop's function counter, on the model"
THOP_MHA = "MultiheadAttention hook: projections and attention products, no bias; softmax at 3n - 1 per row of n"


def assert_nothing_unexplained(check):
    for peer in check.peers:
        assert peer.error is None, peer.error
        assert check.unexplained(peer) == 0, peer.name
        assert all(check.unexplained(peer, layer) == 0 for layer in check.layers()), peer.name
    rendered = json.dumps([t.rows for t in crosscheck_tables(check)], default=str)
    assert "UNEXPLAINED" not in rendered


class HeadsAttention(nn.Module):
    """q, k, v from one projection, split into heads (4-D: the CPU runs its fused kernel), plus a
    3-D call on the input itself (no heads: the CPU runs the math path, two bmm)."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.heads = heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        heads = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        return heads + F.scaled_dot_product_attention(x, x, x)


class SdpaNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = HeadsAttention()

    def forward(self, x):
        return self.attn(x)


def test_scaled_dot_product_attention_blind_spots_are_named_per_peer():
    check = crosscheck(SdpaNet(), (1, 5, 16), "macs")
    qkv = 5 * 16 * 48  # 3,840
    heads = 1 * 2 * 5 * 5 * (8 + 8)  # q k^T and (softmax) v per head: 800
    whole = 5 * 5 * (16 + 16)  # the 3-D call: 800
    assert check.archprof_total == qkv + heads + whole == 5_440
    assert check.uncounted == {} and check.device_gaps == {}
    fvcore, why = convention_totals(check, "fvcore")
    # fvcore's jit trace keeps each call as one aten::scaled_dot_product_attention node, with no handle,
    # whether the CPU runs its fused kernel or the math path's bmm inside it
    assert (fvcore.total, why) == (qkv, {FVCORE_SDPA: -(heads + whole)})
    thop, why = convention_totals(check, "thop")
    # thop's function counter charges q k^T + a v, exactly archprof's multiply-adds, on the model itself
    assert thop.total == 5_440 and thop.actual["(model)"] == heads + whole
    assert thop.explained == {"attn": {THOP_SDPA: -(heads + whole)}, "(model)": {THOP_SDPA: heads + whole}}
    fcm, why = convention_totals(check, "FlopCounterMode")
    # FlopCounterMode prices the math path's bmm (2 FLOPs per MAC) but has no formula for the CPU's fused kernel
    assert (fcm.total, why) == (2 * (qkv + whole), {FCM_CPU_ATTENTION: -heads})
    assert_nothing_unexplained(check)


class Attention(nn.Module):
    def __init__(self, need_weights):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x):
        return self.attn(query=x, key=x, value=x, need_weights=self.need_weights)[0]


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_thop_rule_reproduced_and_fused_kernel_named(need_weights):
    check = crosscheck(Attention(need_weights), (2, 5, 16), "macs")
    b, n, e, h = 2, 5, 16, 2
    projections = 4 * b * n * e * e  # q, k, v and out: 10,240
    attention = 2 * b * n * n * e  # q k^T and (softmax) v over all heads: 1,600
    assert check.archprof_total == projections + attention == 11_840
    thop, why = convention_totals(check, "thop")
    # thop's count_multihead_attention: the same products, no bias, plus its softmax at 3n - 1 per row of n
    softmax = b * h * n * (3 * n - 1)  # 280
    assert (thop.total, why) == (11_840 + softmax, {THOP_MHA: softmax})
    fvcore, fvcore_why = convention_totals(check, "fvcore")
    fcm, fcm_why = convention_totals(check, "FlopCounterMode")
    if need_weights:  # torch computes the weights with bmm: every peer prices them
        assert (fvcore.total, fvcore_why, fcm.total, fcm_why) == (11_840, {}, 2 * 11_840, {})
    else:  # scaled dot-product attention, the CPU's fused kernel
        assert (fvcore.total, fvcore_why) == (projections, {FVCORE_SDPA: -attention})
        assert (fcm.total, fcm_why) == (2 * projections, {FCM_CPU_ATTENTION: -attention})
    assert_nothing_unexplained(check)


@pytest.mark.parametrize(("layer", "shape", "thop_ops", "why"), [
    (nn.Softmax(dim=-1), (3, 8), 3 * (3 * 8 - 1), "softmax module at 3n - 1 per row of n"),  # 69
    (nn.LogSoftmax(dim=-1), (3, 8), 3 * 3 * 8, "log-softmax module at 3n per row of n"),  # 72
    (nn.Softmin(dim=-1), (3, 8), 3 * (3 * 8 - 1) + 24, "softmin module at 3n - 1 per row of n plus 1 per element"),
    (nn.Softmax2d(), (1, 3, 4, 4), 16 * (3 * 3 - 1), "softmax module at 3n - 1 per row of n"),  # over 3 channels
])
def test_thop_softmax_module_rules_reproduced(layer, shape, thop_ops, why):
    check = crosscheck(nn.Sequential(nn.Identity(), layer), shape, "macs")
    assert check.archprof_total == 0  # archprof's softmax is FLOPs, no multiply-adds
    thop, totals = convention_totals(check, "thop")
    assert (thop.total, totals) == (thop_ops, {why: thop_ops})
    assert_nothing_unexplained(check)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(10, 12, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


def test_lstm_thop_rule_reproduced_and_any_miss_is_archprofs():
    check = crosscheck(Recurrent(), (6, 3, 10), "macs")
    steps = 6 * 3
    lstm = steps * 2 * (4 * 12 * (10 + 12) + 4 * 12 * (24 + 12))  # 4 gates x H x (I + H), 2 directions: 100,224
    linear = steps * 24 * 3  # 1,296
    assert {k: v for k, v in check.meta.items() if v} == {"lstm": lstm, "fc": linear}  # the closed form on meta
    # thop/rnn_hooks.py count_lstm per step and direction: 4 gates of (I + H) x H + H products and 2 H bias adds,
    # then 3 H for the cell state and H for the output
    thop_lstm = steps * 2 * (4 * (22 * 12 + 12 + 24) + 3 * 12 + 12 + 4 * (36 * 12 + 12 + 24) + 3 * 12 + 12)
    thop, _ = convention_totals(check, "thop")
    assert thop.total == thop_lstm + linear == 115_344
    counted = check.archprof["lstm"]
    if check.uncounted:  # the CPU's fused kernel has no rule: the difference is archprof's, by name
        (op, calls), = check.uncounted.items()
        why = f"archprof: no rule for {op} ({calls} call{'s' if calls != 1 else ''})"
        assert check.device_gaps == {"lstm": {why: lstm - counted}}
    else:
        why = "LSTM hook: gate products, bias adds and gate arithmetic per step"
        assert counted == lstm
    assert thop.explained == {"lstm": {why: thop_lstm - counted}}
    assert_nothing_unexplained(check)


# --- an op archprof cannot cost: the difference is archprof's -----------------------------------


@torch.library.custom_op("archprof_crosscheck_test::opaque_linear", mutates_args=())
def opaque_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x @ weight.t()


@opaque_linear.register_fake
def _(x, weight):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


class FusedOnCpu(nn.Linear):
    """A linear layer that runs an opaque kernel on the CPU and plain F.linear elsewhere: what
    recurrent and attention layers do with their fused CPU kernels."""

    def forward(self, x):
        return F.linear(x, self.weight) if x.is_meta else opaque_linear(x, self.weight)


class WithOpaqueOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = FusedOnCpu(4, 8, bias=False)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_an_op_archprof_cannot_cost_is_named_as_archprofs_never_a_peers():
    check = crosscheck(WithOpaqueOp(), (3, 4), "macs")
    fc1, fc2 = 3 * 4 * 8, 3 * 8 * 2  # 96, 48
    miss = "archprof: no rule for archprof_crosscheck_test.opaque_linear (1 call)"
    assert check.uncounted == {"archprof_crosscheck_test.opaque_linear": 1}
    assert {k: v for k, v in check.archprof.items() if v} == {"fc2": fc2}
    # meta runs F.linear, which archprof costs: the gap is archprof's own
    assert check.meta_total == fc1 + fc2 and check.device_gaps == {"fc1": {miss: fc1}}
    thop, why = convention_totals(check, "thop")
    assert (thop.total, why) == (fc1 + fc2, {miss: fc1})  # thop's nn.Linear hook prices the subclass's call
    fvcore, why = convention_totals(check, "fvcore")
    assert (fvcore.total, why) == (fc2, {})
    fcm, why = convention_totals(check, "FlopCounterMode")
    assert (fcm.total, why) == (2 * fc2, {})
    assert_nothing_unexplained(check)
    totals, conventions, layers = crosscheck_tables(check)
    assert ["archprof on meta", "MACs", fc1 + fc2, fc1 + fc2, fc1, fc1, 0, "archprof's own: counts differ by device"] in totals.rows
    assert ["thop", miss, fc1] in conventions.rows and ["archprof on meta", miss, fc1] in conventions.rows
    assert not any(row[0] in ("thop", "fvcore", "FlopCounterMode") and not row[1].startswith("archprof")
                   for row in conventions.rows)


# --- the user's model, as it was found --------------------------------------------------------------


class Caching(nn.Module):
    """A forward that writes into its module: a cached tensor, a list, a counter updated in place."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.seen = []

    def forward(self, x):
        self.calls += 1
        self.seen.append(tuple(x.shape))
        self.last = x.detach()
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def test_crosscheck_leaves_the_users_model_as_it_found_it():
    model = Caching().train()
    model.fc.eval()
    model.fc.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tensors = [*model.parameters(), *model.buffers()]
    attributes = {m: set(vars(m)) for m in model.modules()}
    flags = {m: m.training for m in model.modules()}
    fast_path, rng = torch.backends.mha.get_fastpath_enabled(), torch.get_rng_state()
    check = crosscheck(model, (1, 3, 8, 8), "macs")
    assert all(p.error is None for p in check.peers)
    assert {m: m.training for m in model.modules()} == flags
    assert [*model.parameters(), *model.buffers()] == tensors  # the same tensor objects
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # their values: calls is still 0
    assert {m: set(vars(m)) for m in model.modules()} == attributes  # no `last`
    assert model.seen == [] and not model.fc.weight.requires_grad and model.conv.weight.requires_grad
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert torch.backends.mha.get_fastpath_enabled() == fast_path and torch.equal(torch.get_rng_state(), rng)
