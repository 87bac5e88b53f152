"""StderrHandler follows sys.stderr when it is replaced, so a closed old stream breaks nothing."""

from __future__ import annotations

import io
import logging
import sys

from sasrec.stderr_handler import StderrHandler


def test_records_go_to_the_current_stderr_after_the_old_one_is_closed(monkeypatch):
    logger = logging.getLogger("sasrec.test.stderr_handler")
    logger.propagate = False
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    handler = StderrHandler()
    logger.addHandler(handler)
    try:
        logger.warning("one")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logger.warning("two")
    finally:
        logger.removeHandler(handler)
    assert second.getvalue() == "two\n"
