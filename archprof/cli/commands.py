"""Each command parses its arguments, calls the library and hands the data to a renderer."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer

from archprof.architectures import list_models, model_entry


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr with exit code 2."""


def reports_user_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (UserError, ValueError) as err:
            typer.echo(f"archprof: error: {err}", err=True)
            sys.exit(2)

    return wrapper


@reports_user_errors
def list_command() -> None:
    """List the registered architectures with their options and defaults."""
    from archprof.rendering.console import print_model_list

    print_model_list([model_entry(name) for name in list_models()])
