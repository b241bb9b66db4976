"""The one error contract of the command line.

Library code raises ordinary exceptions with a message that names the file or option and the problem:
``ValueError`` (and its subclasses such as ``InvalidMotionError``, ``PipelineError``) or ``OSError`` for
user errors. ``cli.py`` turns any exception into one line ``error: ...`` and an exit code:

    2  usage error: a bad value, option, path or file (ValueError, FileNotFoundError, ...)
    1  failure: the command ran but could not finish (``Failure``, or anything unexpected)
    130 interrupted

``motionmillion --debug ...`` (or ``MOTIONMILLION_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

USAGE_EXIT = 2
FAILURE_EXIT = 1
INTERRUPTED_EXIT = 130


class UsageError(ValueError):
    """Bad input from the user: an option value, a path, a file's content."""


class Failure(RuntimeError):
    """The command ran but did not finish its job (e.g. some items of a batch failed)."""


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED_EXIT
    if isinstance(error, Failure):
        return FAILURE_EXIT
    if isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                          FileExistsError, PermissionError, UnicodeDecodeError)):  # fmt: skip
        return USAGE_EXIT
    return FAILURE_EXIT


def one_line(error: BaseException) -> str:
    """The message a user sees: the error's own text on one line, its type only when it is unexpected."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror.lower()}"
    else:
        text = str(error).strip() or type(error).__name__
    text = " ".join(text.split())
    if exit_code_for(error) == FAILURE_EXIT and not isinstance(error, Failure):
        text = f"{type(error).__name__}: {text} (run with --debug for the traceback)"
    return text
