"""Every number names its conditions (input shapes and dtypes, batch, device, mode, the unit
convention, archprof's version) in every format; Markdown and LaTeX keep one unit per table; the
LaTeX options (--scale, --table, --caption, --label, --siunitx) and the models' display names.

Expected numbers: ResNet-50 4,089,184,256 MACs and 25,557,032 parameters (torchvision's metadata,
4.09 GFLOPS and 25,557,032 params), MobileNetV2 300,774,272 MACs (the V2 paper's 300 M, counted).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

import archprof
from archprof.analysis.profile import CONVENTION
from archprof.cli import run

REPORTS = Path(__file__).resolve().parent.parent / "reports"
VERSION = archprof.__version__
CAPTION_224 = f"input 1x3x224x224, float32, batch 1, on meta, inference; {CONVENTION}; archprof {VERSION}"


def out(capsys, *args: str) -> str:
    assert run(list(args)) == 0
    return capsys.readouterr().out


def refused(capsys, *args: str) -> str:
    """The one line a refused command prints on stderr (exit code 2, nothing on stdout)."""
    assert run(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("archprof: error: ")
    return captured.err.strip()


# --- the conditions, in every format ---------------------------------------------------------


def test_csv_rows_each_end_with_their_conditions_at_the_issue_s_input(capsys):
    text = out(capsys, "profile", "mobilenet_v2", "--input-shape", "8x3x160x160", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[-7:] == ["input", "dtype", "batch", "device", "mode", "convention", "version"]
    assert rows[0]["macs"] == "1232665600"  # 8 x 154,083,200: MobileNetV2 at 160 x 160, batch 8
    for row in rows:  # every row, so that concatenated files stay unambiguous
        assert (row["input"], row["dtype"], row["batch"], row["device"], row["mode"], row["convention"], row["version"]) == (
            "8x3x160x160", "float32", "8", "meta", "inference", CONVENTION, VERSION)


def test_csv_conditions_say_the_device_the_count_ran_on(capsys):
    text = out(capsys, "profile", "mobilenet_v1", "--resolution", "32", "--device", "cpu", "--format", "csv")
    assert {r["device"] for r in csv.DictReader(io.StringIO(text))} == {"cpu"}


def test_json_keeps_every_key_and_adds_the_conditions(capsys):
    models = json.loads(out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "json"))["models"]
    for model in models:
        assert set(model) == {"name", "config", "input_shape", "inputs", "totals", "uncounted", "rows", "conditions"}
        assert model["input_shape"] == [1, 3, 224, 224]
        assert model["conditions"] == {"input": "1x3x224x224", "dtype": "float32", "batch": 1, "device": "meta",
                                       "mode": "inference", "convention": CONVENTION, "version": VERSION}
    assert models[0]["totals"]["macs"] == 4_089_184_256


def test_conditions_of_a_model_with_two_inputs_name_each_and_their_dtypes():
    import torch

    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(100, 8)

        def forward(self, ids, mask):
            return self.embed(ids) * mask[..., None]

    p = archprof.profile(TwoInputs(), inputs=(archprof.InputSpec((2, 16), torch.int64, 0, 100), archprof.InputSpec((2, 16))))
    c = p.conditions
    assert (c.shapes, c.dtypes, c.batch, c.device, c.mode) == ("2x16, 2x16", "int64, float32", 2, "meta", "inference")


def test_markdown_and_terminal_print_the_conditions_under_every_table(capsys):
    markdown = out(capsys, "profile", "resnet50", "--format", "markdown")
    assert markdown.count(f"Conditions: {CAPTION_224}\n") == 4  # totals, per stage, per block type, per layer type
    table = out(capsys, "profile", "resnet50")
    assert table.count(f"conditions: {CAPTION_224}\n") == 4


def test_latex_caption_carries_the_conditions(capsys):
    latex = out(capsys, "profile", "resnet50", "--format", "latex", "--table", "totals")
    assert f"\\caption[{{totals.}}]{{totals. {CAPTION_224}.}}" in latex


def test_models_at_different_inputs_each_name_theirs_and_share_the_rest(capsys):
    markdown = out(capsys, "compare", "mobilenet_v2@1x3x160x160", "resnet18", "--format", "markdown", "--table", "totals")
    assert (f"Conditions: mobilenet_v2@1x3x160x160: input 1x3x160x160; resnet18: input 1x3x224x224; float32, batch 1, "
            f"on meta, inference; {CONVENTION}; archprof {VERSION}") in markdown


def test_blocks_and_crosscheck_name_their_conditions(capsys):
    blocks = list(csv.DictReader(io.StringIO(out(capsys, "blocks", "--format", "csv"))))
    assert {(r["input"], r["device"], r["batch"]) for r in blocks} == {("1x64x56x56", "meta", "1")}  # --channels 64 --size 56
    assert f"conditions: input 1x64x56x56, float32, batch 1, on meta, inference; {CONVENTION}" in out(capsys, "blocks")
    check = json.loads(out(capsys, "crosscheck", "mobilenet_v1", "--resolution", "32", "--format", "json"))
    assert check["conditions"]["device"] == "cpu" and check["conditions"]["input"] == "1x3x32x32"
    assert "peers" in check and "archprof" in check  # the existing keys stay


def test_mode_is_a_field_of_the_profile_that_the_writers_read(capsys):
    p = archprof.profile(archprof.build_model("mobilenet_v1", device="meta", resolution=32))
    assert p.mode == "inference" and p.conditions.mode == "inference"
    from archprof.rendering.writers import models_to_csv

    assert {r["mode"] for r in csv.DictReader(io.StringIO(models_to_csv([p], ["stage"], None)))} == {"inference"}
    with pytest.raises(ValueError, match="mode must be one of"):
        archprof.Profile(**{**{f: getattr(p, f) for f in ("model", "config", "input_shapes", "dtype", "device", "ops",
                                                           "layer_types", "modules", "peak_activation_bytes",
                                                           "materialized_tensors")}, "mode": "sleeping"})


# --- one unit per table ----------------------------------------------------------------------

UNIT_MARK = re.compile(r"\(([TGMK]?)B?\)")


def units_per_table(text: str, fmt: str) -> list[set[str]]:
    """The unit prefixes named in each table's headers and labels (G of "MACs (G)" or "(GB)")."""
    split = r"\\begin\{tabular\}" if fmt == "latex" else r"\n\*\*"
    tables = re.split(split, text)[1:]
    found = []
    for table in tables:
        body = table.split("\\end{tabular}")[0] if fmt == "latex" else table.split("\n\n", 2)[1]
        found.append({m for m in UNIT_MARK.findall(body.replace("(%)", "").replace("(\\%)", ""))})
    return found


