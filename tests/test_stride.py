"""The stride grouping: stages of different families regrouped by output stride, so that ResNet's
conv2_x and MobileNetV2's stage2 (both at 56 x 56 out of 224) share a row.

Every expected number is a closed form: the conv MACs of the stages each row regroups (batch norm
and ReLU count no MACs; the ResNet stem's max pool none either), written from the papers' tables.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archprof
from archprof.analysis.compare import compare
from archprof.analysis.profile import SUMMED
from archprof.cli import run


def _bottleneck_stage(in_channels: int, width: int, blocks: int, size: int, stride: int) -> int:
    """ResNet-50 Table 1 stage (torchvision's v1.5: the stride on the 3x3), ``size`` its output side."""
    out, before = 4 * width, size * stride
    first = before**2 * in_channels * width + size**2 * (9 * width**2 + width * out + in_channels * out)  # + projection
    rest = size**2 * (out * width + 9 * width**2 + width * out)
    return first + (blocks - 1) * rest


def _inverted_residual(in_channels: int, out: int, t: int, size_in: int, stride: int) -> int:
    """MobileNetV2 Table 1 row: 1x1 expansion (none when t = 1), 3x3 depthwise, 1x1 projection."""
    hidden, size = in_channels * t, size_in // stride
    return (size_in**2 * in_channels * hidden if t != 1 else 0) + size**2 * hidden * 9 + size**2 * hidden * out


RESNET50_BY_STRIDE = {
    "stem": 112**2 * 64 * 3 * 49,  # the 7x7/2 conv; the stem ends at the max pool (at /4) and keeps its own row
    "/4": _bottleneck_stage(64, 64, 3, 56, 1),
    "/8": _bottleneck_stage(256, 128, 4, 28, 2),
    "/16": _bottleneck_stage(512, 256, 6, 14, 2),
    "/32": _bottleneck_stage(1024, 512, 3, 7, 2),
    "head": 2048 * 1000,  # the fc after the global pool
}

# MobileNetV2 Table 1 at 224: (t, c, n, s) rows; the row of stride /2 is the t = 1 block at 112 x 112.
V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _mobilenet_v2_by_stride() -> dict[str, int]:
    rows = {"stem": 112**2 * 32 * 3 * 9}
    channels, size, stride = 32, 112, 2
    for t, c, n, s in V2_SETTING:
        for i in range(n):
            step = s if i == 0 else 1
            key = f"/{stride * step}"
            rows[key] = rows.get(key, 0) + _inverted_residual(channels, c, t, size, step)
            channels, size, stride = c, size // step, stride * step
    rows["head"] = 7**2 * 320 * 1280 + 1280 * 1000  # the last 1x1 conv, then the classifier after the pool
    return rows


def test_closed_forms_are_the_numbers_the_stages_had():
    assert RESNET50_BY_STRIDE == {"stem": 118_013_952, "/4": 667_942_912, "/8": 1_027_604_480, "/16": 1_464_336_384,
                                  "/32": 809_238_528, "head": 2_048_000}
    assert _mobilenet_v2_by_stride() == {"stem": 10_838_016, "/2": 10_035_200, "/4": 54_942_720, "/8": 37_443_840,
                                         "/16": 96_601_344, "/32": 69_562_752, "head": 21_350_400}


def test_resnet50_macs_per_output_stride_at_224():
    p = archprof.profile(archprof.build_model("resnet50", device="meta"))
    rows = p.group("stride")
    assert {r.name: r.macs for r in rows} == RESNET50_BY_STRIDE
    assert [r.name for r in rows] == ["stem", "/4", "/8", "/16", "/32", "head"]
    assert [r.stages for r in rows] == [("stem",), ("conv2_x",), ("conv3_x",), ("conv4_x",), ("conv5_x",), ("head",)]
    assert sum(RESNET50_BY_STRIDE.values()) == p.totals.macs == 4_089_184_256  # torchvision's 4.09 GFLOPS


def test_mobilenet_v2_macs_per_output_stride_at_224():
    p = archprof.profile(archprof.build_model("mobilenet_v2", device="meta"))
    rows = p.group("stride")
    assert {r.name: r.macs for r in rows} == _mobilenet_v2_by_stride()
    assert [(r.name, r.stages) for r in rows] == [
        ("stem", ("stem",)), ("/2", ("stage1",)), ("/4", ("stage2",)), ("/8", ("stage3",)), ("/16", ("stage4",)),
        ("/32", ("stage5",)), ("head", ("head",)),
    ]
    assert p.totals.macs == 300_774_272  # torchvision's 0.3 GFLOPS


def test_compare_across_families_lines_stages_up_by_stride():
    c = compare(["resnet50", "mobilenet_v2"])
    assert c.by == ("stride", "block", "type")  # the default across families
    rows = {g.name: g for g in c.groups["stride"]}
    assert list(rows) == ["stem", "/2", "/4", "/8", "/16", "/32", "head"]
    v2 = _mobilenet_v2_by_stride()
    for name, g in rows.items():
        resnet, mobilenet = g.rows
        assert (resnet.macs if resnet else None, mobilenet.macs) == (RESNET50_BY_STRIDE.get(name), v2[name])
    assert rows["/4"].rows[0].stages == ("conv2_x",) and rows["/4"].rows[1].stages == ("stage2",)
    assert rows["/2"].rows[0] is None  # ResNet has no stage that ends at /2: its stem runs on to the max pool


def test_compare_within_a_family_keeps_stage_names():
    assert compare(["resnet50", "resnet101"]).by == ("stage", "block", "type")
    assert compare(["mobilenet_v1", "mobilenet_v2"]).by == ("stage", "block", "type")


def test_cli_per_stage_across_families_shows_the_stage_names(capsys):
    assert run(["compare", "resnet50", "mobilenet_v2", "--per-stage", "--raw"]) == 0
    out = capsys.readouterr().out
    assert "per stage, by output stride" in out
    line = next(line for line in out.splitlines() if "conv2_x | stage2" in line)
    assert "667942912" in line and "54942720" in line
    assert "- | stage1" in out


def test_stride_is_a_power_of_two_where_the_sizes_do_not_divide():
    # 225 -> 113 -> 57 -> 29 -> 15 -> 8: ceil(225 / 2^k) at every stage.
    p = archprof.profile(archprof.build_model("resnet50", device="meta"), (1, 3, 225, 225))
    assert [r.name for r in p.group("stride")] == ["stem", "/4", "/8", "/16", "/32", "head"]


def test_non_square_input_and_a_user_model_by_its_children():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.Flatten(), nn.Linear(8 * 16 * 12, 3))
    p = archprof.profile(model, (1, 3, 64, 48))
    assert p.stage_strides() == {"(model)": "(model)", "0": "/2", "1": "/2", "2": "/4", "3": "head", "4": "head"}
    rows = p.group("stride")
    assert [(r.name, r.stages, r.macs) for r in rows] == [
        ("/2", ("0", "1"), 32 * 24 * 8 * 3 * 9),
        ("/4", ("2",), 16 * 12 * 8 * 8 * 9),
        ("head", ("3", "4"), 8 * 16 * 12 * 3),
    ]


