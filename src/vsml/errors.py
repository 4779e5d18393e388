"""The one exception base of vsml, the "did you mean" hint, and how a command turns errors into one line.

Every error a user can cause and fix (a bad config, a missing dataset, a corrupt checkpoint, a
folder in use, a kernel that cannot run here, ...) derives from :class:`VSMLError` (the specific
classes also keep their builtin base, e.g. :class:`~vsml.config.ConfigError` is a ``ValueError``)::

    try:
        vsml.online("vsml", ...)
    except vsml.errors.VSMLError as e:     # every expected error, one readable message
        ...

Every ``vsml`` sub-command is wrapped by :func:`command`, the one place where such an error becomes
one line ``<prog>: error: <message>`` on stderr and an exit code (the error's ``exit_code``, 2 by
default); a stop on SIGINT / SIGTERM after a checkpoint is reported the same way, without
``error:``, and exits 130 / 143. This module imports nothing from vsml (every layer may use it).
"""

from __future__ import annotations

import difflib
import functools
import sys
from typing import Callable, Iterable

#: Exit code of a command that ended with an error (also argparse's for a bad command line).
EXIT_ERROR = 2


class VSMLError(Exception):
    """Base of every expected vsml error (bad input, config, data, files, runs): the CLI prints its
    message as one line and exits with :attr:`exit_code`."""

    exit_code: int = EXIT_ERROR
    #: the word between the program and the message on stderr (``""``: a stop, not an error)
    label: str = "error"


def did_you_mean(word: object, options: Iterable[str], *, ignore_case: bool = False) -> str | None:
    """The option closest to ``word`` (``difflib``'s ratio >= 0.6), or ``None``: the suggestion of
    an "unknown name" error. ``ignore_case`` compares lower-cased (the returned option keeps its case)."""
    options = list(options)
    if ignore_case:
        lowered = {o.lower(): o for o in reversed(options)}
        close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1)
        return lowered[close[0]] if close else None
    close = difflib.get_close_matches(str(word), options, n=1)
    return close[0] if close else None


def error_line(prog: str, error: BaseException) -> tuple[str, int]:
    """``(line, exit code)`` of an error ending command ``prog`` (see the module docstring)."""
    if isinstance(error, VSMLError):
        label = f"{error.label}: " if error.label else ""
        return f"{prog}: {label}{error}", error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return f"{prog}: interrupted (a run that wrote a checkpoint continues from it with --resume)", 130
    return f"{prog}: error: {error}", EXIT_ERROR


def command(prog: str | Callable[[object], str], *, on_exit: Callable[[int, str, BaseException], None] | None = None):
    """Decorate a sub-command ``fn(args) -> exit code`` so that a :class:`VSMLError`, a
    ``ValueError`` (bad values found by a dependency), an ``OSError`` (a file that cannot be read
    or written) or Ctrl-C before a run installs its own handler ends it with one line on stderr
    and an exit code instead of a traceback. ``prog``: the program name printed, or a function of
    ``args`` giving it. ``on_exit(code, line, error)``: called instead of printing (it may print and
    leave the process itself, e.g. every process of a multi-process run)."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(args) -> int:
            try:
                return int(fn(args) or 0)
            except (VSMLError, ValueError, OSError, KeyboardInterrupt) as e:
                line, code = error_line(prog(args) if callable(prog) else prog, e)
                if on_exit is not None:
                    on_exit(code, line, e)
                print(line, file=sys.stderr)
                return code

        return run

    return wrap
