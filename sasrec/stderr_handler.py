"""A logging handler bound to ``sys.stderr`` as it is when a record is emitted.

``logging.StreamHandler(sys.stderr)`` keeps the stream it was given; when
``sys.stderr`` is later replaced (a test's captured stream, a daemon that
redirects it) and the old one closed, every record becomes a "Logging error"
traceback. Looking it up per record follows the replacement.

Example:
    >>> import logging
    >>> logging.getLogger("demo").addHandler(StderrHandler())
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO


class StderrHandler(logging.StreamHandler):
    """``logging.StreamHandler`` that always writes to the current ``sys.stderr``.

    Example:
        >>> handler = StderrHandler()
        >>> handler.stream is sys.stderr
        True
    """

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        # StreamHandler.__init__ and setStream assign a stream; the current
        # sys.stderr is always the one used.
        pass