def test_compare_latex_has_one_unit_per_table_and_no_unit_in_a_cell(capsys):
    latex = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex")
    assert all(len(units) == 1 for units in units_per_table(latex, "latex"))
    assert not re.search(r"\d [TGMK]B? (&|\\\\)", latex)  # "4.089 G" in a cell: the unit belongs to the header
    assert "ResNet-50 MACs (G) & ResNet-50 share & MobileNetV2 (1.0, 224) MACs (G)" in latex


def test_markdown_has_one_unit_per_table(capsys):
    markdown = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "markdown")
    assert all(len(units) == 1 for units in units_per_table(markdown, "markdown"))
    assert "| MACs (G) | 4.089 | 0.301 | 0.074x |" in markdown  # 4,089,184,256 and 300,774,272 in one unit


@pytest.mark.parametrize("report", sorted(REPORTS.glob("*.tex")) + sorted(p for p in REPORTS.glob("*.md") if p.stem not in ("README", "benchmarks", "zoo")),
                         ids=lambda p: p.name)
def test_every_report_has_one_unit_per_table(report):
    assert all(len(units) <= 1 for units in units_per_table(report.read_text(), "latex" if report.suffix == ".tex" else "markdown"))


# --- the LaTeX options -----------------------------------------------------------------------


def test_scale_caption_and_label_as_given(capsys):
    latex = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex", "--scale", "M", "--table", "totals",
                "--caption", "Cost of two backbones", "--label", "tab:backbones")
    assert f"\\caption[{{Cost of two backbones.}}]{{Cost of two backbones. {CAPTION_224}.}}" in latex
    assert "\\label{tab:backbones}\n" in latex
    assert "metric & ResNet-50 & MobileNetV2 (1.0, 224) & $\\times$ ResNet-50 \\\\" in latex
    assert "MACs (M) & 4,089.184 & 300.774 & 0.074$\\times$ \\\\" in latex
    assert "parameters (M) & 25.557 & 3.505 & 0.137$\\times$ \\\\" in latex
    assert latex.count("\\begin{table}") == 1 and "\\toprule" in latex and "\\bottomrule" in latex


def test_scale_one_writes_exact_counts(capsys):
    markdown = out(capsys, "profile", "resnet50", "--format", "markdown", "--scale", "1", "--table", "totals")
    assert "| MACs | 4,089,184,256 |" in markdown and "| parameters | 25,557,032 |" in markdown


def test_default_labels_name_the_command_and_table_and_empty_cells_are_dashes(capsys):
    latex = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex", "--table", "blocks,totals")
    assert re.findall(r"\\label\{([^}]*)\}", latex) == ["tab:compare-blocks", "tab:compare-totals"]  # in the order asked
    assert "Bottleneck & 3.969 & 97.06 \\% & -- & -- \\\\" in latex
    several = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex", "--table", "totals",
                  "--table", "types", "--label", "tab:b")
    assert re.findall(r"\\label\{([^}]*)\}", several) == ["tab:b-totals", "tab:b-types"]


