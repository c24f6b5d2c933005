"""Where rendered output goes: stdout, or a file written atomically (no half-written files)."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

from archprof.rendering.tables import Table
from archprof.rendering.writers import TEXT_WRITERS, write_console


class OutputError(ValueError):
    """The output path cannot be written (one readable line)."""


def check_writable(path: str | os.PathLike) -> Path:
    """Fail before any work if ``path`` cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {target}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {target}: directory {parent} is not writable")
    return target


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it into place.

    A target that exists and is not a regular file (a FIFO, a device such as /dev/null, or a
    symlink, whose target is meant) is written through instead: renaming over it would replace it.
    """
    target = check_writable(path)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        try:
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as err:
            raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 is for the temporary file only
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def render_tables(tables: list[Table], fmt: str, raw: bool, width: int = 160) -> str:
    """Tables as text: rich's layout without colour for ``table``, else the format's writer."""
    if fmt == "table":
        from rich.console import Console

        buffer = io.StringIO()
        write_console(tables, raw, Console(file=buffer, width=width, no_color=True, color_system=None, highlight=False))
        return buffer.getvalue()
    return TEXT_WRITERS[fmt](tables, raw)


def emit(text: str | None, tables: list[Table] | None, fmt: str, raw: bool, output: str | None) -> None:
    """Send one command's result to stdout or to ``output``.

    ``text`` is a data export (csv, json); ``tables`` are laid out by the format's writer. On a
    terminal the table format prints with rich (colour unless NO_COLOR is set).
    """
    if text is None:
        if fmt == "table" and output is None:
            from rich.console import Console

            console = Console(highlight=False)
            if not console.is_terminal:  # piped: no colour (rich's default), and room for wide tables
                console = Console(highlight=False, width=160)
            write_console(tables or [], raw, console)
            return
        text = render_tables(tables or [], fmt, raw)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text)
