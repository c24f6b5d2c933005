"""What archprof reports: one base class for every expected failure, and the notice category.

Every failure archprof expects (a bad option, a model spec that names nothing, a model that cannot
be built or profiled, an input or an output file that cannot be used) is an ``ArchprofError``
carrying one readable line. The command line turns it into that line on stderr and its
``exit_code`` in one place (``archprof.cli.commands.reports_user_errors``); anything else is a bug
and keeps its traceback. Python callers catch ``archprof.ArchprofError``.

This module imports nothing: the command line's help, ``list`` and completion load it without torch.
"""

from __future__ import annotations

EXIT_USAGE = 2  # bad input: the command line's usage errors and every ArchprofError
EXIT_UNCOUNTED = 3  # --strict: an op has no cost rule


class ArchprofError(Exception):
    """An expected failure, described in one readable line; the command line exits with ``exit_code``."""

    exit_code = EXIT_USAGE


class ArchprofValueError(ArchprofError, ValueError):
    """A bad argument value. Still a ``ValueError``, as it was before ``ArchprofError``, so the
    callers that catch ``ValueError`` (and ``pytest.raises(ValueError)``) keep working."""


class SpecError(ArchprofValueError):
    """A model spec that cannot be built: an unknown model or option, a factory that fails (one readable line)."""


class ArchprofNotice(UserWarning):
    """Something the user should know about how a profile was made (e.g. a CPU fallback)."""
