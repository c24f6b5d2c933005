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
from test_profile import Tiny
from torch import nn

import archprof
from archprof.analysis.crosscheck import crosscheck
from archprof.cli import run


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
