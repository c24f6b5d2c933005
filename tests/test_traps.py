"""Command lines that used to do something other than what they say: each is now refused in one
line (exit code 2, nothing on stdout, no file written) or honoured, never silently ignored."""

from __future__ import annotations

import json

import pytest

from archprof.cli import run

REFUSED = [
    # `--depth` is the network's depth under `resnet`; under `profile` it once folded the layer view
    (["profile", "resnet50", "--depth", "101"],
     "profile has no --depth: --layer-depth N folds the layer view; a ResNet's depth is `archprof resnet --depth N` or a name such as resnet101"),
    (["profile", "resnet50", "--depth", "abc"],  # the refusal, whatever the value, not an integer parse error
     "profile has no --depth: --layer-depth N folds the layer view; a ResNet's depth is `archprof resnet --depth N` or a name such as resnet101"),
    (["detector", "fcos", "--depth", "2"],
     "detector has no --depth: --layer-depth N folds the layer view; a ResNet's depth is --backbone resnet101"),
    # two shapes in one --input-shape once parsed as one 8-D shape and the error blamed the model
    (["profile", "mobilenet_v2", "--input-shape", "1x3x32x32,1x1x32x32"],
     "--input-shape '1x3x32x32,1x1x32x32' holds 2 shapes (1x3x32x32 and 1x1x32x32): it is one input's shape; "
     "give several inputs as --input 1x3x32x32 --input 1x1x32x32"),
    (["profile", "mobilenet_v2", "--input-shape", "1,3x32x32"],
     "--input-shape '1,3x32x32' mixes 'x' and ',' separators: write one shape as 1x3x224x224 or 1,3,224,224"),
    # a repeated single-valued option once kept the last value
    (["profile", "mobilenet_v2", "--input-shape", "1x3x32x32", "--input-shape", "1x3x64x64"],
     "--input-shape is given twice: give it once (several inputs: repeat --input)"),
    (["compare", "mobilenet_v1", "mobilenet_v2", "--format", "csv", "--format", "json"], "--format is given twice: give it once"),
    (["profile", "mobilenet_v2", "-f", "csv", "--format=json"], "--format is given twice: give it once"),
    (["resnet", "--stride-in-1x1", "--stride-in-3x3"], "--stride-in-1x1 and --stride-in-3x3 are both given: give one"),
    # options that only mean something beside another one
    (["profile", "mobilenet_v2", "--warmup", "1"], "--warmup is for --latency: add --latency"),
    (["profile", "mobilenet_v2", "--repeats", "3"], "--repeats is for --latency: add --latency"),
    (["profile", "mobilenet_v2", "--latency", "--device", "meta"], "--latency times a real forward: --device cpu or cuda, not meta"),
    (["profile", "mobilenet_v2", "--device", "meta", "--seed", "3"], "--seed is for a real forward: --device meta runs none"),
    (["profile", "mobilenet_v2", "--device", "meta", "--max-memory", "1GB"],
     "--max-memory is for a real forward: --device meta runs none"),
    (["profile", "mobilenet_v2", "--resolution", "160", "--input-shape", "1x3x64x64"],
     "--resolution sets the input size: give it or --input/--input-shape, not both"),
    (["profile", "mobilenet_v2:resolution=160", "--input", "1x3x64x64"],
     "--resolution sets the input size: give it or --input/--input-shape, not both"),
    (["resnet", "--resolution", "160", "--input-shape", "1x3x64x64"],
     "--resolution sets the input size: give it or --input/--input-shape, not both"),
    (["resnet", "--backbone", "--num-classes", "10"], "--num-classes sets the classifier, which --backbone leaves out: give one"),
    (["resnet", "--modulated-dcn"], "modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too"),
    (["resnet", "--deformable-groups", "4"],
     "modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too"),
    (["profile", "resnet50:modulated_dcn=true"],
     "modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too"),
    # --raw and --unit lay out tables: CSV and JSON always carry exact integers of MACs and FLOPs both
    (["profile", "mobilenet_v2", "--format", "csv", "--raw"], "--raw is for tables: --format csv always writes exact integers"),
    (["blocks", "--raw", "--format", "json"], "--raw is for tables: --format json always writes exact integers"),
    (["crosscheck", "mobilenet_v2", "-f", "csv", "--raw"], "--raw is for tables: --format csv always writes exact integers"),
    (["compare", "mobilenet_v1", "mobilenet_v2", "--unit", "flops", "--format", "json"],
     "--unit picks the cost the tables show: --format json writes MACs and FLOPs both"),
    (["detector", "fcos", "--unit", "flops", "--format", "csv"],
     "--unit picks the cost the tables show: --format csv writes MACs and FLOPs both"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_trap_is_one_line_on_stderr_and_exit_code_2(argv, message, capsys, tmp_path):
    out = tmp_path / "out.txt"
    assert run([*argv, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"archprof: error: {message}\n"
    assert not out.exists()


def test_layer_depth_folds_the_layer_view_under_profile(capsys):
    assert run(["profile", "resnet50", "--layer-depth", "1", "--format", "csv"]) == 0
    rows = [line.split(",")[:3] for line in capsys.readouterr().out.splitlines()]
    assert [name for _, grouping, name in rows if grouping == "layer"] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]


def test_one_shape_with_commas_stays_valid(capsys):
    assert run(["profile", "mobilenet_v2", "--input-shape", "1,3,32,32", "--format", "csv"]) == 0
    # MobileNetV2 at 32x32: 7,392,128 MACs (the same net at 224x224 is 300,774,272)
    assert capsys.readouterr().out.splitlines()[1].startswith("mobilenet_v2,total,total,205,7392128,")


def test_input_stays_repeatable(capsys):
    assert run(["profile", "torch.nn:Bilinear:in1_features=4,in2_features=3,out_features=2",
                "--input", "5x4", "--input", "5x3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["input_shape"] == [[5, 4], [5, 3]]


def test_a_user_model_at_a_default_input_says_so_in_one_notice(capsys):
    assert run(["profile", "torch.nn:Conv2d:in_channels=3,out_channels=8,kernel_size=1", "--format", "csv"]) == 0
    assert capsys.readouterr().err == (
        "archprof: notice: torch.nn:Conv2d:in_channels=3,out_channels=8,kernel_size=1: no input given; "
        "profiled at 1x3x224x224 (--input or --input-shape set one)\n"
    )


def test_freeze_at_shows_as_trainable_parameters(capsys):
    assert run(["resnet", "--freeze-at", "2", "--per-stage", "--format", "markdown", "--raw"]) == 0
    out = capsys.readouterr().out
    # ResNet-50: 25,557,032 parameters; the stem and conv2_x (frozen at 2) hold 225,344 of them
    assert "| parameters | 25557032 |" in out
    assert "| trainable parameters | 25331688 |" in out


def test_an_options_value_that_looks_like_an_option_is_not_counted_as_one():
    from archprof.cli.app import repeated_option

    assert repeated_option(["profile", "resnet50", "-o", "--format", "--format", "csv"]) is None
    assert repeated_option(["profile", "resnet50", "--input", "1x3x8x8", "--input", "1x3x8x8"]) is None
    assert repeated_option(["-v", "profile", "resnet50", "--raw", "--raw"]) == "--raw is given twice: give it once"
