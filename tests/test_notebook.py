"""The Python API a notebook uses: a short repr, HTML tables, DataFrames, and the very text the
command line writes (``to_csv``, ``to_latex``), for one profile and for a comparison."""

from __future__ import annotations

import sys

import pytest
from torch import nn

import archprof
from archprof.cli import run

# ResNet-50 at 1x3x224x224: 4,089,184,256 MACs (torchvision's 4.09 GFLOPS), 25,557,032 parameters;
# MobileNetV2: 300,774,272 MACs (paper Table 4: 300M)
RESNET50_MACS, MOBILENET_V2_MACS = 4_089_184_256, 300_774_272


@pytest.fixture(scope="module")
def resnet50():
    return archprof.profile(archprof.build_model("resnet50", device="meta"))


@pytest.fixture(scope="module")
def comparison():
    return archprof.compare(["resnet50", "mobilenet_v2"])


def cli(capsys, *argv: str) -> str:
    assert run(list(argv)) == 0
    return capsys.readouterr().out


def test_profile_repr_is_one_short_line_with_name_totals_input_and_device(resnet50):
    assert repr(resnet50) == (
        "<Profile resnet50: 4.089 G MACs, 8.217 G FLOPs, 25.557 M params; input 1x3x224x224 (float32) on meta>"
    )


def test_profile_html_holds_the_totals_and_one_grouping(resnet50):
    html = resnet50._repr_html_()
    assert html.count("<table>") == 2
    assert "<b>totals</b>" in html and "<b>per stage</b>" in html
    assert "4.089 G" in html and "conv2_x" in html
    assert "<b>per layer type</b>" in resnet50.to_html(by="type")
    # depth 1: the top-level modules (the stages' containers), not the layers inside them
    shallow, deep = resnet50.to_html(by="layer", depth=1), resnet50.to_html(by="layer")
    assert shallow.count("<tr>") < deep.count("<tr>") and "layer1.0.conv1" in deep and "layer1.0.conv1" not in shallow


def test_profile_to_dataframe_rows_are_its_grouping(resnet50):
    pytest.importorskip("pandas")
    for by in ("stage", "type"):
        frame = resnet50.to_dataframe(by)
        rows = resnet50.group(by)
        assert list(frame.columns) == [by, "calls", "macs", "flops", "params", "activations", "bytes_read", "bytes_written"]
        assert frame[by].tolist() == [r.name for r in rows]
        assert frame["macs"].tolist() == [r.macs for r in rows]
        assert frame["params"].tolist() == [r.params for r in rows]
        assert int(frame["macs"].sum()) == RESNET50_MACS


def test_profile_to_dataframe_defaults_to_stages_and_takes_a_depth_and_the_stride_rows_stages(resnet50):
    pytest.importorskip("pandas")
    assert resnet50.to_dataframe()["stage"].tolist() == [r.name for r in resnet50.group("stage")]
    assert resnet50.to_dataframe("layer", depth=1)["layer"].tolist() == [r.name for r in resnet50.group("layer", 1)]
    assert len(resnet50.group("layer", 1)) < len(resnet50.group("layer"))
    frame = resnet50.to_dataframe("stride")
    assert list(frame.columns[:3]) == ["stride", "stages", "calls"]
    assert frame["stages"].tolist() == [", ".join(r.stages) for r in resnet50.group("stride")]


