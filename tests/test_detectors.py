"""FCOS and RetinaNet: the FPN neck and the shared heads on the seed's backbones, per part and per level.

Published numbers: torchvision 0.29's weights metadata, ``FCOS_ResNet50_FPN_Weights.COCO_V1``
(``num_params`` 32,269,600, ``_ops`` 128.207) and ``RetinaNet_ResNet50_FPN_Weights.COCO_V1``
(34,014,999 and 151.54); the ``_ops`` are GMACs of convolutions and matmuls at a 1 x 3 x 800 x 800
image. ``benchmarks/detectors_vs_torchvision.py`` checks the same counts, and equal outputs with
torchvision's weights, against torchvision's own models (it needs torchvision, so not in CI).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

import archprof
from archprof.analysis import published as pub
from archprof.analysis.profile import SUMMED
from archprof.cli import run

LEVELS = ("P3", "P4", "P5", "P6", "P7")


def detector(name: str, **options) -> archprof.Profile:
    shape = options.pop("input_shape", None)
    return archprof.profile(archprof.build_model(name, device="meta", **options), shape)


def conv_macs(p: archprof.Profile) -> int:
    return sum(op.macs for op in p.ops if op.layer_type.startswith(("conv", "matmul")))


def level_sizes(height: int, width: int) -> dict[str, tuple[int, int]]:
    # Every stride-2 step (7x7/2 pad 3, 3x3/2 max pool pad 1, 3x3/2 or 1x1/2 conv) maps n to ceil(n / 2).
    return {f"P{lv}": (math.ceil(height / 2**lv), math.ceil(width / 2**lv)) for lv in range(3, 8)}


def test_torchvision_fcos_matches_the_published_gmacs_and_parameters():
    p = detector("fcos", preset="torchvision", input_shape=(1, 3, 800, 800))
    params, ops = pub.TORCHVISION_DETECTION["fcos_resnet50_fpn"]
    assert conv_macs(p) == p.totals.macs == 128_207_052_800
    assert ops.matches(conv_macs(p))  # 128.207 G, to the printed 0.001 G
    assert p.totals.params == params.value == 32_269_600
    assert p.uncounted == {}


def test_torchvision_retinanet_matches_the_published_gmacs_and_parameters():
    p = detector("retinanet", preset="torchvision", input_shape=(1, 3, 800, 800))
    params, ops = pub.TORCHVISION_DETECTION["retinanet_resnet50_fpn"]
    assert conv_macs(p) == p.totals.macs == 151_540_437_248
    assert ops.matches(conv_macs(p))  # 151.54 G, to the printed 0.01 G
    assert p.totals.params == params.value == 34_014_999


@pytest.mark.parametrize(("name", "head"), [("fcos", 4_946_016), ("retinanet", 6_691_415)])
def test_torchvision_parameters_per_part(name, head):
    # backbone: resnet50's 25,557,032 less the fc (2,049,000) and the BN affine terms, buffers when
    # frozen (53,120). neck: 1x1 laterals (512 + 1024 + 2048) * 256 + 3 * 256 = 918,272, three 3x3
    # outputs and P6, P7 at 256 * 256 * 9 + 256 = 590,080 each.
    parts = {r.name: r.params for r in detector(name, preset="torchvision", input_shape=(1, 3, 800, 800)).group("part")}
    conv3x3 = 256 * 256 * 9 + 256
    towers = 2 * 4 * (conv3x3 + 2 * 256)  # two towers of four 3x3 convs, each with GN's 512 affine terms in FCOS
    if name == "fcos":
        outputs = (256 * 9 * 91 + 91) + (256 * 9 * 4 + 4) + (256 * 9 * 1 + 1)  # cls_logits, bbox_reg, centerness
    else:
        towers = 2 * 4 * conv3x3  # no norm
        outputs = (256 * 9 * 9 * 91 + 9 * 91) + (256 * 9 * 9 * 4 + 9 * 4)  # 9 anchors
    assert parts == {"backbone": 25_557_032 - 2_049_000 - 53_120, "neck": 918_272 + 5 * conv3x3, "head": towers + outputs}
    assert parts["head"] == head


def fcos_head_macs(h: int, w: int, channels: int, depth: int, num_classes: int) -> int:
    # Two towers of `depth` 3x3 convs, then 3x3 convs to the classes, the 4 distances and centerness.
    return h * w * 9 * channels * (2 * depth * channels + num_classes + 4 + 1)


def retinanet_head_macs(h: int, w: int, channels: int, depth: int, num_classes: int, anchors: int) -> int:
    return h * w * 9 * channels * (2 * depth * channels + anchors * num_classes + anchors * 4)


def neck_macs(level: str, sizes: dict[str, tuple[int, int]], c_in: dict[str, int], channels: int) -> int:
    h, w = sizes[level]
    if level in ("P3", "P4", "P5"):  # 1x1 lateral, 3x3 output
        return h * w * c_in[level] * channels + h * w * 9 * channels * channels
    return h * w * 9 * c_in[level] * channels  # P6, P7: one 3x3/2 conv


def test_seed_fcos_per_level_head_and_neck_macs_are_the_closed_forms():
    p = detector("fcos")  # the seed's R-50 at the papers' 1x3x800x1333
    sizes = level_sizes(800, 1333)
    assert sizes == {"P3": (100, 167), "P4": (50, 84), "P5": (25, 42), "P6": (13, 21), "P7": (7, 11)}
    heads = {r.name: r.macs for r in p.group("layer", depth=2) if r.name.startswith("head.P")}
    assert heads == {f"head.{lv}": fcos_head_macs(*sizes[lv], 256, 4, 80) for lv in LEVELS}
    c_in = {"P3": 512, "P4": 1024, "P5": 2048, "P6": 256, "P7": 256}  # P6 from P5 (FCOS's USE_C5 False)
    levels = {r.name: r.macs for r in p.group("level")}
    for lv in LEVELS:
        assert levels[lv] == neck_macs(lv, sizes, c_in, 256) + fcos_head_macs(*sizes[lv], 256, 4, 80), lv
    backbone = archprof.profile(archprof.build_model("resnet50", device="meta", backbone=True, stages="FPN", stride_in_1x1=True,
                                                     norm="frozen_bn"), (1, 3, 800, 1333))
    assert levels["backbone"] == backbone.totals.macs
    assert p.totals.macs == 208_987_033_600


def test_seed_retinanet_takes_p6_from_c5_and_its_levels_are_the_closed_forms():
    p = detector("retinanet", input_shape=(1, 3, 512, 512))
    sizes = level_sizes(512, 512)
    c_in = {"P3": 512, "P4": 1024, "P5": 2048, "P6": 2048, "P7": 256}  # RETINANET.USE_C5 True
    levels = {r.name: r.macs for r in p.group("level")}
    for lv in LEVELS:
        assert levels[lv] == neck_macs(lv, sizes, c_in, 256) + retinanet_head_macs(*sizes[lv], 256, 4, 80, 9), lv


def test_mobilenet_v2_fcos_at_128_channels_is_the_closed_form_per_level():
    p = detector("fcos", backbone="mobilenet_v2", head_channels=128, input_shape=(1, 3, 512, 512))
    sizes = level_sizes(512, 512)
    c_in = {"P3": 32, "P4": 96, "P5": 320, "P6": 128, "P7": 128}  # the seed's MNV2-FPN-RETINANET body
    levels = {r.name: r.macs for r in p.group("level")}
    for lv in LEVELS:
        assert levels[lv] == neck_macs(lv, sizes, c_in, 128) + fcos_head_macs(*sizes[lv], 128, 4, 80), lv


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("fcos", {}),
        ("fcos", {"preset": "torchvision", "input_shape": (2, 3, 640, 480)}),
        ("fcos", {"backbone": "mobilenet_v2", "head_channels": 128, "levels": "P2-P6"}),
        ("retinanet", {"backbone": "resnet101", "levels": (3, 4, 5), "head_depth": 2, "norm": "gn"}),
    ],
)
@pytest.mark.parametrize("by", ["part", "level"])
def test_part_and_level_rows_add_up_to_the_totals(name, options, by):
    p = detector(name, **options)
    rows = p.group(by)
    totals = dataclasses.asdict(p.totals)
    for field in SUMMED:
        if field != "calls":
            assert sum(getattr(r, field) for r in rows) == totals[field], field
    assert sum(r.calls for r in rows) == len(p.ops)
    levels = [r.name for r in p.group("level")]
    assert levels[0] == "backbone" and levels[-1] == "head (shared)"
    assert [r.name for r in p.group("part")] == ["backbone", "neck", "head"]


def test_the_shared_head_is_one_set_of_parameters_run_on_every_level():
    model = archprof.build_model("fcos", device="meta")
    shared = dict(model.head.shared.named_parameters())
    for lv in LEVELS:
        level = dict(getattr(model.head, lv).named_parameters())
        assert all(level[name] is shared[name] for name in shared)  # the same objects: tied
        assert level["scale"].shape == (1,)  # the seed's per-level Scale is each level's own
    p = archprof.profile(model)
    assert p.totals.params == sum(t.numel() for t in model.parameters()) == 32_244_250
    rows = {r.name: r for r in p.group("level")}
    assert rows["head (shared)"].params == 4_920_661 and rows["head (shared)"].macs == 0
    assert rows["P3"].params == 512 * 256 + 256 + 256 * 256 * 9 + 256 + 1  # its lateral, its output, its scale


def test_presets_set_the_code_bases_options():
    seed, tv = (archprof.build_model("fcos", preset=preset, device="meta") for preset in ("seed", "torchvision"))
    assert seed.config.backbone_options == {"norm": "frozen_bn", "stride_in_1x1": True, "freeze_at": 2}
    assert tv.config.backbone_options == {"norm": "frozen_bn", "stride_in_1x1": False, "freeze_at": 2}
    assert (seed.config.num_classes, tv.config.num_classes) == (80, 91)
    assert (seed.config.centerness, tv.config.centerness) == ("cls", "reg")
    assert seed.backbone.layer2[0].conv1.stride == (2, 2) and tv.backbone.layer2[0].conv2.stride == (2, 2)
    assert not any(p.requires_grad for p in seed.backbone.layer1.parameters())  # FREEZE_CONV_BODY_AT 2
    assert all(p.requires_grad for p in seed.backbone.layer2.parameters())
    assert seed.neck.P6.conv.in_channels == tv.neck.P6.conv.in_channels == 256  # P6 from P5
    assert archprof.build_model("retinanet", device="meta").neck.P6.conv.in_channels == 2048  # from C5
    assert archprof.build_model("retinanet", preset="torchvision", device="meta").neck.P6.conv.in_channels == 256
    explicit = archprof.build_model("fcos", preset="torchvision", centerness="cls", device="meta")
    assert explicit.config.centerness == "cls"  # an option given overrides the preset
    assert seed.default_input_shape == (1, 3, 800, 1333)


def test_a_real_forward_gives_each_levels_outputs_and_the_same_counts_as_meta():
    torch.manual_seed(0)
    model = archprof.build_model("fcos", backbone="mobilenet_v2", head_channels=64, resolution=(128, 160), num_classes=3)
    with torch.no_grad():
        logits, distances, centerness = model(torch.rand(1, 3, 128, 160))
    sizes = list(level_sizes(128, 160).values())
    assert [tuple(t.shape) for t in logits] == [(1, 3, h, w) for h, w in sizes]
    assert [tuple(t.shape) for t in distances] == [(1, 4, h, w) for h, w in sizes]
    assert [tuple(t.shape) for t in centerness] == [(1, 1, h, w) for h, w in sizes]
    assert all((t > 0).all() for t in distances)  # exp of the scaled regression (the seed)
    on_cpu = archprof.profile(model, device="cpu")
    on_meta = archprof.profile(model)
    assert [dataclasses.astuple(r) for r in on_cpu.group("level")] == [dataclasses.astuple(r) for r in on_meta.group("level")]


def test_mobilenet_v2_backbone_returns_the_seeds_four_features():
    model = archprof.build_model("mobilenet_v2", backbone=True)
    assert model.return_features == (3, 6, 13, 17) and model.feature_channels == (24, 32, 96, 320)
    with torch.no_grad():
        shapes = [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
    assert shapes == [(1, 24, 16, 16), (1, 32, 8, 8), (1, 96, 4, 4), (1, 320, 2, 2)]
    assert not hasattr(model, "classifier") and len(model.features) == 18  # no last 1x1 conv


def test_profiling_fcos_at_1333_squared_on_meta_is_shape_only():
    # A real forward would allocate the 343 MB peak of activations that the profile reports.
    script = textwrap.dedent(
        """
        import resource, time, archprof
        model = archprof.build_model("fcos", device="meta")
        archprof.profile(model, (1, 3, 512, 512))
        start = time.perf_counter(); small = archprof.profile(model, (1, 3, 512, 512)); small_s = time.perf_counter() - start
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter(); big = archprof.profile(model, (1, 3, 1333, 1333)); big_s = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(small.ops), len(big.ops), big.totals.peak_activation_bytes, after - before, small_s, big_s)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    small_ops, big_ops, peak, growth_kib, small_s, big_s = done.stdout.split()
    assert small_ops == big_ops  # the same ops at any size: the trace costs the same
    assert int(peak) > 2 * 64 * 667 * 667 * 4  # reported, not allocated: more than the stem's output and its norm's
    assert int(growth_kib) < 50 * 1024  # resident memory grew by less than 50 MiB
    assert float(big_s) < 3 * float(small_s) + 1.0  # as long as at 512 x 512, with room for a busy machine


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backbone": "resnet18"}, "backbone must be one of resnet50, resnet101, resnet152, mobilenet_v2"),
        ({"levels": "P1-P7"}, "levels must start at P2..P5"),
        ({"levels": (3, 5)}, "levels must be consecutive"),
        ({"levels": "three"}, "levels must be like 'P3-P7'"),
        ({"head_channels": 100}, "divisible by 32"),
        ({"preset": "detectron"}, "preset must be one of seed, torchvision"),
        ({"backbone_options": {"stages": "C4"}}, "backbone_options may not set stages"),
        ({"backbone_options": {"depth": 3}}, "resnet50 has no option depth"),
        ({"centerness": "box"}, "centerness must be one of cls, reg"),
        ({"resolution": (800,)}, "resolution must be a size"),
    ],
)
def test_bad_options_name_the_choices(options, message):
    with pytest.raises(ValueError, match=message):
        archprof.build_model("fcos", device="meta", **options)