def test_a_model_without_spatial_input_is_refused_in_one_line():
    p = archprof.profile(nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3)), (2, 10))
    with pytest.raises(ValueError) as caught:
        p.group("stride")
    assert str(caught.value) == ("the stride grouping needs a spatial input (N, C, H, W); Sequential's input is 2x10: "
                                 "group by stage instead")
    two = archprof.profile(Pair(), inputs=(torch.randn(2, 10), torch.randn(2, 10)))
    with pytest.raises(ValueError, match=r"Sequential's input is 2x10, 2x10: group|Pair's input is 2x10, 2x10: group"):
        two.group("stride")
    none = archprof.profile(Constant(), inputs=(3,))
    with pytest.raises(ValueError, match=r"Constant's input is none: group by stage instead$"):
        none.group("stride")
    other = archprof.profile(nn.Sequential(nn.Linear(10, 3)), (2, 10))
    assert compare([p, other]).by == ("stage", "block", "type")  # no stride to line up by: stages as they are


def test_a_detector_pyramid_keeps_its_neck_and_head():
    # The FPN neck and the shared head output maps at P3-P7 (/8 to /128): the level grouping splits them.
    p = archprof.profile(archprof.build_model("fcos", device="meta"))
    rows = p.group("stride")
    assert [r.name for r in rows] == ["stem", "/4", "/8", "/16", "/32", "neck", "head"]
    stages = {r.name: r.macs for r in p.group("stage")}
    assert {r.name: r.macs for r in rows} == {
        "stem": stages["stem"], "/4": stages["conv2_x"], "/8": stages["conv3_x"], "/16": stages["conv4_x"],
        "/32": stages["conv5_x"], "neck": stages["neck"], "head": stages["head"],
    }
    for field in SUMMED:
        assert sum(getattr(r, field) for r in rows) == sum(getattr(r, field) for r in p.group("stage"))


