"""Where rendered output goes: the results stream (stdout), or files written whole or not at all.

Every file archprof writes goes through ``write_atomic``. Inside an ``all_or_nothing`` block (the
command line runs each command in one) the files are renamed into place together when the block
succeeds, so a run that fails, even after writing some of them, leaves none behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from archprof.errors import ArchprofValueError

if TYPE_CHECKING:  # the writers import the analysis (and torch): loaded when there is something to write
    from archprof.rendering.tables import Table
    from archprof.rendering.writers import Layout


class OutputError(ArchprofValueError):
    """The output path cannot be written (one readable line)."""


_results: ContextVar[TextIO | None] = ContextVar("archprof_results", default=None)


def results() -> TextIO:
    """The stream results are printed to: the one ``results_to`` set, else ``sys.stdout``."""
    return _results.get() or sys.stdout


@contextlib.contextmanager
def results_to(stream: TextIO) -> Iterator[None]:
    """Print results to ``stream`` while the block runs, whatever ``sys.stdout`` is meanwhile."""
    token = _results.set(stream)
    try:
        yield
    finally:
        _results.reset(token)


class _Batch:
    """Files staged under temporary names, and the directories made for them, in one block."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []  # (temporary file, target)
        self.created: list[Path] = []  # directories this block made, outermost first

    def commit(self) -> None:
        while self.staged:
            tmp, target = self.staged[0]
            try:
                os.replace(tmp, target)
            except OSError as err:
                self.discard()
                raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
            self.staged.pop(0)

    def discard(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):  # not empty: something else wrote there meanwhile
                directory.rmdir()


_batch: ContextVar[_Batch | None] = ContextVar("archprof_batch", default=None)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """The files written inside the block appear together if it succeeds, and none if it fails.

    Each file is written to a temporary file beside its target as usual; only the renames wait
    for the end of the block. Directories made by ``make_dirs`` are removed again on failure.
    A nested block joins the outer one.
    """
    if _batch.get() is not None:
        yield
        return
    batch = _Batch()
    token = _batch.set(batch)
    try:
        yield
    except BaseException:
        batch.discard()
        raise
    finally:
        _batch.reset(token)
    batch.commit()


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p`` that fails as one line; inside ``all_or_nothing`` a failed block removes what it made."""
    target = Path(path)
    missing = []
    parent = target
    while not (parent.exists() or parent.is_symlink()):
        missing.append(parent)
        parent = parent.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create directory {target}: {err.strerror or err}") from err
    batch = _batch.get()
    if batch is not None:
        batch.created += reversed(missing)
    return target


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


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all.

    The data goes to a temporary file beside the target, renamed into place at once, or at the
    end of the enclosing ``all_or_nothing`` block. A file that is replaced keeps its permissions
    (and, where allowed, its owner); a new one gets 0666 less the umask, as ``open`` would give it.
    A symlink is followed: the link stays and the file it names is replaced. A target that is not
    a regular file (a FIFO, a device such as /dev/null) is written through, since renaming over
    it would replace it.
    """
    target = check_writable(path)
    if target.is_symlink():
        try:
            target = check_writable(target.resolve())
        except RuntimeError as err:  # a symlink loop
            raise OutputError(f"cannot write {path}: {err}") from err
    payload = data.encode("utf-8") if isinstance(data, str) else data
    existing = target.stat() if target.exists() else None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        try:
            with open(target, "wb") as handle:
                handle.write(payload)
        except OSError as err:
            raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
        return
    tmp = _stage(target, payload, existing)
    batch = _batch.get()
    if batch is not None:
        batch.staged.append((tmp, target))
        return
    try:
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err


def _stage(target: Path, payload: bytes, existing: os.stat_result | None) -> Path:
    """``payload`` in a temporary file beside ``target``, with the permissions ``target`` will have."""
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        if existing is None:
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 is for the temporary file only
        else:
            if (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(OSError):  # only root may give a file away: kept where allowed
                    os.chown(tmp, existing.st_uid, existing.st_gid)
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))  # after chown, which clears set-id bits
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def render_tables(tables: list[Table], fmt: str, raw: bool, width: int = 160, layout: Layout | None = None) -> str:
    """Tables as text: rich's layout without colour for ``table``, else the format's writer."""
    from archprof.rendering.writers import TEXT_WRITERS, Layout, write_console

    layout = layout or Layout()
    if fmt == "table":
        tables = layout.pick(tables)
        from rich.console import Console

        buffer = io.StringIO()
        write_console(tables, raw, Console(file=buffer, width=width, no_color=True, color_system=None, highlight=False, emoji=False))
        return buffer.getvalue()
    return TEXT_WRITERS[fmt](tables, raw, layout)


def emit(
    text: str | None, tables: list[Table] | None, fmt: str, raw: bool, output: str | None, layout: Layout | None = None
) -> None:
    """Send one command's result to the results stream (stdout) or to ``output``.

    ``text`` is a data export (csv, json); ``tables`` are laid out by the format's writer (``layout``:
    the tables picked, their unit and LaTeX captions). On a terminal the table format prints with
    rich (colour unless NO_COLOR is set).
    """
    if text is None and not (fmt == "table" and output is None):
        text = render_tables(tables or [], fmt, raw, layout=layout)
    if output is not None:
        write_atomic(output, text)
        return
    stream = results()
    try:
        if text is None:
            from rich.console import Console

            from archprof.rendering.writers import write_console

            console = Console(file=stream, highlight=False, emoji=False)
            if not console.is_terminal and not os.environ.get("COLUMNS"):
                # piped: no colour (rich's default), and room for wide tables unless COLUMNS sets a width
                console = Console(file=stream, highlight=False, emoji=False, width=160)
            write_console(layout.pick(tables or []) if layout else tables or [], raw, console)
        else:
            stream.write(text)
        stream.flush()
    except BrokenPipeError:  # the reader went away: not an error of archprof's (the app exits quietly)
        raise
    except OSError as err:
        raise OutputError(f"cannot write the results to standard output: {err.strerror or err}") from err
