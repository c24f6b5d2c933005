"""One writer per output format: table (rich), markdown, latex, csv, json.

Human-readable writers print :class:`Table` objects; csv and json export the analysis data
itself (exact integers), so several models concatenate into one CSV and JSON is a stable contract.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any

from archprof.errors import ArchprofValueError
from archprof.rendering.formats import FORMATS
from archprof.rendering.tables import COUNT_UNITS, Column, Table

PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))
SCALES = {"G": 10**9, "M": 10**6, "K": 10**3, "1": 1}  # what --scale takes: one unit for a whole table
BAR_WIDTH = 12


@dataclass(frozen=True)
class Layout:
    """How the Markdown and LaTeX writers lay tables out: the command line's --scale, --table,
    --caption, --label and --siunitx.

    Each table has one unit for all its counts: ``scale`` (G, M, K or 1), else the prefix of the
    largest count in the table. LaTeX captions are the table's title (or ``caption``) followed by
    its conditions; each table's ``\\label`` is ``label`` (with the table's key appended when
    several tables are written), else ``tab:<command>-<key>``.
    """

    scale: str | None = None
    tables: tuple[str, ...] | None = None  # the keys of the tables to write, in the order given; None: all
    caption: str | None = None
    label: str | None = None
    siunitx: bool = False
    command: str = "archprof"

    def __post_init__(self) -> None:
        if self.scale is not None and self.scale not in SCALES:
            raise ArchprofValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.label is not None and (not self.label.strip() or any(c in self.label for c in "{}\\%#")):
            raise ArchprofValueError(f"label {self.label!r} must be non-empty, without braces, backslashes, % or #")

    def pick(self, tables: list[Table]) -> list[Table]:
        """The tables asked for by key; an unknown key is an error naming the ones there are."""
        if self.tables is None:
            return tables
        by_key = {t.key: t for t in tables}
        unknown = [k for k in self.tables if k not in by_key]
        if unknown:
            raise ArchprofValueError(f"no table {unknown[0]!r} here (this output has: {', '.join(by_key)})")
        return [by_key[k] for k in dict.fromkeys(self.tables)]


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


def table_scale(table: Table, scale: str | None) -> tuple[int, str]:
    """One unit for every count in ``table``: ``scale``, else the table's own (a paper's table
    pinned to M), else the prefix of its largest count."""
    scale = scale or table.scale
    if scale is not None:
        return SCALES[scale], "" if scale == "1" else scale
    return scale_of([v for c, u, v in _count_cells(table)])


def _count_cells(table: Table) -> list[tuple[int, int, Any]]:
    """(row, column, value) of every count in ``table`` (columns of a count unit, and "row" cells of count rows)."""
    found = []
    for r, cells in enumerate(table.rows):
        for i, (column, value) in enumerate(zip(table.columns, cells, strict=True)):
            unit = table.row_units[r] if column.unit == "row" else column.unit
            if unit in COUNT_UNITS and isinstance(value, (int, float)):
                found.append((r, i, value))
    return found


def _decimals(values: list[float], divisor: int) -> int:
    """Three decimals; more where the largest value is below 1 in the table's unit, so it keeps
    three significant digits (parameters in G beside MACs in G), and where the smallest nonzero
    value would print as zero (at most 9: the unit's last digit)."""
    scaled_values = [abs(v) / divisor for v in values if v]
    if divisor == 1 or not scaled_values:
        return 3
    top, bottom = max(scaled_values), min(scaled_values)
    decimals = 3 if top >= 1 else max(3, 2 - math.floor(math.log10(top)))
    return min(9, max(decimals, -math.floor(math.log10(bottom))))


def scaled(table: Table, raw: bool, layout: Layout, style: str) -> tuple[list[str], list[list[str]]]:
    """Headers and cells with one unit for the whole table (``style``: markdown, latex or siunitx).

    The unit is in the headers (``MACs (G)``) or, in the totals table, in each metric's label
    (``parameters (G)``); cells carry numbers only. Empty cells are "-" in Markdown and "--" in LaTeX.
    """
    divisor, prefix = (1, "") if raw else table_scale(table, layout.scale)
    latex = style != "markdown"
    cells = _count_cells(table)
    # decimals per column, and per row in the totals table (a row is one metric there)
    by_column: dict[int, list[float]] = {}
    by_row: dict[int, list[float]] = {}
    for r, i, v in cells:
        (by_row.setdefault(r, []) if table.columns[i].unit == "row" else by_column.setdefault(i, [])).append(v)
    column_decimals = {i: _decimals(vs, divisor) for i, vs in by_column.items()}
    row_decimals = {r: _decimals(vs, divisor) for r, vs in by_row.items()}

    def unit_label(unit: str) -> str:
        return prefix + ("B" if unit == "bytes" else "")

    def number(value: float, decimals: int) -> str:
        if divisor == 1:
            return str(int(value)) if style == "siunitx" or raw else f"{int(value):,}"
        return f"{value / divisor:.{decimals}f}" if style == "siunitx" else f"{value / divisor:,.{decimals}f}"

    headers = []
    for column in table.columns:
        header = column.display if latex and column.display else column.header
        if column.unit in COUNT_UNITS and unit_label(column.unit):
            header += f" ({unit_label(column.unit)})"
        elif style == "siunitx" and column.unit == "share":
            header += " (%)"
        headers.append(header)
    rows = []
    for r, values in enumerate(table.rows):
        out = []
        row_unit = table.row_units[r] if table.row_units else None
        for i, (column, value) in enumerate(zip(table.columns, values, strict=True)):
            unit = row_unit if column.unit == "row" else column.unit
            if i == 0 and row_unit in COUNT_UNITS and unit_label(row_unit) and any(c.unit == "row" for c in table.columns):
                out.append(f"{value} ({unit_label(row_unit)})")  # the totals table: the unit beside the metric
            elif value is None:
                out.append("--" if latex else "-")
            elif unit in COUNT_UNITS:
                decimals = row_decimals.get(r, 3) if column.unit == "row" else column_decimals.get(i, 3)
                out.append(number(value, decimals))
            elif style == "siunitx" and unit == "share":
                out.append(f"{100 * value:.2f}")
            elif latex and unit == "ratio":  # LaTeX's $\\times$ (the writer's escape of the sign); bare under siunitx
                out.append(f"{value:.3f}" + ("" if style == "siunitx" else "\u00d7"))
            elif style == "siunitx" and unit == "int":
                out.append(str(int(value)))
            else:
                out.append(format_cell(value, unit, (1, ""), raw))
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
        if table.conditions:
            # one line however narrow the terminal (it wraps it there), so it stays one line in a pipe
            console.print(f"conditions: {table.conditions}", highlight=False, markup=False, soft_wrap=True)
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


def to_markdown(tables: list[Table], raw: bool, layout: Layout | None = None) -> str:
    """One Markdown table per view, one unit per table, its conditions in a line under it."""
    layout = layout or Layout()
    out = []
    for table in layout.pick(tables):
        headers, rows = scaled(table, raw, layout, "markdown")
        out.append(f"**{table.title}**\n")
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---" if c.unit is None else "---:" for c in table.columns) + "|")
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
        out.append("")
        if table.conditions:
            out += [f"Conditions: {table.conditions}", ""]
        out += [f"Note: {n}" for n in table.notes] + ([""] if table.notes else [])
    return "\n".join(out).rstrip() + "\n"


LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                 "\u00d7": r"$\times$", "|": r"\textbar{}"}  # a bare | prints as a dash in OT1 text


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(tables: list[Table], raw: bool, layout: Layout | None = None) -> str:
    """booktabs tables a paper can ``\\input``: one per view, one unit per table, the title and the
    conditions in the caption, a ``\\label``, "--" for empty cells, ``$\\times$`` for ratios.

    Needs only booktabs; with ``layout.siunitx`` the numeric columns are siunitx ``S`` columns.
    """
    layout = layout or Layout()
    picked = layout.pick(tables)
    packages = ["booktabs", "siunitx"] if layout.siunitx else ["booktabs"]
    out = ["% archprof output; needs " + ", ".join(f"\\usepackage{{{p}}}" for p in packages)]
    style = "siunitx" if layout.siunitx else "latex"
    for table in picked:
        headers, rows = scaled(table, raw, layout, style)
        numeric = [c.unit is not None for c in table.columns]
        # free text (a note, a formula) wraps in a paragraph column rather than running off the page
        prose = [not n and i and max((len(r[i]) for r in rows), default=0) > PROSE_WIDTH for i, n in enumerate(numeric)]
        spec = "".join(("S" if layout.siunitx else "r") if n else "p{0.3\\linewidth}" if p else "l"
                       for n, p in zip(numeric, prose, strict=True))
        title = table.title if layout.caption is None else (
            layout.caption if len(picked) == 1 else f"{layout.caption}: {table.title}")
        caption = _sentence(title) + (" " + _sentence(table.conditions) if table.conditions else "")
        label = (layout.label if len(picked) == 1 else f"{layout.label}-{table.key}") if layout.label else \
            f"tab:{layout.command}-{table.key}"
        # siunitx: header text and anything not a number in an S column is braced, which it sets as text
        braced = [layout.siunitx and n for n in numeric]
        headers = [f"{{{latex_escape(h)}}}" if b else latex_escape(h) for h, b in zip(headers, braced, strict=True)]
        escaped = [[f"{{{latex_escape(c)}}}" if b and not _is_number(c) else latex_escape(c)
                    for c, b in zip(r, braced, strict=True)] for r in rows]
        out += ["\\begin{table}[ht]", "\\centering",
                f"\\caption[{{{latex_escape(_sentence(title))}}}]{{{latex_escape(caption)}}}",
                f"\\label{{{label}}}",
                f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                " & ".join(headers) + " \\\\", "\\midrule"]
        out += [" & ".join(r) + " \\\\" for r in escaped]
        out += ["\\bottomrule", "\\end{tabular}"]
        out += [f"\\par\\footnotesize {latex_escape(n)}" for n in table.notes]
        out += ["\\end{table}", ""]
    return "\n".join(out)


