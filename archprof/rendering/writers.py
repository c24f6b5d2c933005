"""One writer per output format: table (rich), markdown, latex, csv, json.

Human-readable writers print :class:`Table` objects; csv and json export the analysis data
itself (exact integers), so several models concatenate into one CSV and JSON is a stable contract.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import textwrap
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from archprof.rendering.tables import COUNT_UNITS, Column, Table

PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))
BAR_WIDTH = 12


def scale_of(values: list[Any]) -> tuple[int, str]:
    top = max((abs(v) for v in values if isinstance(v, (int, float))), default=0)
    return next(((d, p) for d, p in PREFIXES if top >= d), (1, ""))


def format_cell(value: Any, unit: str | None, scale: tuple[int, str], raw: bool) -> str:
    if value is None:
        return "-"
    if unit is None:
        return str(value)
    if unit == "share":
        return f"{100 * value:.2f} %"
    if unit == "ratio":
        return f"{value:.3f}x"
    if unit == "float":
        return f"{value:.2f}"
    if unit == "int" or raw:
        return f"{int(value):,}" if not raw else str(int(value))
    divisor, _ = scale
    return f"{value / divisor:,.3f}" if divisor > 1 else f"{int(value):,}"


def count_text(value: float) -> str:
    """One count in the tables' K/M/G units: ``4.089 G``."""
    scale = scale_of([value])
    return f"{format_cell(value, 'macs', scale, False)} {scale[1]}".rstrip()


def header_of(column: Column, scale: tuple[int, str], raw: bool) -> str:
    if column.unit in COUNT_UNITS and not raw:
        prefix = scale[1] + ("B" if column.unit == "bytes" else "")
        return f"{column.header} ({prefix})" if prefix else column.header
    return column.header


def formatted(table: Table, raw: bool) -> tuple[list[str], list[list[str]]]:
    """Headers and cell strings; each count column (or row, in the totals table) has one scale."""
    scales = [scale_of([r[i] for r in table.rows]) for i in range(len(table.columns))]
    headers = [header_of(c, scales[i], raw) for i, c in enumerate(table.columns)]
    rows = []
    for r, cells in enumerate(table.rows):
        out = []
        for i, (column, value) in enumerate(zip(table.columns, cells, strict=True)):
            unit = column.unit
            if unit == "row":
                unit = table.row_units[r]
                row_scale = scale_of([v for j, v in enumerate(cells) if table.columns[j].unit == "row"])
                text = format_cell(value, unit, row_scale, raw)
                if unit in COUNT_UNITS and not raw and row_scale[1]:
                    text += f" {row_scale[1]}" + ("B" if unit == "bytes" else "")
                out.append(text)
            else:
                out.append(format_cell(value, unit, scales[i], raw))
        rows.append(out)
    return headers, rows


def bar(share: float | None) -> str:
    if share is None:
        return ""
    full = round(max(0.0, min(1.0, share)) * BAR_WIDTH)
    return "█" * full


def write_console(tables: list[Table], raw: bool, console: Any) -> None:
    """Each table as wide as its contents up to the console's width. On a narrow console the
    numbers' headers wrap between words, then the bars go, then the headers' words are folded."""
    from rich.measure import Measurement

    unbounded = console.options.update_width(10**6)  # a table's least width, not clipped to the console's
    for table in tables:
        headers, rows = formatted(table, raw)
        for bars, wrap in ((True, None), (True, "words"), (False, "words"), (False, "fold")):
            rich_table = console_table(table, headers, rows, bars, wrap)
            if Measurement.get(console, unbounded, rich_table).minimum <= console.width:
                break
        console.print(rich_table)
        for note in table.notes:
            console.print(f"note: {note}", highlight=False, markup=False)
        console.print()


def console_table(table: Table, headers: list[str], rows: list[list[str]], bars: bool, wrap: str | None = None) -> Any:
    """One table for rich: ``wrap`` the numbers' headers to their numbers' width (between
    ``"words"``, or ``"fold"`` words too), with or without the ``bars``."""
    from rich.table import Table as RichTable

    rich_table = RichTable(title=table.title, title_justify="left", title_style="bold")
    for i, (h, column) in enumerate(zip(headers, table.columns, strict=True)):
        longest = max((len(r[i]) for r in rows), default=0)
        if column.unit is None:  # names stay whole; long free text may wrap
            rich_table.add_column(h, min_width=min(longest, 24))
        else:  # a number is never cut or wrapped; its header is wrapped here, so rich's widths are exact
            if wrap is not None and len(h) > longest:
                width = longest if wrap == "fold" else max(longest, *map(len, h.split()))
                h = "\n".join(textwrap.wrap(h, max(width, 1)))
            rich_table.add_column(h, justify="right", no_wrap=True)
        if bars and column.unit == "share":  # an inline bar beside every share
            rich_table.add_column("", no_wrap=True, style="cyan")
    for cells, values in zip(rows, table.rows, strict=True):
        shown = []
        for column, text, value in zip(table.columns, cells, values, strict=True):
            shown.append(text)
            if bars and column.unit == "share":
                shown.append(bar(value))
        rich_table.add_row(*shown)
    return rich_table


