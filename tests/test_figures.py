"""Figures fit to print: SVG, PDF or PNG at 300 dpi from every command that takes --plot, a palette
that never gives two series the same look, a log scale where values span more than 100x, labels
that do not overlap, and a bad figure path refused in one line before anything is written."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

import archprof  # noqa: E402
from archprof.cli import run  # noqa: E402
from archprof.rendering.figures import (  # noqa: E402
    HATCHES,
    OKABE_ITO,
    FigureData,
    FigureError,
    count_label,
    group_figure,
    merge_small_shares,
    needs_log_scale,
    render,
    series_styles,
)

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}
PLOTTING = {
    "profile": ["profile", "mobilenet_v2"],
    "resnet": ["resnet", "--depth", "18"],
    "compare": ["compare", "resnet50", "mobilenet_v2"],
    "blocks": ["blocks"],
}


def png_pixels_per_metre(data: bytes) -> tuple[int, int, int]:
    """The pHYs chunk of a PNG: pixels per unit in x and y, and the unit (1: the metre)."""
    at = 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"pHYs":
            return struct.unpack(">IIB", data[at + 8:at + 17])
        at += 12 + length
    raise AssertionError("no pHYs chunk")


def plt():
    import matplotlib.pyplot

    return matplotlib.pyplot


@pytest.mark.parametrize("command", PLOTTING)
@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_plot_on_every_command_writes_the_format_of_its_extension(tmp_path, command, suffix):
    figure = tmp_path / f"figure{suffix}"
    assert run([*PLOTTING[command], "--format", "csv", "--plot", str(figure)]) == 0
    data = figure.read_bytes()
    if suffix == ".svg":
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:1000]
    else:
        assert data.startswith(MAGIC[suffix])
    if suffix == ".png":
        # 300 dots per inch is 300 / 0.0254 = 11811 pixels per metre; 7 x 4.2 inches is 2100 x 1260 pixels.
        assert png_pixels_per_metre(data) == (11811, 11811, 1)
        assert struct.unpack(">II", data[16:24]) == (2100, 1260)


@pytest.mark.parametrize("command", PLOTTING)
@pytest.mark.parametrize("name", ["figure.gif", "figure.jpeg", "figure"])
def test_plot_with_an_extension_it_cannot_draw_is_one_line_and_exit_2_and_no_file(tmp_path, capsys, command, name):
    capsys.readouterr()
    assert run([*PLOTTING[command], "--plot", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"archprof: error: --plot {tmp_path / name}: the figure must end in .svg, .pdf or .png\n"
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_the_palette_never_repeats_a_colour_and_hatch_pair():
    styles = series_styles(len(OKABE_ITO) * len(HATCHES))
    assert len(set(styles)) == len(styles) == 64
    assert [colour for colour, _ in styles[:8]] == list(OKABE_ITO) and {hatch for _, hatch in styles[:8]} == {""}
    assert styles[8] == (OKABE_ITO[0], HATCHES[1])  # the ninth series: the first colour, hatched
    with pytest.raises(FigureError):
        series_styles(65)


def test_a_figure_of_eleven_series_draws_each_in_its_own_style():
    data = FigureData("bars", "eleven", categories=["a", "b"], series={f"s{i}": [i + 1.0, i + 2.0] for i in range(11)})
    fig = render(data)
    try:
        handles = fig.axes[0].get_legend_handles_labels()[0]
        looks = [(tuple(h.patches[0].get_facecolor()), h.patches[0].get_hatch()) for h in handles]
        assert len(handles) == 11 and len(set(looks)) == 11
    finally:
        plt().close(fig)


def test_log_scale_only_where_values_span_more_than_a_hundred_times():
    assert not needs_log_scale([1.0, 100.0]) and needs_log_scale([1.0, 100.5])
    assert not needs_log_scale([0.0, 0.0])  # zeros are missing bars, not a spread
    resnet50 = archprof.profile(archprof.build_model("resnet50", device="meta"))
    v2 = archprof.profile(archprof.build_model("mobilenet_v2", device="meta"))
    # 1,464,336,384 (ResNet-50 conv4_x) against 2,048,000 (its fc): 715x; MobileNetV2 alone: 96.6M / 10.0M, 9.6x.
    for profiles, by, scale in (([resnet50, v2], "stride", "log"), ([v2], "stage", "linear")):
        fig = render(group_figure(profiles, by))
        try:
            assert fig.axes[0].get_yscale() == scale
        finally:
            plt().close(fig)


def test_bars_carry_their_values_and_strides_name_their_stages():
    resnet50 = archprof.profile(archprof.build_model("resnet50", device="meta"))
    v2 = archprof.profile(archprof.build_model("mobilenet_v2", device="meta"))
    data = group_figure([resnet50, v2], "stride")
    assert data.categories[:3] == ["stem", "/2\n-\nstage1", "/4\nconv2_x\nstage2"]
    assert data.series["resnet50"][2] == 667_942_912 and data.series["mobilenet_v2"][2] == 54_942_720
    fig = render(data)
    try:
        labels = [t.get_text() for t in fig.axes[0].texts]
        assert "668M" in labels and "54.9M" in labels and "1.46G" in labels
        assert len(labels) == 13  # every drawn bar: 6 of ResNet-50 (none at /2), 7 of MobileNetV2
    finally:
        plt().close(fig)


def test_count_labels_keep_three_significant_digits():
    assert [count_label(v) for v in (0, 512, 10_035_200, 667_942_912, 1_464_336_384, 2_048_000)] == [
        "0", "512", "10.0M", "668M", "1.46G", "2.05M"]


def test_small_shares_merge_into_other_and_the_total_stays():
    series = {"conv 1x1": [94.9, 51.8], "depthwise 3x3": [3.1, 0.0], "conv 3x3": [1.9, 45.2], "fc": [0.1, 0.05],
              "conv 7x7": [0.0, 2.95]}
    merged = merge_small_shares(series)
    assert merged == {"conv 1x1": [94.9, 51.8], "depthwise 3x3": [3.1, 0.0], "conv 3x3": [0.0, 45.2],
                      "conv 7x7": [0.0, 2.95], "other (each < 2 %)": [pytest.approx(2.0), pytest.approx(0.05)]}
    for column in zip(*merged.values(), strict=True):
        assert sum(column) == pytest.approx(100.0, abs=0.01)


def test_point_labels_do_not_overlap():
    # ResNet-34 and ResNet-50 (21.8M and 25.6M parameters, 3.67G and 4.09G MACs) are close on a log-log plot.
    points = {"ResNet": [11.7e6, 1.82e9, 21.8e6, 3.67e9, 25.6e6, 4.09e9, 44.5e6, 7.8e9, 60.2e6, 11.5e9],
              "close": [22e6, 3.7e9, 23e6, 3.8e9, 24e6, 3.9e9]}
    labels = ["ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101", "ResNet-152", "a", "b", "c"]
    fig = render(FigureData("scatter", "points", "parameters", "MACs", labels, points, [True] * 8))
    try:
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
        assert len(boxes) == 8
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (a, b)
    finally:
        plt().close(fig)


def test_report_writes_each_figure_as_svg_pdf_png_and_its_data():
    reports = Path(__file__).resolve().parent.parent / "reports"
    for stem in ("v1_v2_stages", "resnet50_v2_strides", "macs_params", "layer_type_shares"):
        assert (reports / f"{stem}.pdf").read_bytes().startswith(MAGIC[".pdf"])
        assert png_pixels_per_metre((reports / f"{stem}.png").read_bytes()) == (11811, 11811, 1)
        assert (reports / f"{stem}.json").exists() and (reports / f"{stem}.svg").exists()