PROSE_WIDTH = 40  # characters: a longer text cell makes its LaTeX column a paragraph


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
        out += [f"<p><small>{escape(n)}</small></p>" for n in ([f"conditions: {table.conditions}"] if table.conditions else []) + table.notes]
    return "\n".join(out) + "\n"


# --- data exports --------------------------------------------------------------------------------

TOTAL_KEYS = ("macs", "flops", "params", "activations", "peak_activation_bytes")
ROW_KEYS = ("calls", "macs", "flops", "params", "activations", "bytes_read", "bytes_written")
# A training step's split, in the JSON of a training profile and in every CSV (zero for inference).
TRAINING_KEYS = ("backward_macs", "backward_flops", "saved_bytes")


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
        keys = ROW_KEYS + (TRAINING_KEYS if p.training is not None else ())
        rows = [{"grouping": r.grouping, "name": r.name, **{k: getattr(r, k) for k in keys},
                 **({"stages": list(r.stages)} if r.grouping == "stride" else {})}  # the stages a stride row regroups
                for by in groupings for r in p.group(by, depth if by == "layer" else None)]
        models.append({
            "name": p.model,
            "config": p.config,
            "input_shape": list(p.input_shapes[0]) if len(p.input_shapes) == 1 else [list(s) for s in p.input_shapes],
            "inputs": [{"path": i.path, "shape": list(i.shape), "dtype": i.dtype} for i in p.inputs],
            "totals": {k: getattr(p.totals, k) for k in TOTAL_KEYS + (TRAINING_KEYS if p.training is not None else ())},
            "uncounted": p.uncounted,
            "rows": rows,
            "conditions": p.conditions.as_dict(),
        })
        if p.training is not None:
            models[-1]["training"] = {**asdict(p.training), "total": p.training.total}
        if latencies:
            models[-1]["latency"] = latency_to_dict(latencies[i])
    return json.dumps({"models": models}, indent=2) + "\n"