def test_detector_command_prints_totals_per_part_and_per_level(capsys):
    assert run(["detector", "fcos", "--backbone", "resnet50", "--input-shape", "1x3x800x1333"]) == 0
    out = capsys.readouterr().out
    for title in ("totals", "per part", "per pyramid level"):
        assert title in out
    assert "208.987 G" in out and "head (shared)" in out and "per stage" not in out


def test_detector_command_json_matches_the_library(capsys):
    assert run(["detector", "retinanet", "--preset", "torchvision", "--input-shape", "1x3x800x800", "-f", "json"]) == 0
    model = json.loads(capsys.readouterr().out)["models"][0]
    assert model["name"] == "retinanet:preset=torchvision"
    assert model["totals"]["macs"] == 151_540_437_248 and model["totals"]["params"] == 34_014_999
    library = detector("retinanet", preset="torchvision", input_shape=(1, 3, 800, 800))
    expected = [{"grouping": r.grouping, "name": r.name, "macs": r.macs} for by in ("part", "level") for r in library.group(by)]
    assert [{k: row[k] for k in ("grouping", "name", "macs")} for row in model["rows"]] == expected


@pytest.mark.parametrize("fmt", ["csv", "markdown", "latex", "table"])
def test_detector_command_writes_every_format(tmp_path, fmt):
    out = tmp_path / f"fcos.{fmt}"
    args = ["detector", "fcos", "--backbone", "mobilenet_v2:width=0.5", "--head-channels", "128", "--per-level",
            "--input-shape", "1x3x512x512", "-f", fmt, "-o", str(out)]
    assert run(args) == 0
    text = out.read_text()
    assert "P3" in text and "per part" not in text
    if fmt == "csv":
        assert text.splitlines()[0].startswith("model,grouping,name,calls,macs")


