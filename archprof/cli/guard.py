"""The guard every command runs under, because some of what a command runs is the user's code.

A factory's module, the factory and the model's forward are the user's code, and they must not
break the command line's contracts:

- What they print goes to stderr. Standard output carries archprof's results only (through
  ``results()``), so ``--format json`` and ``csv`` parse however chatty the model is. This is done
  at the Python level (``sys.stdout``); what a C extension writes to file descriptor 1 is not seen.
- ``sys.exit(N)`` in their code is an error with exit code 2: left alone it would end the command
  with the model's code, a silent 0 passing for success and a 3 for ``--strict``'s failure.
- Files are renamed into place only when the whole command succeeds (``all_or_nothing``), so a
  failure anywhere, a Ctrl-C included, leaves no output file or figure behind.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from archprof.errors import ArchprofError
from archprof.rendering.output import all_or_nothing, results_to


class UserCodeExit(ArchprofError):
    """The model's code called ``sys.exit``: one line on stderr and exit code 2."""


@contextlib.contextmanager
def user_code_guard() -> Iterator[None]:
    """Run one command: results to the real stdout, user prints to stderr, files all or nothing."""
    with results_to(sys.stdout), contextlib.redirect_stdout(sys.stderr), all_or_nothing():
        try:
            yield
        except SystemExit as exit_:  # archprof itself exits through typer.Exit, never SystemExit
            raise UserCodeExit(f"the model's code called {_exit_call(exit_.code)}") from exit_


def _exit_call(code: object) -> str:
    if code is None:
        return "sys.exit()"
    return f"sys.exit({code})" if isinstance(code, int) else f"sys.exit({code!r})"