# memory_bytes: the bytes of a training step's "memory" rows (weights, gradients, ...), empty on the others.
CSV_COLUMNS = ("model", "grouping", "name", *ROW_KEYS, *TRAINING_KEYS, "memory_bytes")
# Last on every row, so that concatenated files stay unambiguous: what the row's numbers were counted at.
CONDITION_COLUMNS = ("input", "dtype", "batch", "device", "mode", "convention", "version")


def condition_cells(conditions: Any) -> list[Any]:
    if conditions is None:
        return [""] * len(CONDITION_COLUMNS)
    values = conditions.as_dict()
    return ["" if values[k] is None else values[k] for k in CONDITION_COLUMNS]


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
    each layer type and layer on theirs) and the achieved GMAC/s. The conditions of the count end
    every row (:data:`CONDITION_COLUMNS`).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + (("median_ms", "gmacs_per_s") if latencies else ()) + CONDITION_COLUMNS)
    for i, p in enumerate(profiles):
        report = latencies[i] if latencies else None
        timed = {("type", r.name): r for r in report.by_type()} | {("layer", r.name): r for r in report.layers} if report else {}
        conditions = condition_cells(p.conditions)

        def extra(grouping: str, name: str, report: Any = report, timed: Any = timed, conditions: Any = conditions) -> list[Any]:
            return _latency_cells(report, timed, grouping, name) + conditions

        t = p.totals
        writer.writerow([p.model, "total", "total", len(p.ops), t.macs, t.flops, t.params, t.activations,
                         t.bytes_read, t.bytes_written, *(getattr(t, k) for k in TRAINING_KEYS), "", *extra("total", "total")])
        for by in groupings:
            for r in p.group(by, depth if by == "layer" else None):
                writer.writerow([p.model, by, r.name, *(getattr(r, k) for k in ROW_KEYS + TRAINING_KEYS), "", *extra(by, r.name)])
        for op, n in p.uncounted.items():
            writer.writerow([p.model, "uncounted", op, n, *[0] * (len(ROW_KEYS) - 1 + len(TRAINING_KEYS)), "", *extra("uncounted", op)])
        for what, nbytes in p.training.rows() if p.training is not None else ():
            writer.writerow([p.model, "memory", what, *[""] * (len(ROW_KEYS) + len(TRAINING_KEYS)), nbytes, *extra("memory", what)])
    return buffer.getvalue()


