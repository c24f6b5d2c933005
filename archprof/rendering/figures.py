"""Figures (matplotlib, the optional ``plot`` extra; imported only by the commands that draw).

Every figure is drawn from a plain-data ``FigureData`` that is also written beside it as JSON, so a
test can compare what a figure shows without comparing image bytes. Figures are made to be printed:
SVG, PDF or PNG at 300 dpi; the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies and in greyscale), with hatching once its eight colours are used up; a log scale where
the values span more than two orders of magnitude; every bar labelled with its value; point labels
placed where they overlap nothing.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archprof.analysis.profile import Profile
from archprof.errors import ArchprofValueError
from archprof.rendering.output import make_dirs, write_atomic

FIGURE_FORMATS = (".svg", ".pdf", ".png")
DPI = 300  # PNG resolution: print quality
SIZE = (7.0, 4.2)  # inches: a two-column figure width at 300 dpi is 2100 px
# Okabe & Ito, "Color Universal Design" (2008): eight colours told apart with any common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo", "+++", "---")  # a second cue beyond eight series
LOG_SPREAD = 100  # a log scale where the largest value is more than this many times the smallest
OTHER_BELOW = 2.0  # share_bars: types under this % of a model's total are merged into "other"
UNITS = {"macs": "MACs", "flops": "FLOPs", "params": "parameters"}
INSIDE_FROM = 6.0  # share_bars: a segment this wide (%) carries its value inside; narrower ones are named beside the bar
DARK = ("#0072B2", "#D55E00", "#000000", "#009E73", "#CC79A7")  # palette colours that take white text


@dataclass
class FigureData:
    kind: str  # "bars", "scatter", "share_bars"
    title: str
    xlabel: str = ""
    ylabel: str = ""
    categories: list[str] = field(default_factory=list)  # bar groups or stacked bars (models), or point labels
    series: dict[str, list[float]] = field(default_factory=dict)  # series name -> one value per category
    labelled: list[bool] = field(default_factory=list)  # scatter: which points carry a label


class FigureError(ArchprofValueError):
    """A figure cannot be drawn (matplotlib missing, unknown file type)."""


def check_figure_path(path: str | os.PathLike) -> None:
    """Refuse a figure path whose extension archprof cannot draw, before any work is done."""
    if Path(path).suffix.lower() not in FIGURE_FORMATS:
        raise FigureError(f"figure {path} must end in .svg, .pdf or .png")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise FigureError("figures need matplotlib: pip install 'archprof[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "archprof"  # stable element ids: the same figure, the same SVG
    plt.rcParams["hatch.linewidth"] = 0.6
    return plt


def series_styles(count: int) -> list[tuple[str, str]]:
    """(colour, hatch) for each of ``count`` series, no two alike: the eight Okabe-Ito colours, then
    each again with the next hatching."""
    if count > len(OKABE_ITO) * len(HATCHES):
        raise FigureError(f"a figure of {count} series cannot give each its own colour and hatching")
    return [(OKABE_ITO[i % len(OKABE_ITO)], HATCHES[i // len(OKABE_ITO)]) for i in range(count)]


def needs_log_scale(values: list[float]) -> bool:
    """Whether the positive values span more than :data:`LOG_SPREAD` times (linear bars would hide the small ones)."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) > LOG_SPREAD * min(positive)


def count_label(value: float) -> str:
    """4.09G, 668M, 10.0M, 512: three significant digits with an SI prefix."""
    for prefix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            scaled = value / size
            return f"{scaled:.{2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0}f}{prefix}"
    return f"{value:.3g}"


def group_figure(profiles: list[Profile], by: str = "stage", unit: str = "macs", title: str | None = None) -> FigureData:
    """``by``'s rows as bars, one series per profile (the per-stage figure of `profile` and `compare`).

    In the stride grouping each bar group is named by its stride and the stages it regroups.
    """
    from archprof.analysis.compare import compare_groups

    rows = compare_groups(profiles, by, unit)
    label = UNITS[unit]
    names = [g.name for g in rows]
    if by == "stride":  # under each stride, each model's stage (in legend order), unless it is the row's own name
        names = [g.name if all(r is None or r.stages == (g.name,) for r in g.rows) else
                 "\n".join([g.name] + [", ".join(r.stages) if r else "-" for r in g.rows]) for g in rows]
    heading = {"stride": "per stage, by output stride", "type": "per layer type", "block": "per block type"}.get(by, f"per {by}")
    shapes = {", ".join("x".join(map(str, s)) for s in p.input_shapes) for p in profiles}
    where = f" at {shapes.pop()}" if len(shapes) == 1 else ""
    return FigureData(
        kind="bars",
        title=title or (f"{profiles[0].model}: " if len(profiles) == 1 else "") + f"{label} {heading}{where}",
        ylabel=label,
        categories=names,
        series={p.model: [float(getattr(r, unit)) if r is not None else 0.0 for r in (g.rows[i] for g in rows)]
                for i, p in enumerate(profiles)},
    )