def to_markdown(tables: list[Table], raw: bool) -> str:
    out = []
    for table in tables:
        headers, rows = formatted(table, raw)
        out.append(f"**{table.title}**\n")
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---" if c.unit is None else "---:" for c in table.columns) + "|")
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
        out += [""] + [f"Note: {n}" for n in table.notes] + ([""] if table.notes else [])
    return "\n".join(out).rstrip() + "\n"


LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                 "|": r"\textbar{}"}  # a bare | prints as a dash in OT1 text


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(tables: list[Table], raw: bool) -> str:
    """booktabs tables, one per view."""
    out = ["% archprof output; needs \\usepackage{booktabs}"]
    for table in tables:
        headers, rows = formatted(table, raw)
        spec = "".join("l" if c.unit is None else "r" for c in table.columns)
        out += ["\\begin{table}[ht]", "\\centering", f"\\caption{{{latex_escape(table.title)}}}",
                f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                " & ".join(latex_escape(h) for h in headers) + " \\\\", "\\midrule"]
        out += [" & ".join(latex_escape(c) for c in r) + " \\\\" for r in rows]
        out += ["\\bottomrule", "\\end{tabular}"]
        out += [f"\\par\\footnotesize {latex_escape(n)}" for n in table.notes]
        out += ["\\end{table}", ""]
    return "\n".join(out)


def to_html(tables: list[Table], raw: bool) -> str:
    """Plain HTML tables (a notebook's ``_repr_html_``): the cells the other writers print."""
    from html import escape

    out = []
    for table in tables:
        headers, rows = formatted(table, raw)
        align = ["left" if c.unit is None else "right" for c in table.columns]
        out.append(f"<table><caption style=\"text-align: left\"><b>{escape(table.title)}</b></caption>")
        out.append("<thead><tr>" + "".join(f'<th style="text-align: {a}">{escape(h)}</th>' for h, a in zip(headers, align, strict=True)) + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(f'<td style="text-align: {a}">{escape(c)}</td>' for c, a in zip(r, align, strict=True)) + "</tr>" for r in rows]
        out.append("</tbody></table>")
        out += [f"<p><small>{escape(n)}</small></p>" for n in table.notes]
    return "\n".join(out) + "\n"


# --- data exports --------------------------------------------------------------------------------

TOTAL_KEYS = ("macs", "flops", "params", "activations", "peak_activation_bytes")
ROW_KEYS = ("calls", "macs", "flops", "params", "activations", "bytes_read", "bytes_written")


def latency_to_dict(report: Any) -> dict[str, Any]:
    def row(r: Any) -> dict[str, Any]:
        return {"name": r.name, "layer_type": r.layer_type, "calls": r.calls, "macs": r.macs, "bytes": r.bytes,
                "median_ms": r.median_ms, "gmacs_per_s": r.gmacs_per_s, "gbytes_per_s": r.gbytes_per_s}

    return {"device": report.device, "warmup": report.warmup, "repeats": report.repeats,
            "forward_ms": report.forward_ms, "types": [row(t) for t in report.by_type()],
            "layers": [row(r) for r in report.layers]}


def models_to_json(profiles: list[Any], groupings: list[str], depth: int | None, latencies: list[Any] | None = None) -> str:
    """``{"models": [{"name", "config", "totals", "uncounted", "rows"}]}``, the README's contract;
    with --latency each model also carries a ``latency`` object."""
    models = []
    for i, p in enumerate(profiles):
        rows = [{"grouping": r.grouping, "name": r.name, **{k: getattr(r, k) for k in ROW_KEYS}}
                for by in groupings for r in p.group(by, depth if by == "layer" else None)]
        models.append({
            "name": p.model,
            "config": p.config,
            "input_shape": list(p.input_shapes[0]) if len(p.input_shapes) == 1 else [list(s) for s in p.input_shapes],
            "inputs": [{"path": i.path, "shape": list(i.shape), "dtype": i.dtype} for i in p.inputs],
            "totals": {k: getattr(p.totals, k) for k in TOTAL_KEYS},
            "uncounted": p.uncounted,
            "rows": rows,
        })
        if latencies:
            models[-1]["latency"] = latency_to_dict(latencies[i])
    return json.dumps({"models": models}, indent=2) + "\n"


CSV_COLUMNS = ("model", "grouping", "name", *ROW_KEYS)


def _latency_cells(report: Any, timed: dict[tuple[str, str], Any], grouping: str, name: str) -> list[str]:
    if report is None:
        return []
    if grouping == "total":
        return [f"{report.forward_ms:.6f}", ""]
    r = timed.get((grouping, name))
    if r is None:
        return ["", ""]
    return [f"{r.median_ms:.6f}", "" if r.gmacs_per_s is None else f"{r.gmacs_per_s:.4f}"]