def dataclass_to_json(result: Any) -> str:
    """A result dataclass as JSON: its fields in order (nested dataclasses as objects, the
    ``conditions`` by :meth:`Conditions.as_dict`)."""
    data = {f.name: getattr(result, f.name) for f in fields(result)}
    return json.dumps({k: v.as_dict() if k == "conditions" and v is not None else _plain(v) for k, v in data.items()},
                      indent=2) + "\n"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def dataclass_rows_to_csv(rows: list[Any], conditions: Any = None) -> str:
    """One CSV row per dataclass, its fields as columns (empty for None), the conditions last."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*(f.name for f in fields(rows[0])), *CONDITION_COLUMNS])
    for row in rows:
        writer.writerow(["" if v is None else v for v in asdict(row).values()] + condition_cells(conditions))
    return buffer.getvalue()


def blocks_to_json(comparison: Any) -> str:
    return dataclass_to_json(comparison)


def blocks_to_csv(comparison: Any) -> str:
    return dataclass_rows_to_csv(comparison.blocks, comparison.conditions)


def crosscheck_to_json(check: Any) -> str:
    peers = []
    verdicts = {v.tool: v for v in check.verdicts()}
    for p in check.peers:
        entry: dict[str, Any] = {"name": p.name, "unit": p.unit, "error": p.error}
        if p.error is None:
            v = verdicts[p.name]
            entry.update(
                total=v.reported,
                total_common=v.common,
                difference=v.difference,
                unexplained=v.unexplained,
                layers=[{"name": n, "actual": p.actual.get(n, 0.0), "predicted": p.predicted.get(n, 0.0),
                         "explained": p.explained.get(n, {}), "unexplained": check.unexplained(p, n)}
                        for n in check.layers()],
            )
        peers.append(entry)
    meta = None if check.meta is None else {"total": check.meta_total, "layers": check.meta, "explained": check.device_gaps}
    return json.dumps({"model": check.model, "unit": check.unit,
                       "archprof": {"total": check.archprof_total, "layers": check.archprof, "uncounted": check.uncounted,
                                    "meta": meta, "meta_error": check.meta_error},
                       "peers": peers,
                       "conditions": None if check.conditions is None else check.conditions.as_dict()}, indent=2) + "\n"


def crosscheck_to_csv(check: Any) -> str:
    """One row per tool and layer: the reported value, the common-unit value, archprof's, and why;
    the conditions of the forward end every row (archprof's rows on meta say device meta)."""
    buffer = io.StringIO()
    csv_writer = csv.writer(buffer, lineterminator="\n")
    csv_writer.writerow(["model", "tool", "unit", "layer", "reported", check.unit, "archprof", "difference", "unexplained",
                         "conventions", "error", *CONDITION_COLUMNS])
    conditions = condition_cells(check.conditions)
    on_meta = conditions[:CONDITION_COLUMNS.index("device")] + ["meta"] + conditions[CONDITION_COLUMNS.index("device") + 1:]

    def write(row: list[Any]) -> None:  # every row ends with its conditions
        csv_writer.writerow(row + (on_meta if row[1] == "archprof on meta" and check.conditions else conditions))

    for op, calls in check.uncounted.items():
        write([check.model, "archprof", "uncounted", op, calls, "", "", "", "", "", ""])
    if check.meta_error is not None:
        write([check.model, "archprof on meta", "", "", "", "", "", "", "", "", check.meta_error])
    for n, gaps in check.device_gaps.items():
        value, ours = check.meta.get(n, 0), check.archprof.get(n, 0)
        why = "; ".join(f"{w}={a:g}" for w, a in gaps.items())
        write([check.model, "archprof on meta", check.unit, n, value, value, ours, value - ours, 0, why, ""])
    for p in check.peers:
        if p.error is not None:
            write([check.model, p.name, p.unit, "", "", "", "", "", "", "", p.error])
            continue
        for n in check.layers():
            value = p.actual.get(n, 0.0)
            common = value * p.factor(check.unit)
            ours = check.archprof.get(n, 0)
            why = "; ".join(f"{w}={a:g}" for w, a in p.explained.get(n, {}).items())
            write([check.model, p.name, p.unit, n, f"{value:g}", f"{common:g}", ours, f"{common - ours:g}",
                             f"{check.unexplained(p, n):g}", why, ""])
    return buffer.getvalue()


TextWriter = Callable[[list[Table], bool, Layout], str]
# The table layouts of the format registry (formats.py), by name: --format markdown, latex.
TEXT_WRITERS: dict[str, TextWriter] = {f.name: globals()[f.writer] for f in FORMATS.values() if f.writer}
