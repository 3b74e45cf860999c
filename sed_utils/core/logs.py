"""The package's messages go through Python ``logging`` (every notebook, the command line).

Every module logs to ``logging.getLogger(__name__)``, a child of the ``sed_utils`` logger; nothing in the
package prints, except the command line's own results. Without a handler, Python shows warnings and
errors only, so a script that imports the package stays quiet. :func:`configure_logging` shows the
progress messages (training epochs, downloads, reused models) where a reader wants them: each notebook's
first code cell calls it (on stdout, the cell's output), the command line calls it with ``--quiet`` /
``--verbose`` (on stderr: its stdout may hold the events table).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["LOGGER_NAME", "configure_logging"]

LOGGER_NAME = "sed_utils"
_OURS = "_sed_utils_handler"


class _Plain(logging.Formatter):
    """The message alone; a warning or error says so first (after a leading ``[tag]``: "[detect] warning:
    ...")."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno < logging.WARNING:
            return text
        tag, sep, rest = text.partition("] ") if text.startswith("[") else ("", "", text)
        return f"{tag}{sep}{record.levelname.lower()}: {rest}"


def configure_logging(verbosity: int = 0, stream: TextIO | None = None) -> logging.Logger:
    """Show the package's messages (every notebook's first cell, the command line).

    Args:
        verbosity: 0: progress messages and up (INFO); below 0: warnings and errors only; above 0: DEBUG.
        stream: where they go (default: stdout, a notebook cell's output).

    Returns:
        The ``sed_utils`` logger. A second call replaces the first one's handler (re-running a cell, or a
        test calling the command line twice, never doubles the messages).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, _OURS, False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(_Plain("%(message)s"))
    setattr(handler, _OURS, True)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)
    return logger
