"""The library's messages: module loggers under ``wdsr_basicsr``, which the entries show (:func:`show_messages`).

Library functions never print; they log (``logging.getLogger(__name__)``). An entry of this package shows the
messages on the console: information on stdout, warnings and errors on stderr, one line each. Run from
elsewhere (``python -m basicsr.train``, a notebook), warnings still reach stderr through Python's last-resort
handler, and the caller's own logging configuration decides the rest.
"""

from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = 'wdsr_basicsr'


class _Console(logging.Handler):
    """Information to stdout (or stderr), warnings and errors to stderr: the streams as they are at each message."""

    def __init__(self, information_to_stderr: bool):
        super().__init__()
        self.information_to_stderr = information_to_stderr

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING or self.information_to_stderr else sys.stdout
        stream.write(self.format(record) + '\n')
        stream.flush()


def show_messages(information_to_stderr: bool = False) -> None:
    """Show the package's messages (information and up) on the console; for the entries.

    Args:
        information_to_stderr (bool): Information on stderr too, for an entry whose stdout is its result (a
            table). Default: False.
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _Console)]:
        logger.removeHandler(handler)
    logger.addHandler(_Console(information_to_stderr))
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the entry owns the console: no second copy through the root logger