def models_to_csv(profiles: list[Any], groupings: list[str], depth: int | None, latencies: list[Any] | None = None) -> str:
    """One header row, exact integers; a "total" row per model, then its rows per grouping.

    Uncounted ops appear as rows of grouping "uncounted" (their call count in ``calls``). With
    --latency two columns follow: the measured median time (the whole forward on the total row,
    each layer type and layer on theirs) and the achieved GMAC/s.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + (("median_ms", "gmacs_per_s") if latencies else ()))
    for i, p in enumerate(profiles):
        report = latencies[i] if latencies else None
        timed = {("type", r.name): r for r in report.by_type()} | {("layer", r.name): r for r in report.layers} if report else {}
        extra = functools.partial(_latency_cells, report, timed)
        t = p.totals
        writer.writerow([p.model, "total", "total", len(p.ops), t.macs, t.flops, t.params, t.activations,
                         t.bytes_read, t.bytes_written, *extra("total", "total")])
        for by in groupings:
            for r in p.group(by, depth if by == "layer" else None):
                writer.writerow([p.model, by, r.name, *(getattr(r, k) for k in ROW_KEYS), *extra(by, r.name)])
        for op, n in p.uncounted.items():
            writer.writerow([p.model, "uncounted", op, n, 0, 0, 0, 0, 0, 0, *extra("uncounted", op)])
    return buffer.getvalue()


def blocks_to_json(comparison: Any) -> str:
    return json.dumps({
        "shapes": asdict(comparison.shapes),
        "blocks": [asdict(b) for b in comparison.blocks],
        "separable_ratio": comparison.separable_ratio,
        "separable_ratio_closed_form": comparison.separable_ratio_closed_form,
    }, indent=2) + "\n"


def blocks_to_csv(comparison: Any) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = [asdict(b) for b in comparison.blocks]
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow(["" if v is None else v for v in row.values()])
    return buffer.getvalue()


def crosscheck_to_json(check: Any) -> str:
    peers = []
    for p in check.peers:
        entry: dict[str, Any] = {"name": p.name, "unit": p.unit, "error": p.error}
        if p.error is None:
            entry.update(
                total=p.total,
                total_common=p.total * p.factor(check.unit),
                difference=p.total * p.factor(check.unit) - check.archprof_total,
                unexplained=check.unexplained(p),
                layers=[{"name": n, "actual": p.actual.get(n, 0.0), "predicted": p.predicted.get(n, 0.0),
                         "explained": p.explained.get(n, {}), "unexplained": check.unexplained(p, n)}
                        for n in check.layers()],
            )
        peers.append(entry)
    meta = None if check.meta is None else {"total": check.meta_total, "layers": check.meta, "explained": check.device_gaps}
    return json.dumps({"model": check.model, "unit": check.unit,
                       "archprof": {"total": check.archprof_total, "layers": check.archprof, "uncounted": check.uncounted,
                                    "meta": meta, "meta_error": check.meta_error},
                       "peers": peers}, indent=2) + "\n"


def crosscheck_to_csv(check: Any) -> str:
    """One row per tool and layer: the reported value, the common-unit value, archprof's, and why."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "tool", "unit", "layer", "reported", check.unit, "archprof", "difference", "unexplained", "conventions", "error"])
    for op, calls in check.uncounted.items():
        writer.writerow([check.model, "archprof", "uncounted", op, calls, "", "", "", "", "", ""])
    if check.meta_error is not None:
        writer.writerow([check.model, "archprof on meta", "", "", "", "", "", "", "", "", check.meta_error])
    for n, gaps in check.device_gaps.items():
        value, ours = check.meta.get(n, 0), check.archprof.get(n, 0)
        why = "; ".join(f"{w}={a:g}" for w, a in gaps.items())
        writer.writerow([check.model, "archprof on meta", check.unit, n, value, value, ours, value - ours, 0, why, ""])
    for p in check.peers:
        if p.error is not None:
            writer.writerow([check.model, p.name, p.unit, "", "", "", "", "", "", "", p.error])
            continue
        for n in check.layers():
            value = p.actual.get(n, 0.0)
            common = value * p.factor(check.unit)
            ours = check.archprof.get(n, 0)
            why = "; ".join(f"{w}={a:g}" for w, a in p.explained.get(n, {}).items())
            writer.writerow([check.model, p.name, p.unit, n, f"{value:g}", f"{common:g}", ours, f"{common - ours:g}",
                             f"{check.unexplained(p, n):g}", why, ""])
    return buffer.getvalue()


FORMATS = ("table", "csv", "json", "markdown", "latex")
TextWriter = Callable[[list[Table], bool], str]
TEXT_WRITERS: dict[str, TextWriter] = {"markdown": to_markdown, "latex": to_latex}