def test_table_picks_tables_in_markdown_and_the_terminal(capsys):
    markdown = out(capsys, "profile", "resnet50", "--format", "markdown", "--table", "types")
    assert markdown.startswith("**per layer type**") and "**totals**" not in markdown
    assert "per layer type" in out(capsys, "profile", "resnet50", "--table", "types")


def test_siunitx_columns_are_bare_numbers(capsys):
    latex = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex", "--siunitx", "--table", "totals")
    assert "% archprof output; needs \\usepackage{booktabs}, \\usepackage{siunitx}" in latex
    assert "\\begin{tabular}{lSSS}" in latex
    assert "metric & {ResNet-50} & {MobileNetV2 (1.0, 224)} & {$\\times$ ResNet-50} \\\\" in latex
    assert "MACs (G) & 4.089 & 0.301 & 0.074 \\\\" in latex
    plain = out(capsys, "compare", "resnet50", "mobilenet_v2", "--format", "latex", "--table", "totals")
    assert "siunitx" not in plain and "\\begin{tabular}{lrrr}" in plain


def test_the_python_api_takes_the_same_options():
    c = archprof.compare(["resnet50", "mobilenet_v2"])
    assert "\\label{tab:compare-totals}" in c.to_latex(tables=["totals"])
    assert "MACs (M) & 4,089.184 & 300.774" in c.to_latex(scale="M", tables=["totals"])
    p = c.profiles[0]
    assert "| MACs (K) | 4,089,184.256 |" in p.to_markdown(scale="K", tables="totals")
    assert "\\label{mine}" in p.to_latex(tables="totals", label="mine", caption="ResNet-50")


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "latex", "--scale", "X"), "--scale must be one of G, M, K, 1, got 'X'"),
    (("--format", "csv", "--scale", "G"), "--scale sets the unit of Markdown and LaTeX tables: add --format markdown or latex"),
    (("--format", "latex", "--scale", "G", "--raw"), "--raw writes exact integers and --scale a unit: give one"),
    (("--caption", "x"), "--caption is for LaTeX: add --format latex"),
    (("--format", "markdown", "--siunitx"), "--siunitx is for LaTeX: add --format latex"),
    (("--format", "latex", "--label", "tab:{x}"), "--label 'tab:{x}' must be non-empty, without braces, backslashes, % or #"),
    (("--format", "json", "--table", "totals"), "--table picks tables of the table, markdown and latex formats; --format json exports all the data"),
    (("--format", "latex", "--table", "totals,stagez"), "no table 'stagez' here (this output has: totals, stages, blocks, types)"),
    (("--format", "latex", "--table", ","), "--table ',' names an empty table"),
])
def test_bad_layout_options_are_one_line_and_exit_2(capsys, tmp_path, args, message):
    target = tmp_path / "t.tex"
    assert refused(capsys, "profile", "mobilenet_v1", "--resolution", "32", *args, "-o", str(target)) == f"archprof: error: {message}"
    assert not target.exists()


# --- display names ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options", "shown"), [
    ("resnet50", {}, "ResNet-50"),
    ("resnet101", {"groups": 32, "width_per_group": 8}, "ResNeXt-101 (32x8d)"),
    ("mobilenet_v2", {}, "MobileNetV2 (1.0, 224)"),
    ("mobilenet_v1", {"width": 0.5, "resolution": 160}, "MobileNetV1 (0.5, 160)"),
    ("mobilenet_v2", {"width": 0.35, "resolution": 96}, "MobileNetV2 (0.35, 96)"),
    ("fcos", {"resolution": 256}, "FCOS (ResNet-50)"),
    ("retinanet", {"backbone": "mobilenet_v2", "backbone_options": {"width": 0.5}, "resolution": 256}, "RetinaNet (MobileNetV2 0.5)"),
])
def test_display_names_come_from_the_config(name, options, shown):
    from archprof.rendering.names import profile_names

    p = archprof.profile(archprof.build_model(name, device="meta", **options))
    assert profile_names([p]) == [shown]


def test_variants_whose_display_names_coincide_keep_their_labels_and_user_models_theirs(capsys):
    latex = out(capsys, "compare", "resnet50", "resnet50:stride_in_1x1=true", "--format", "latex", "--table", "totals")
    assert "metric & resnet50 & resnet50:stride\\_in\\_1x1=true & $\\times$ resnet50 \\\\" in latex
    latex = out(capsys, "profile", "torch.nn:Linear:in_features=8,out_features=4", "--input-shape", "2x8", "--format", "latex",
                "--table", "totals")
    assert "metric & torch.nn:Linear:in\\_features=8,out\\_features=4 \\\\" in latex
