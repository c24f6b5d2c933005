"""The command line, in-process (typer's CliRunner and ``archprof.cli.run``) and through the
installed ``archprof`` entry point; every format's numbers checked against the library's."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archprof
from archprof.cli import app, run

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def library_profile(name: str, **options):
    return archprof.profile(archprof.build_model(name, device="meta", **options))


def test_compare_prints_totals_ratios_and_the_three_groupings():
    result = invoke("compare", "mobilenet_v1", "mobilenet_v2")
    assert result.exit_code == 0
    for title in ("totals", "per stage", "per block type", "per layer type"):
        assert title in result.stdout
    assert "568.740 M" in result.stdout and "300.774 M" in result.stdout
    assert "0.529x" in result.stdout  # 300,774,272 / 568,740,352
    assert "InvertedResidual" in result.stdout and "DepthwiseSeparable" in result.stdout


def test_compare_json_matches_the_library_for_each_model_with_its_own_options():
    result = invoke("compare", "mobilenet_v1", "mobilenet_v2:width=0.5,resolution=160", "--format", "json")
    data = json.loads(result.stdout)
    assert [m["name"] for m in data["models"]] == ["mobilenet_v1", "mobilenet_v2:width=0.5,resolution=160"]
    v2 = library_profile("mobilenet_v2", width=0.5, resolution=160)
    model = data["models"][1]
    assert model["config"] == {"width": 0.5, "resolution": 160, "num_classes": 1000, "backbone": False}
    assert model["totals"] == {
        "macs": v2.totals.macs, "flops": v2.totals.flops, "params": v2.totals.params,
        "activations": v2.totals.activations, "peak_activation_bytes": v2.totals.peak_activation_bytes,
    }
    stages = [r for r in model["rows"] if r["grouping"] == "stage"]
    assert [(r["name"], r["macs"]) for r in stages] == [(r.name, r.macs) for r in v2.group("stage")]
    assert {r["grouping"] for r in model["rows"]} == {"stage", "block", "type"}


def test_profile_csv_is_one_header_and_exact_integers_that_concatenate(tmp_path):
    out = tmp_path / "v2.csv"
    result = invoke("profile", "mobilenet_v2", "--width", "0.5", "--resolution", "160", "--format", "csv", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    v2 = library_profile("mobilenet_v2", width=0.5, resolution=160)
    assert rows[0] == {
        "model": "mobilenet_v2:width=0.5,resolution=160", "grouping": "total", "name": "total", "calls": str(len(v2.ops)),
        "macs": str(v2.totals.macs), "flops": str(v2.totals.flops), "params": str(v2.totals.params),
        "activations": str(v2.totals.activations), "bytes_read": str(v2.totals.bytes_read),
        "bytes_written": str(v2.totals.bytes_written),
        # a training step's split (zero for an inference forward) and its memory rows' bytes
        "backward_macs": "0", "backward_flops": "0", "saved_bytes": "0", "memory_bytes": "",
        # the conditions end every row (tests/test_conditions.py pins them)
        "input": "1x3x160x160", "dtype": "float32", "batch": "1", "device": "meta", "mode": "inference",
        "convention": v2.conditions.convention, "version": archprof.__version__,
    }
    for by in ("stage", "block", "type"):
        mine = [(r["name"], int(r["macs"]), int(r["params"])) for r in rows if r["grouping"] == by]
        assert mine == [(r.name, r.macs, r.params) for r in v2.group(by)]
    assert out.read_text().count("model,grouping") == 1


def test_resnet_command_per_stage_raw_markdown_matches_the_library():
    result = invoke("resnet", "--depth", "50", "--per-stage", "--stride-in-1x1", "--raw", "--format", "markdown")
    assert result.exit_code == 0
    p = library_profile("resnet50", stride_in_1x1=True)
    assert "| MACs | 3857973248 |" in result.stdout
    for row in p.group("stage"):
        assert f"| {row.name} | {row.calls} | {row.macs} |" in result.stdout
    assert "resnet50:stride_in_1x1=true" in result.stdout


def test_resnet_command_takes_the_seed_backbone_options():
    result = invoke("resnet", "--depth", "101", "--groups", "32", "--width-per-group", "8", "--norm", "frozen_bn",
                    "--dcn-stages", "4,5", "--modulated-dcn", "--backbone", "--stages", "FPN", "--format", "json")
    assert result.exit_code == 0
    model = json.loads(result.stdout)["models"][0]
    expected = library_profile("resnet101", groups=32, width_per_group=8, norm="frozen_bn", dcn_stages=[4, 5],
                               modulated_dcn=True, backbone=True, stages="FPN")
    assert model["totals"]["macs"] == expected.totals.macs
    assert any(r["name"] == "deformable conv" for r in model["rows"])


def test_profile_layer_view_folds_to_depth():
    result = invoke("profile", "resnet50", "--layer-depth", "1", "--per-layer", "--format", "json")
    rows = json.loads(result.stdout)["models"][0]["rows"]
    assert [r["name"] for r in rows] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]


def test_latex_is_booktabs_with_escaped_names():
    result = invoke("profile", "mobilenet_v1", "--per-type", "--format", "latex", "--caption", "mobilenet_v1 & co")
    assert "\\toprule" in result.stdout and "\\bottomrule" in result.stdout
    assert "94.86 \\%" in result.stdout  # conv 1x1 share of MACs (paper Table 2)
    assert "metric & MobileNetV1 (1.0, 224) \\\\" in result.stdout  # the display name (archprof.rendering.names)
    assert "mobilenet\\_v1 \\& co: totals." in result.stdout


def test_unit_flops_changes_the_grouped_column():
    result = invoke("profile", "resnet50", "--per-type", "--unit", "flops", "--raw", "--format", "markdown")
    p = library_profile("resnet50")
    norm = next(r for r in p.group("type") if r.name == "normalization")
    assert "FLOPs" in result.stdout and f"| normalization | {norm.calls} | {norm.flops} |" in result.stdout


def test_blocks_command_traced_equals_closed_form_in_json():
    result = invoke("blocks", "--channels", "24", "--out-channels", "32", "--size", "56", "--stride", "2", "--format", "json")
    data = json.loads(result.stdout)
    assert [b["block"] for b in data["blocks"]] == ["StandardConv", "DepthwiseSeparable", "InvertedResidual", "Bottleneck", "BasicBlock"]
    assert all(b["macs"] == b["closed_form_macs"] for b in data["blocks"])
    ir = next(b for b in data["blocks"] if b["block"] == "InvertedResidual")
    # h * w * d' * t * d' at 56x56, then the depthwise and projection at 28x28 (stride 2)
    assert ir["macs"] == 56 * 56 * 24 * 6 * 24 + 28 * 28 * 24 * 6 * (9 + 32)
    assert data["separable_ratio"] == pytest.approx(1 / 32 + 1 / 9)


def test_user_factory_from_a_file_and_from_a_module(tmp_path):
    factory = tmp_path / "nets.py"
    factory.write_text("import torch.nn as nn\n\ndef tiny(width=8):\n    return nn.Sequential(nn.Linear(4, width), nn.ReLU())\n")
    result = invoke("profile", f"{factory}:tiny:width=16", "--input-shape", "2x4", "--format", "json")
    model = json.loads(result.stdout)["models"][0]
    assert model["totals"]["macs"] == 2 * 4 * 16 and model["config"] == {"width": 16}
    result = invoke("profile", "torch.nn:Linear:in_features=8,out_features=3", "--input-shape", "5x8", "--format", "json")
    assert json.loads(result.stdout)["models"][0]["totals"]["macs"] == 5 * 8 * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "mobilenet_v1", "mobilenet_v3"], "unknown model 'mobilenet_v3'; did you mean mobilenet_v2"),
        (["compare", "mobilenet_v1"], "compare needs at least two models"),
        (["resnet", "--depth", "51"], "--depth must be one of 18, 34, 50, 101, 152"),
        (["profile", "mobilenet_v2", "--width", "-1"], "width must be a number in (0, 4]"),
        (["profile", "mobilenet_v2", "--resolution", "8"], "resolution must be an integer >= 32"),
        (["profile", "resnet50", "--width", "0.5"], "resnet50 has no option width"),
        (["profile", "mobilenet_v2", "--input-shape", "1x3xabc"], "is not a list of integers"),
        (["profile", "mobilenet_v2", "--input-shape", "1x4x224x224"], "forward failed at input [1, 4, 224, 224]"),
        (["profile", "mobilenet_v2", "--format", "xml"], "'xml' is not one of"),
        (["profile", "mobilenet_v2", "-o", "/nonexistent-dir/out.csv"], "directory /nonexistent-dir does not exist"),
        (["profile", "no_such_module:build"], "cannot import no_such_module: ModuleNotFoundError"),
        (["profile", "torch.nn:functional"], "torch.nn:functional is not callable"),
        (["profile", "json:dumps:obj=1"], "json:dumps returned str, not a torch.nn.Module"),
        (["profile", "mobilenet_v2:width"], "option 'width' is not key=value"),
        (["lst"], "No such command 'lst'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2(args, message, capsys):
    assert run(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archprof: error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out


def test_a_failed_run_leaves_no_output_file(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert run(["profile", "mobilenet_v2", "--input-shape", "1x4x224x224", "-o", str(out), "--format", "json"]) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions_and_links_are_written_through(tmp_path):
    out = tmp_path / "out.csv"
    previous = os.umask(0o022)
    try:
        assert run(["profile", "mobilenet_v1", "--format", "csv", "-o", str(out)]) == 0
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    link.symlink_to(real)
    assert run(["profile", "mobilenet_v1", "--format", "json", "-o", str(link)]) == 0
    assert link.is_symlink() and json.loads(real.read_text())["models"][0]["name"] == "mobilenet_v1"
    assert run(["profile", "mobilenet_v1", "--format", "csv", "-o", os.devnull]) == 0
    assert Path(os.devnull).is_char_device()


def test_an_existing_file_is_replaced_whole(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old contents that are longer than nothing\n" * 1000)
    assert run(["profile", "mobilenet_v1", "--format", "csv", "-o", str(out)]) == 0
    assert out.read_text().startswith("model,grouping,name") and "old contents" not in out.read_text()


def test_strict_mode_exits_3_naming_the_uncounted_ops(tmp_path, capsys):
    factory = tmp_path / "bessel.py"
    factory.write_text("import torch\n\nclass B(torch.nn.Module):\n    def forward(self, x):\n        return torch.special.bessel_j0(x)\n")
    assert run(["profile", f"{factory}:B", "--input-shape", "3x3", "--format", "csv"]) == 0
    assert "bessel.py:B,uncounted,aten.special_bessel_j0,1" in capsys.readouterr().out
    assert run(["profile", f"{factory}:B", "--input-shape", "3x3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["uncounted"] == {"aten.special_bessel_j0": 1}
    for fmt in ("table", "markdown", "latex"):
        assert run(["profile", f"{factory}:B", "--input-shape", "3x3", "--format", fmt]) == 0
        assert "ops with no cost rule, not counted: aten.special" in capsys.readouterr().out
    assert run(["profile", f"{factory}:B", "--input-shape", "3x3", "--strict"]) == 3
    assert "aten.special_bessel_j0 x1" in capsys.readouterr().err


def entry_point() -> str:
    found = Path(sys.executable).parent / "archprof"
    return str(found) if found.exists() else shutil.which("archprof")


def test_installed_entry_point_runs_the_main_job():
    done = subprocess.run([entry_point(), "compare", "mobilenet_v1", "mobilenet_v2", "--format", "json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    totals = [m["totals"]["macs"] for m in json.loads(done.stdout)["models"]]
    assert totals == [568_740_352, 300_774_272]


def test_installed_entry_point_bad_input_exit_code_and_no_colour_when_piped():
    done = subprocess.run([entry_point(), "profile", "nosuch"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stdout == ""
    env = {**os.environ, "FORCE_COLOR": "1", "NO_COLOR": "1"}
    done = subprocess.run([entry_point(), "profile", "mobilenet_v1", "--per-type"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and "\x1b[3" not in done.stdout  # no foreground colours under NO_COLOR