def test_detector_command_adds_the_other_groupings_when_asked(capsys):
    assert run(["detector", "fcos", "--per-part", "--per-stage", "--input-shape", "1x3x256x256", "-f", "csv"]) == 0
    groupings = {line.split(",")[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert groupings == {"total", "part", "stage"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["detector", "yolo"], "detector must be one of fcos, retinanet"),
        (["detector", "fcos", "--backbone", "resnet9"], "backbone must be one of"),
        (["detector", "fcos", "--backbone", "mobilenet_v2:depth=3"], "mobilenet_v2 has no option depth"),
        (["detector", "fcos:head_depth=2", "--head-depth", "3"], "head_depth is given both"),
        (["detector", "retinanet:centerness=reg"], "retinanet has no option centerness"),
        (["detector", "fcos", "--norm", "bn"], "norm must be one of gn, none"),
    ],
)
def test_detector_command_bad_input_is_one_line_exit_2_and_no_file(tmp_path, capsys, args, message):
    out = tmp_path / "out.txt"
    assert run([*args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("archprof: error: ") and message in err[0]
    assert not out.exists()


def test_compare_takes_detectors_with_their_backbones(capsys):
    assert run(["compare", "fcos:backbone=resnet50", "fcos:backbone=mobilenet_v2", "--per-stage", "-f", "json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert [m["totals"]["macs"] for m in models] == [208_987_033_600, 129_042_264_000]
    # Two backbone families: the per-stage rows are lined up by output stride; neck and head keep their names.
    assert {r["grouping"] for m in models for r in m["rows"]} == {"stride"}
    assert [r["name"] for r in models[1]["rows"]] == ["stem", "/2", "/4", "/8", "/16", "/32", "neck", "head"]
    assert [r["name"] for r in models[0]["rows"]] == ["stem", "/4", "/8", "/16", "/32", "neck", "head"]


def test_compare_shows_detectors_per_part_and_per_level(capsys):
    assert run(["compare", "fcos:backbone=resnet50", "fcos:backbone=mobilenet_v2", "--per-part", "--per-level", "-f", "json"]) == 0
    for model in json.loads(capsys.readouterr().out)["models"]:
        for by in ("part", "level"):
            rows = [r for r in model["rows"] if r["grouping"] == by]
            assert sum(r["macs"] for r in rows) == model["totals"]["macs"]
        parts = [r["name"] for r in model["rows"] if r["grouping"] == "part"]
        levels = [r["name"] for r in model["rows"] if r["grouping"] == "level"]
        assert parts == ["backbone", "neck", "head"] and levels[1:6] == ["P3", "P4", "P5", "P6", "P7"]


def test_list_shows_the_detectors(capsys):
    assert run(["list"]) == 0
    out = capsys.readouterr().out
    assert "fcos" in out and "retinanet" in out and "preset='seed'" in out