def test_json_and_dataframes_keep_the_stage_names(capsys):
    import json

    assert run(["compare", "resnet50", "mobilenet_v2", "--per-stage", "-f", "json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert [(r["name"], r["stages"]) for r in models[0]["rows"]][1] == ("/4", ["conv2_x"])
    assert [(r["name"], r["stages"], r["macs"]) for r in models[1]["rows"]][1:3] == [
        ("/2", ["stage1"], 10_035_200), ("/4", ["stage2"], 54_942_720)]
    pytest.importorskip("pandas")
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
    frame = archprof.profile(model, (1, 3, 32, 32)).to_dataframe("stride")
    assert frame["stride"].tolist() == ["/2", "/4"] and frame["stages"].tolist() == ["0, 1", "2"]


class Pair(nn.Module):
    def forward(self, x, y):
        return x + y


class Constant(nn.Module):
    def forward(self, n):
        return torch.ones(n, device="meta") * 2


@pytest.mark.parametrize(("size", "input_size", "name"), [
    ((28, 28), (224, 224), "/8"),
    ((224, 224), (224, 224), "/1"),  # the input's own size
    ((448, 448), (224, 224), "x2"),  # upsampled
    ((0, 0), (224, 224), "/1"),  # an empty map divides nothing
    ((1, 1), (224, 224), "/256"),  # 224 / 256 rounds up to 1: the nearest power of two
    ((28, 14), (224, 224), "/8x16"),  # the dims differ: one stride per dim
    ((224, 112), (224, 224), "/1x2"),
    ((448, 224), (224, 224), "x2x1"),
    ((7, 7), (225, 225), "/32"),  # ceil(225 / 32)
    ((2, 2), (10, 10), "/4"),  # floor(10 / 4)
    ((3, 3), (10, 10), "/4"),  # ceil(10 / 4)
    ((5, 5), (15, 15), "/3"),  # no power of two gives 5: the ratio itself
    ((28,), (224,), "/8"),  # one spatial dim (N, C, L)
])
def test_a_stride_is_the_input_size_over_the_output_size_a_power_of_two_where_one_fits(size, input_size, name):
    from archprof.analysis.profile import _stride

    assert _stride(size, input_size) == name


def test_stride_rows_run_stem_strides_upsampled_first_own_names_head_model():
    from archprof.analysis.profile import ROOT, stride_order

    assert [stride_order(n) for n in ("stem", "x2", "/1", "/8", "P3", "head", ROOT)] == [
        (0, 0.0), (1, 0.5), (1, 1.0), (1, 8.0), (2, 0.0), (3, 0.0), (4, 0.0)]


def test_a_stage_is_keyed_by_its_one_stride_else_by_its_name():
    from archprof.analysis.profile import ROOT, _stride_key

    reference = (1, 3, 224, 224)
    assert _stride_key(ROOT, [(1, 8, 112, 112)], reference) == ROOT
    assert _stride_key("stem", [(1, 8, 56, 56)], reference) == "stem"
    assert _stride_key("layer1", [(1, 8, 56, 56), (1, 16, 56, 56)], reference) == "/4"
    assert _stride_key("neck", [(1, 8, 28, 28), (1, 8, 14, 14)], reference) == "neck"  # two strides
    assert _stride_key("fc", [(1, 1000)], reference) == "head"  # one vector per sample
    assert _stride_key("tokens", [(1, 49, 768)], reference) == "tokens"  # no spatial dims to measure
    assert _stride_key("unused", [], reference) == "unused"  # ran nothing


def test_a_one_dimensional_network_is_grouped_by_stride_too():
    model = nn.Sequential(nn.Conv1d(2, 4, 3, 2, 1), nn.Conv1d(4, 4, 3, 2, 1))
    assert archprof.profile(model, (1, 2, 64)).stage_strides() == {"(model)": "(model)", "0": "/2", "1": "/4"}