def blocks_figure(comparison: Any) -> FigureData:
    """MACs of each block at the matched input (`archprof blocks`)."""
    s = comparison.shapes
    return FigureData(
        kind="bars",
        title=f"MACs per block: {s.channels} -> {s.out_channels} channels, {s.size}x{s.size}, stride {s.stride}",
        ylabel="MACs",
        categories=[b.block for b in comparison.blocks],
        series={"MACs": [float(b.macs) for b in comparison.blocks]},
    )


def render(data: FigureData) -> Any:
    """``data`` drawn as a matplotlib Figure (the caller closes it: ``matplotlib.pyplot.close(fig)``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=SIZE)
    try:
        ax.set_title(data.title, fontsize=10)
        ax.set_xlabel(data.xlabel, fontsize=9)
        ax.set_ylabel(data.ylabel, fontsize=9)
        if data.kind == "bars":
            _bars(ax, data)
        elif data.kind == "share_bars":
            _share_bars(ax, data)
        elif data.kind == "scatter":
            _scatter(fig, ax, data)
        else:
            raise FigureError(f"unknown figure kind {data.kind!r}")
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig


def draw(data: FigureData, path: str | os.PathLike) -> None:
    """Draw ``data`` to ``path`` (.svg, .pdf or .png at 300 dpi), written as every output file is (``write_atomic``)."""
    check_figure_path(path)
    target = Path(path)
    plt = _pyplot()
    fig = render(data)
    image = io.BytesIO()
    fmt = target.suffix.lower()[1:]
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {"Software": None}}[fmt]
    try:
        fig.savefig(image, format=fmt, dpi=DPI, metadata=metadata)
    finally:
        plt.close(fig)
    make_dirs(target.parent)
    write_atomic(target, image.getvalue())


def _count_axis(axis: Any, log: bool) -> None:
    from matplotlib.ticker import FuncFormatter

    if log:
        axis.axes.set_yscale("log") if axis.axis_name == "y" else axis.axes.set_xscale("log")
    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick_label(v)))


def _tick_label(value: float) -> str:
    """An axis tick: 1G, 250M, 10M (no trailing zeros)."""
    for prefix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{prefix}"
    return f"{value:.3g}"


def _bars(ax: Any, data: FigureData) -> None:
    """Grouped bars, a value label on each; a log axis where the values span more than 100x."""
    values = [v for vs in data.series.values() for v in vs]
    log = needs_log_scale(values)
    count, groups = len(data.series), len(data.categories)
    width = 0.8 / max(count, 1)
    styles = series_styles(count)
    for i, ((name, vs), (colour, hatch)) in enumerate(zip(data.series.items(), styles, strict=True)):
        xs = [g + (i - (count - 1) / 2) * width for g in range(groups)]
        drawn = [(x, v) for x, v in zip(xs, vs, strict=True) if v > 0]  # a model without the group draws nothing
        bars = ax.bar([x for x, _ in drawn], [v for _, v in drawn], width=width * 0.95, color=colour, hatch=hatch,
                      edgecolor="white" if not hatch else "#333333", linewidth=0.4, label=name)
        ax.bar_label(bars, labels=[count_label(v) for _, v in drawn], padding=2, fontsize=6 if count * groups > 12 else 7,
                     rotation=90 if count * groups > 8 else 0)
    _count_axis(ax.yaxis, log)
    if values and max(values) > 0:
        top = max(values)
        if log:
            ax.set_ylim(min(v for v in values if v > 0) / 3, top * 12)  # room above each bar for its label
        else:
            ax.set_ylim(0, top * 1.25)
    ax.set_xticks(range(groups))
    ax.set_xticklabels(data.categories, fontsize=7 if groups <= 8 else 6, rotation=0 if groups <= 8 else 30,
                       ha="center" if groups <= 8 else "right")
    ax.tick_params(axis="y", labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    if count > 1:
        ax.legend(fontsize=7, frameon=False, loc="upper left", ncols=min(count, 4))
    if log:
        ax.set_ylabel(f"{data.ylabel} (log scale)", fontsize=9)


def merge_small_shares(series: dict[str, list[float]], below: float = OTHER_BELOW) -> dict[str, list[float]]:
    """Each model's shares under ``below`` % moved to "other" (a thin slice cannot be seen or labelled)."""
    merged: dict[str, list[float]] = {name: [v if v >= below else 0.0 for v in values] for name, values in series.items()}
    other = [sum(v for v in column if v < below) for column in zip(*series.values(), strict=True)]
    merged = {name: values for name, values in merged.items() if any(values)}
    if any(other):
        merged[f"other (each < {below:g} %)"] = other
    return merged


