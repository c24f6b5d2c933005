"""`archprof profile NAME --latency`: measured per-layer time beside the counted MACs.

Times themselves are not asserted (the machines are shared and noisy); what is pinned is that
every timed layer carries exactly the MACs and bytes the profile counted for it."""

from __future__ import annotations

import json

import pytest
import torch

import archprof
from archprof.analysis.latency import measure_latency
from archprof.cli import run


def test_latency_rows_carry_the_counted_macs_of_every_layer():
    model = archprof.build_model("mobilenet_v1", resolution=64)
    counted = archprof.profile(model)
    report = measure_latency(model, counted, warmup=1, repeats=2)
    layers = {r.name: r for r in counted.group("layer")}
    assert {r.name for r in report.layers} <= set(layers)
    assert sum(r.macs for r in report.layers) == counted.totals.macs  # every MAC of V1 runs in a leaf layer
    types = {t.name: t for t in report.by_type()}
    assert types["depthwise 3x3"].macs == next(r.macs for r in counted.group("type") if r.name == "depthwise 3x3")
    assert all(r.median_ms > 0 for r in report.layers)
    assert types["conv 1x1"].gmacs_per_s == pytest.approx(types["conv 1x1"].macs / types["conv 1x1"].median_ms / 1e6)


def test_latency_needs_real_weights():
    model = archprof.build_model("resnet18", device="meta", resolution=64)
    with pytest.raises(archprof.ProfileError, match="needs real weights"):
        measure_latency(model, archprof.profile(model), repeats=1)


def test_profile_latency_command_in_json_and_csv(capsys):
    args = ["profile", "mobilenet_v2", "--resolution", "64", "--latency", "--warmup", "0", "--repeats", "1"]
    assert run([*args, "--format", "json"]) == 0
    model = json.loads(capsys.readouterr().out)["models"][0]
    latency = model["latency"]
    assert (latency["device"], latency["repeats"]) == ("cpu", 1)
    assert sum(t["macs"] for t in latency["types"]) == sum(r["macs"] for r in latency["layers"])
    assert run([*args, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("model,grouping,name,calls,macs,flops,params,activations,bytes_read,bytes_written,backward_macs,backward_flops,saved_bytes,memory_bytes,median_ms,gmacs_per_s,"
                        "input,dtype,batch,device,mode,convention,version")
    header = lines[0].split(",")
    median, rate = header.index("median_ms"), header.index("gmacs_per_s")
    total = lines[1].split(",")
    assert total[:3] == ["mobilenet_v2:resolution=64", "total", "total"] and float(total[median]) > 0
    depthwise = next(line for line in lines if ",type,depthwise 3x3," in line).split(",")
    assert float(depthwise[median]) > 0 and float(depthwise[rate]) > 0
    assert run(args) == 0
    assert "measured latency on cpu" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_device_cuda_without_cuda_is_one_line_and_exit_2(capsys):
    assert run(["profile", "resnet18", "--latency", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == "archprof: error: --device cuda: CUDA is not available on this machine"
