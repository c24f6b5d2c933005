"""The typer application and its error contract.

Results go to stdout; bad input is one line on stderr and exit code 2, never a traceback. The
commands register themselves on ``app`` where they are defined (``commands.command``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import typer
import typer.core
import typer.main

from archprof import __version__

HELP = """FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher.

\b
Examples:
  archprof profile resnet50
  archprof compare mobilenet_v1 mobilenet_v2 --per-stage
  archprof list

`archprof COMMAND --help` shows a command's options and examples.
"""

@dataclass
class Settings:
    """Options of the whole command line (the root callback sets them for one run)."""

    verbose: bool = False


SETTINGS = Settings()


class _PlainHelp:
    """typer's --help defaults to None, which typer coerces through pydantic (a tenth of a second
    and 13 MB) on every command line that does not give it; a False default needs no coercion."""

    def get_help_option(self, ctx: typer.Context) -> typer.core.TyperOption | None:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and option.default is None:
            option.default = False
        return option


class ArchprofGroup(_PlainHelp, typer.core.TyperGroup):
    pass


class ArchprofCommand(_PlainHelp, typer.core.TyperCommand):
    pass


app = typer.Typer(
    name="archprof",
    cls=ArchprofGroup,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,  # the two options are declared below: typer's own load pydantic on every command
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


def _completion(ctx: typer.Context, param: typer.CallbackParam, asked: bool) -> None:
    """--install-completion and --show-completion, as typer's own options do them.

    Declared here as plain flags: typer's (``add_completion=True``) default to None, which typer
    coerces through pydantic on every command line, a tenth of a second before any command runs.
    The completions themselves (``_ARCHPROF_COMPLETE=...``) are answered by typer either way.
    """
    if asked:
        from typer import completion

        completion.completion_init()
        (completion.install_callback if param.name == "install_completion" else completion.show_callback)(ctx, param, asked)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the underlying traceback of an error."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, expose_value=False, help="Print archprof's version and exit."
    ),
    install_completion: bool = typer.Option(
        False, "--install-completion", callback=_completion, is_eager=True, expose_value=False,
        help="Install completion for the current shell.",
    ),
    show_completion: bool = typer.Option(
        False, "--show-completion", callback=_completion, is_eager=True, expose_value=False,
        help="Show completion for the current shell, to copy it or customize the installation.",
    ),
) -> None:
    """FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher."""
    SETTINGS.verbose = verbose


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
    SETTINGS.verbose = False
    if os.environ.get("_ARCHPROF_COMPLETE"):  # the shell asks for completions: typer's shells answer
        from typer.completion import completion_init

        completion_init()
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
    except OSError as err:  # a full standard output (`archprof --help > /dev/full`), which the help and list write directly
        print(f"archprof: error: cannot write the results to standard output: {err.strerror or err}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("archprof: aborted", file=sys.stderr)
        return 130
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
