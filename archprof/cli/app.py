"""The typer application and its error contract.

Results go to stdout; bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from archprof.analysis.profile import ArchprofNotice
from archprof.cli import commands

app = typer.Typer(
    name="archprof",
    help="FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the underlying traceback of an error."),
) -> None:
    """FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher."""
    commands.SETTINGS.verbose = verbose


app.command("compare")(commands.compare_command)
app.command("profile")(commands.profile_command)
app.command("resnet")(commands.resnet_command)
app.command("blocks")(commands.blocks_command)
app.command("detector")(commands.detector_command)
app.command("crosscheck")(commands.crosscheck_command)
app.command("report")(commands.report_command)
app.command("list")(commands.list_command)


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` and return its exit code (what ``main`` exits with)."""
    commands.SETTINGS.verbose = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ArchprofNotice)  # the commands print notices as one line each
            result = app(args=argv, prog_name="archprof", standalone_mode=False)
    except typer.Exit as err:
        return err.exit_code
    except typer.TyperException as err:  # usage errors: unknown option, bad value, missing argument
        message = " ".join(err.format_message().split())
        if not message:  # a bare `archprof`: typer has printed the help, which is what was asked
            return 0
        print(f"archprof: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`archprof ... | head`): quietly 1, as rich does
        return 1
    except typer.Abort:
        print("archprof: aborted", file=sys.stderr)
        return 130
    except commands.UserError as err:
        print(f"archprof: error: {err}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


def main() -> None:
    code = run()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # `archprof ... | head` (the reader is gone), or a failed write already reported
        pass
    # Skip the interpreter's teardown: freeing torch's modules takes about 0.45 s, a third of a
    # command's wall time; every file archprof writes is closed (and renamed) by now.
    os._exit(code)
