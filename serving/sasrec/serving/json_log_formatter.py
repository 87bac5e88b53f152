"""Structured logs: one JSON object per line."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sasrec.stderr_handler import StderrHandler


class JSONLogFormatter(logging.Formatter):
    """Formats records as JSON lines: ``ts``, ``level``, ``logger``, ``msg`` and fields.

    Structured fields go in ``extra={"fields": {...}}``; exceptions add ``exc``.

    Example:
        >>> handler = logging.StreamHandler()
        >>> handler.setFormatter(JSONLogFormatter())
        >>> record = logging.LogRecord("sasrec", logging.INFO, "", 0, "hi", None, None)
        >>> JSONLogFormatter().format(record).startswith('{"ts": ')
        True
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_json_logging(level: str | int = "INFO") -> None:
    """Sends the root logger's records to stderr as JSON lines."""
    handler = StderrHandler()
    handler.setFormatter(JSONLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
