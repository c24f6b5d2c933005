"""The ``archprof`` command line: thin typer commands over the library."""

from archprof.cli import commands  # noqa: F401  (each command registers itself on app where it is defined)
from archprof.cli.app import app, main, run

__all__ = ["app", "main", "run"]
