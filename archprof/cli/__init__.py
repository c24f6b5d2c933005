"""The ``archprof`` command line: thin typer commands over the library."""

from archprof.cli.app import app, main, run

__all__ = ["app", "main", "run"]
