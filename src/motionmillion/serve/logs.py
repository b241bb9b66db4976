"""How ``motionmillion serve`` and its generation processes log: one line per event, the same format in each.

A Python warning (e.g. the pipeline's "prompt ... contains emoji or symbols") is shown by default with the
file, line number and source line that raised it: in a server's log that is noise around one sentence,
so here it becomes one WARNING line.
"""

from __future__ import annotations

import logging
import warnings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger("motionmillion.serve")


def configure_logging() -> None:
    """Log lines to stderr: this package's at INFO (start, stop, warnings), other libraries' from WARNING;
    warnings become log lines (:func:`log_warning`)."""
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    logging.getLogger("motionmillion").setLevel(logging.INFO)
    warnings.showwarning = log_warning


def log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` as one log line: the message (with its category unless a plain UserWarning)."""
    text = str(message) if category is UserWarning else f"{category.__name__}: {message}"
    log.warning("%s", text)