def test_to_dataframe_without_pandas_is_a_one_line_import_error(resnet50, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(ImportError) as caught:
        resnet50.to_dataframe()
    assert str(caught.value) == "Profile.to_dataframe needs pandas: pip install pandas"


def test_profile_to_csv_is_the_command_lines_csv(resnet50, capsys):
    assert resnet50.to_csv() == cli(capsys, "profile", "resnet50", "--format", "csv")
    assert resnet50.to_csv("layer", depth=1) == cli(capsys, "profile", "resnet50", "--per-layer", "--layer-depth", "1",
                                                    "--format", "csv")


def test_profile_to_latex_is_the_command_lines_latex(resnet50, capsys):
    assert resnet50.to_latex() == cli(capsys, "profile", "resnet50", "--format", "latex")
    assert resnet50.to_latex("type", unit="flops") == cli(capsys, "profile", "resnet50", "--per-type", "--unit", "flops",
                                                          "--format", "latex")


def test_profile_to_markdown_is_the_command_lines_markdown(resnet50, capsys):
    assert resnet50.to_markdown() == cli(capsys, "profile", "resnet50", "--format", "markdown")
    assert resnet50.to_markdown("block", unit="flops", raw=True) == cli(
        capsys, "profile", "resnet50", "--per-block", "--unit", "flops", "--raw", "--format", "markdown")
    assert resnet50.to_markdown(["stage", "type"], scale="M", tables="types") == cli(
        capsys, "profile", "resnet50", "--per-stage", "--per-type", "--scale", "M", "--table", "types", "--format", "markdown")
    assert resnet50.to_markdown(depth=1, by="layer") == cli(
        capsys, "profile", "resnet50", "--per-layer", "--layer-depth", "1", "--format", "markdown")


def test_profile_to_latex_passes_its_layout_options_through(resnet50, capsys):
    assert resnet50.to_latex(["stage", "block"], scale="M", tables=["blocks"], caption="ResNet-50.", label="tab:r50",
                             siunitx=True) == cli(
        capsys, "profile", "resnet50", "--per-stage", "--per-block", "--scale", "M", "--table", "blocks",
        "--caption", "ResNet-50.", "--label", "tab:r50", "--siunitx", "--format", "latex")
    assert resnet50.to_latex("layer", depth=1, raw=True) == cli(
        capsys, "profile", "resnet50", "--per-layer", "--layer-depth", "1", "--raw", "--format", "latex")


def test_an_unknown_grouping_or_unit_is_a_value_error(resnet50):
    with pytest.raises(ValueError, match="unknown grouping 'stages'"):
        resnet50.to_csv("stages")
    with pytest.raises(ValueError, match="unit must be 'macs' or 'flops', got 'watts'"):
        resnet50.to_latex(unit="watts")


def test_compare_holds_the_profiles_and_the_ratios(comparison):
    assert [p.model for p in comparison.profiles] == ["resnet50", "mobilenet_v2"]
    assert [p.totals.macs for p in comparison.profiles] == [RESNET50_MACS, MOBILENET_V2_MACS]
    assert comparison.ratio("macs") == (1.0, MOBILENET_V2_MACS / RESNET50_MACS)
    assert comparison.by == ("stride", "block", "type")  # two families: the stages lined up by output stride
    assert [g.name for g in comparison.groups["stride"]][:3] == ["stem", "/2", "/4"]
    assert repr(comparison) == (
        "<Comparison of 2 profiles, MACs: resnet50 4.089 G, mobilenet_v2 300.774 M (0.074x); groupings: stride, block, type>"
    )


def test_compare_takes_profiles_modules_and_names_alike(resnet50):
    model = archprof.build_model("mobilenet_v2", device="meta")
    mixed = archprof.compare([resnet50, model, "mobilenet_v2@1x3x160x160"], by="stage")
    assert [p.totals.macs for p in mixed.profiles][:2] == [RESNET50_MACS, MOBILENET_V2_MACS]
    assert mixed.profiles[2].input_shapes == [(1, 3, 160, 160)]
    assert mixed.by == ("stage",)


def test_compare_to_csv_and_to_latex_are_the_command_lines(comparison, capsys):
    assert comparison.to_csv() == cli(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "csv")
    assert comparison.to_latex() == cli(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex")


def test_compare_to_dataframe_totals_and_grouping(comparison):
    pytest.importorskip("pandas")
    totals = comparison.to_dataframe()
    assert list(totals.columns) == ["metric", "resnet50", "mobilenet_v2", "mobilenet_v2 / resnet50"]
    macs = totals.set_index("metric").loc["macs"]
    assert (macs["resnet50"], macs["mobilenet_v2"]) == (RESNET50_MACS, MOBILENET_V2_MACS)
    strides = comparison.to_dataframe("stride")
    assert strides["stride"].tolist() == [g.name for g in comparison.groups["stride"]]
    assert strides["stages"].tolist()[:3] == ["stem | stem", "- | stage1", "conv2_x | stage2"]
    assert "<b>per stage, by output stride</b>" in comparison._repr_html_()


def test_compare_of_a_user_module_profiles_it_at_the_input_given():
    result = archprof.compare([nn.Linear(8, 4), nn.Linear(8, 2)], (3, 8), by="type")
    assert [p.totals.macs for p in result.profiles] == [3 * 8 * 4, 3 * 8 * 2]
    assert result.ratio("macs") == (1.0, 0.5)
