"""`archprof report`: the committed reports/ are what the command produces today, and every counted
value matches its publication within the printed rounding or carries a note saying why not."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from archprof.cli import run

REPORTS = Path(__file__).resolve().parent.parent / "reports"
NOT_FROM_REPORT = {"benchmarks.md", "benchmarks.csv", "zoo.md", "zoo.csv"}  # written by benchmarks/run.py, zoo.py


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    assert run(["report", "--out", str(out)]) == 0
    return out


def test_committed_reports_are_regenerated_exactly(regenerated):
    committed = {p.name for p in REPORTS.iterdir()} - NOT_FROM_REPORT
    assert committed == {p.name for p in regenerated.iterdir()}
    for name in sorted(committed):
        if name.endswith((".svg", ".pdf", ".png")):  # figures are compared by their data (.json), not their bytes
            assert (regenerated / name).stat().st_size > 1000, name
            continue
        assert (regenerated / name).read_text() == (REPORTS / name).read_text(), f"reports/{name} is stale: run `archprof report`"


def rows(directory: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((directory / f"{name}.csv").open()))


# (report, published column, counted column, one unit of the last printed digit)
PAIRS = [
    ("v1_vs_v2", "params published", "params", 1e5),
    ("v1_vs_v2", "MACs published", "MACs", 1e6),
    ("v1_width_resolution", "MACs published", "MACs", 1e6),
    ("v1_width_resolution", "params published", "params", 1e5),
    ("v2_width_resolution", "MACs published", "MACs", 1e6),
    ("v2_width_resolution", "params published", "params", 1e5),
    ("resnet", "Table 1 FLOPs (mult-adds)", "MACs, stride in 1x1 (MSRA)", 1e8),
    ("resnet", "torchvision GFLOPS", "MACs, stride in 3x3 (v1.5)", 1e6),
    ("resnet", "torchvision params", "params", 1),
    ("memory", "V1 published", "V1 largest materialized", 1e5),
    ("memory", "V2 published", "V2 largest materialized", 1e5),
    ("v1_layer_types", "% MACs published", "% MACs", 0.01),
    ("v1_layer_types", "% params published", "% params", 0.01),
    ("detectors", "MACs published", "MACs", 1e6),
    ("detectors", "params published", "params", 1),
]


# Every counted value that departs from its publication, and what its note must say: the printed
# value it departs from, or the publication's own error. A departure not listed here fails, and so
# does a listed one that no longer departs (its note would be stale).
DEPARTURES = {
    ("v1_vs_v2", "MACs published", ("MobileNetV1 (1.0, 224)",)): "569 M",  # the V1 paper's Table 4
    ("v1_vs_v2", "params published", ("MobileNetV2 (1.0, 224)",)): "3.4 M",
    ("v1_vs_v2", "MACs published", ("MobileNetV2 (1.0, 224)",)): "300 M",
    ("v1_vs_v2", "params published", ("MobileNetV2 (1.4, 224)",)): "6.9 M",
    ("v1_vs_v2", "MACs published", ("MobileNetV2 (1.4, 224)",)): "585 M",
    ("v1_width_resolution", "MACs published", ("1", "160")): "truncated",
    ("v2_width_resolution", "MACs published", ("1", "224")): "Table 2",
    ("v2_width_resolution", "params published", ("1", "224")): "Table 2",
    ("v2_width_resolution", "MACs published", ("1.4", "224")): "Table 2",
    ("v2_width_resolution", "params published", ("1.4", "224")): "Table 2",
    ("resnet", "Table 1 FLOPs (mult-adds)", ("34",)): "truncated",
    ("resnet", "Table 1 FLOPs (mult-adds)", ("50",)): "truncated",
    ("v1_layer_types", "% MACs published", ("conv 3x3",)): "two digits swapped",
}
KEY_COLUMNS = ("model", "width", "resolution", "depth", "type", "detector")


@pytest.mark.parametrize(("report", "published", "counted", "step"), PAIRS)
def test_counted_values_match_their_publication_or_carry_a_note(regenerated, report, published, counted, step):
    checked, departed = 0, set()
    for row in rows(regenerated, report):
        if not row[published]:
            continue
        checked += 1
        key = (report, published, tuple(row[c] for c in KEY_COLUMNS if c in row))
        matches = abs(float(row[counted]) - float(row[published])) <= step / 2 * (1 + 1e-9)
        if not matches:
            departed.add(key)
            assert key in DEPARTURES, f"{key}: counted {row[counted]}, published {row[published]}, no known departure"
            assert DEPARTURES[key] in row["note"], f"{key}: the note does not say {DEPARTURES[key]!r}: {row['note']!r}"
        elif report != "v1_layer_types":
            assert not row["note"] or "published" not in row["note"], row
    assert checked
    assert departed == {k for k in DEPARTURES if k[:2] == (report, published)}, "a listed departure no longer departs"


def test_the_known_contradictions_are_named(regenerated):
    layer_types = {r["type"]: r for r in rows(regenerated, "v1_layer_types")}
    assert "two digits swapped" in layer_types["conv 3x3"]["note"]
    resnet = {r["depth"]: r for r in rows(regenerated, "resnet")}
    assert "truncated" in resnet["50"]["note"] and "truncated" in resnet["34"]["note"]
    assert not resnet["101"]["note"] and not resnet["152"]["note"]
    v2 = {r["model"]: r for r in rows(regenerated, "v1_vs_v2")}  # display names (archprof.rendering.names)
    assert "569 M" in v2["MobileNetV1 (1.0, 224)"]["note"]


def test_blocks_report_traced_equals_closed_form(regenerated):
    for row in rows(regenerated, "blocks"):
        assert row["bottleneck MACs"] == row["bottleneck closed form"]
        assert row["inverted residual MACs"] == row["IR closed form"]


def test_compare_plot_draws_the_per_stage_figure(tmp_path, capsys):
    svg, png = tmp_path / "stages.svg", tmp_path / "stages.png"
    assert run(["compare", "mobilenet_v1", "mobilenet_v2", "--format", "csv", "--plot", str(svg)]) == 0
    assert run(["compare", "resnet50", "resnet101", "--format", "csv", "--plot", str(png)]) == 0
    assert svg.read_text().lstrip().startswith("<?xml") and "stage4" in svg.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert run(["compare", "mobilenet_v1", "mobilenet_v2", "--plot", str(tmp_path / "x.gif")]) == 2
    assert "must end in .svg, .pdf or .png" in capsys.readouterr().err
