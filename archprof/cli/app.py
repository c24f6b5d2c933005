"""The typer application and its error contract.

Results go to stdout; bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer
import typer.main

from archprof import __version__
from archprof.cli import commands

HELP = """FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher.

\b
Examples:
  archprof profile resnet50
  archprof compare mobilenet_v1 mobilenet_v2 --per-stage
  archprof list

`archprof COMMAND --help` shows a command's options and examples.
"""

app = typer.Typer(
    name="archprof",
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # click's plain help: it wraps the descriptions and never cuts an option's name (typer's rich
    # panels cut them at 80 columns), and prints without loading rich's markdown layout
    rich_markup_mode=None,
    # the terminal's full width (click's own default stops at 80); 80 when it is unknown
    context_settings={"max_content_width": 1000},
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"archprof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the underlying traceback of an error."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, expose_value=False, help="Print archprof's version and exit."
    ),
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


def repeated_option(argv: list[str]) -> str | None:
    """The error for a single-valued option given twice in ``argv``, else None.

    click keeps the last of ``--input-shape A --input-shape B`` without a word; only options
    declared repeatable (``--input``) may be given more than once.
    """
    group = typer.main.get_command(app)
    start = next((i for i, token in enumerate(argv) if not token.startswith("-")), len(argv))
    command = getattr(group, "commands", {}).get(argv[start]) if start < len(argv) else None
    if command is None:
        return None
    options = {name: param for param in command.params if param.param_type_name == "option"
               for name in (*param.opts, *param.secondary_opts)}
    seen: dict[str, str] = {}
    tokens = iter(argv[start + 1:])
    for token in tokens:
        if token == "--":
            break
        name, attached = token, False
        if token.startswith("--") and "=" in token:
            name, attached = token.split("=", 1)[0], True
        elif token.startswith("-") and not token.startswith("--") and len(token) > 2:
            name, attached = token[:2], True  # -fcsv
        param = options.get(name)
        if param is None:
            continue
        if not (param.is_flag or param.count or attached):
            next(tokens, None)  # its value, which may itself look like an option
        if param.multiple or param.count:
            continue
        if param.name in seen:
            first = seen[param.name]
            if (first in param.secondary_opts) != (name in param.secondary_opts):  # --stride-in-1x1 and --stride-in-3x3
                return f"{first} and {name} are both given: give one"
            option = max(param.opts, key=len)
            several = " (several inputs: repeat --input)" if option == "--input-shape" else ""
            return f"{option} is given twice: give it once{several}"
        seen[param.name] = name
    return None


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` and return its exit code (what ``main`` exits with)."""
    commands.SETTINGS.verbose = False
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]  # a bare `archprof` asks for the help
    repeated = repeated_option(args)
    if repeated is not None:
        print(f"archprof: error: {repeated}", file=sys.stderr)
        return 2
    try:
        result = app(args=args, prog_name="archprof", standalone_mode=False)
    except typer.Exit as err:
        return err.exit_code
    except typer.TyperException as err:  # usage errors: unknown option, bad value, missing argument
        message = " ".join(err.format_message().split())
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
