"""Figures (matplotlib, the optional ``plot`` extra; imported only by the commands that draw).

Every figure is drawn from a plain-data ``FigureData`` that is also written beside it as JSON, so a
test can compare what a figure shows without comparing image bytes.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archprof.analysis.profile import Profile
from archprof.rendering.output import make_dirs, write_atomic

FIGURE_FORMATS = (".svg", ".png")


@dataclass
class FigureData:
    kind: str  # "stacked_bars", "scatter", "share_bars"
    title: str
    xlabel: str = ""
    ylabel: str = ""
    categories: list[str] = field(default_factory=list)  # bars (models) or points (labels)
    series: dict[str, list[float]] = field(default_factory=dict)  # stack/segment name -> one value per category
    labelled: list[bool] = field(default_factory=list)  # scatter: which points carry a label


class FigureError(ValueError):
    """A figure cannot be drawn (matplotlib missing, unknown file type)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise FigureError("figures need matplotlib: pip install 'archprof[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "archprof"  # stable element ids: the same figure, the same SVG
    return plt


def stage_figure(profiles: list[Profile], unit: str = "macs") -> FigureData:
    """Per-stage cost of each model as stacked bars (the per-stage comparison of `compare`)."""
    stages: list[str] = []
    per_model = []
    for p in profiles:
        rows = {r.name: getattr(r, unit) for r in p.group("stage")}
        stages += [s for s in rows if s not in stages]
        per_model.append(rows)
    label = {"macs": "MACs", "flops": "FLOPs"}[unit]
    return FigureData(
        kind="stacked_bars",
        title=f"{label} per stage",
        ylabel=f"{label} (millions)",
        categories=[p.model for p in profiles],
        series={s: [rows.get(s, 0) / 1e6 for rows in per_model] for s in stages},
    )


def draw(data: FigureData, path: str | os.PathLike) -> None:
    """Draw ``data`` to ``path`` (.svg or .png), written as every output file is (``write_atomic``)."""
    target = Path(path)
    if target.suffix not in FIGURE_FORMATS:
        raise FigureError(f"figure {target} must end in .svg or .png")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=100)
    if data.kind == "stacked_bars":
        bottom = [0.0] * len(data.categories)
        for name, values in data.series.items():
            ax.bar(data.categories, values, bottom=bottom, label=name, width=0.6)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    elif data.kind == "share_bars":
        left = [0.0] * len(data.categories)
        for name, values in data.series.items():
            ax.barh(data.categories, values, left=left, label=name, height=0.6)
            left = [a + v for a, v in zip(left, values, strict=True)]
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    elif data.kind == "scatter":
        for name, values in data.series.items():
            xs, ys = values[0::2], values[1::2]
            ax.scatter(xs, ys, label=name, s=18)
        points = [(x, y) for values in data.series.values() for x, y in zip(values[0::2], values[1::2], strict=True)]
        for (x, y), label, shown in zip(points, data.categories, data.labelled, strict=True):
            if shown:
                ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        raise FigureError(f"unknown figure kind {data.kind!r}")
    ax.set_title(data.title)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    fig.tight_layout()
    image = io.BytesIO()
    try:
        metadata = {"Date": None} if target.suffix == ".svg" else {"Software": None}
        fig.savefig(image, format=target.suffix[1:], metadata=metadata)
    finally:
        plt.close(fig)
    make_dirs(target.parent)
    write_atomic(target, image.getvalue())


def write_figure(data: FigureData, stem: Path) -> list[Path]:
    """``stem``.svg, ``stem``.png and ``stem``.json (the data the figure shows)."""
    paths = []
    for suffix in FIGURE_FORMATS:
        draw(data, stem.with_suffix(suffix))
        paths.append(stem.with_suffix(suffix))
    write_atomic(stem.with_suffix(".json"), json.dumps(asdict(data), indent=2) + "\n")
    return paths + [stem.with_suffix(".json")]
