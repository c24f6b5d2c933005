"""Rich tables for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from archprof.architectures.registry import ModelInfo
from archprof.rendering.output import results


def console() -> Console:
    # rich already turns colour off when stdout is not a terminal and honours NO_COLOR.
    return Console(file=results(), highlight=False, emoji=False)  # "hf:llama:..." is a model name, not the :llama: emoji


def print_model_list(entries: list[ModelInfo]) -> None:
    table = Table(title="archprof architectures", show_lines=False)
    table.add_column("model", style="bold")
    table.add_column("description")
    table.add_column("options (defaults)")
    for entry in entries:
        options = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items())
        table.add_row(entry.name, entry.description, options)
    console().print(table)