def _share_bars(ax: Any, data: FigureData) -> None:
    """100 % horizontal bars, each segment labelled with its share; small shares merged into "other"."""
    series = merge_small_shares(data.series)
    left = [0.0] * len(data.categories)
    narrow: list[list[str]] = [[] for _ in data.categories]  # per bar: the segments too narrow for a label inside
    for (name, values), (colour, hatch) in zip(series.items(), series_styles(len(series)), strict=True):
        bars = ax.barh(data.categories, values, left=left, label=name, height=0.6, color=colour, hatch=hatch,
                       edgecolor="white", linewidth=0.6)
        dark = colour in DARK
        ax.bar_label(bars, labels=[f"{v:.1f} %" if v >= INSIDE_FROM else "" for v in values], label_type="center",
                     fontsize=6.5, color="white" if dark else "black")
        for i, v in enumerate(values):
            if 0 < v < INSIDE_FROM:
                narrow[i].append(f"{name.split(' (')[0]} {v:.1f} %")
        left = [a + v for a, v in zip(left, values, strict=True)]
    for i, labels in enumerate(narrow):  # named beside the bar, where there is room
        if labels:
            ax.text(101.5, i, "\n".join(labels), va="center", ha="left", fontsize=6.5, clip_on=False)
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=min(len(series), 4))


def _scatter(fig: Any, ax: Any, data: FigureData) -> None:
    """Log-log points; each label placed at the first nearby spot that overlaps no label and no point
    (with a leader line when it had to move away), instead of a fixed offset that piles labels up."""
    styles = series_styles(len(data.series))
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    points = []
    for i, ((name, values), (colour, _)) in enumerate(zip(data.series.items(), styles, strict=True)):
        xs, ys = values[0::2], values[1::2]
        ax.scatter(xs, ys, label=name, s=16, color=colour, marker=markers[i % len(markers)], zorder=3)
        points += list(zip(xs, ys, strict=True))
    ax.set_xscale("log")
    ax.set_yscale("log")
    _count_axis(ax.xaxis, True)
    _count_axis(ax.yaxis, True)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(0.08)
    fig.tight_layout()
    fig.canvas.draw()
    _place_labels(fig, ax, [(p, label) for p, label, shown in zip(points, data.categories, data.labelled, strict=True) if shown],
                  points)


def _place_labels(fig: Any, ax: Any, labelled: list[tuple[tuple[float, float], str]], points: list[tuple[float, float]]) -> None:
    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    marks = [_box(*to_display(p), 4, 4) for p in points]  # each point's marker, in pixels
    frame = ax.get_window_extent(renderer)
    taken: list[tuple[float, float, float, float]] = []
    offsets = [(dx * r, dy * r) for r in (4, 9, 16, 24, 34) for dx, dy in
               ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]
    for point, label in labelled:
        text = ax.annotate(label, point, fontsize=6, xytext=(0, 0), textcoords="offset points", zorder=4)
        size = text.get_window_extent(renderer)
        px, py = to_display(point)
        chosen = offsets[0]
        for dx, dy in offsets:
            ox, oy = dx * fig.dpi / 72, dy * fig.dpi / 72
            x0 = px + ox - (size.width if dx < 0 else size.width / 2 if dx == 0 else 0)
            y0 = py + oy - (size.height if dy < 0 else size.height / 2 if dy == 0 else 0)
            box = (x0, y0, x0 + size.width, y0 + size.height)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
            if inside and not any(_overlaps(box, other) for other in taken + marks):
                chosen = (dx, dy)
                taken.append(box)
                break
        dx, dy = chosen
        text.remove()
        far = abs(dx) > 4 or abs(dy) > 4  # moved off its point: a leader line says whose label it is
        ax.annotate(label, point, xytext=(dx, dy), textcoords="offset points", fontsize=6, zorder=4,
                    ha="right" if dx < 0 else "center" if dx == 0 else "left",
                    va="top" if dy < 0 else "center" if dy == 0 else "bottom",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "#777777"} if far else None)


def _box(x: float, y: float, half_w: float, half_h: float) -> tuple[float, float, float, float]:
    return (x - half_w, y - half_h, x + half_w, y + half_h)


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def write_figure(data: FigureData, stem: Path) -> list[Path]:
    """``stem``.svg, ``stem``.pdf, ``stem``.png and ``stem``.json (the data the figure shows)."""
    paths = []
    for suffix in FIGURE_FORMATS:
        draw(data, stem.with_suffix(suffix))
        paths.append(stem.with_suffix(suffix))
    write_atomic(stem.with_suffix(".json"), json.dumps(asdict(data), indent=2) + "\n")
    return paths + [stem.with_suffix(".json")]

