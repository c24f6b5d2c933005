"""The output formats by name: the one registry that ``--format``'s choices and the writers come from.

Importable without torch, so that the command line's help lists the choices without loading the
writers (which import the analysis). Adding a format is a row here and its writer in writers.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputFormat:
    name: str
    # csv and json export the analysis data itself, in exact integers, through each result's own
    # exporter; the others lay out the result's tables.
    exports_data: bool
    # a table layout's writer in archprof.rendering.writers, fn(tables, raw, layout) -> str; None for
    # the data exports, and for "table", which rich prints to the console (rendering.output.emit)
    writer: str | None = None


FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("table", exports_data=False),
    OutputFormat("csv", exports_data=True),
    OutputFormat("json", exports_data=True),
    OutputFormat("markdown", exports_data=False, writer="to_markdown"),
    OutputFormat("latex", exports_data=False, writer="to_latex"),
)}
