"""The one exception type for bad interaction data."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: says what is wrong and where (file, line, column, value).

    Subclasses ``ValueError`` so the ``sasrec`` command line prints it without a
    traceback. The location parts are also kept as attributes for callers.

    Args:
        message: What is wrong, in words.
        path: The file concerned, if any.
        line: 1-based physical line number (or row number for Parquet), if known.
        column: The column (field) concerned, if any.
        value: The offending value, if any (shown with ``repr``).

    Example:
        >>> err = DataError("unparseable timestamp", path="log.csv", line=7, value="soon")
        >>> str(err)
        "log.csv, line 7: unparseable timestamp (value 'soon')"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.value = value
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        text = f"{', '.join(where)}: {message}" if where else message
        if value is not None:
            text += f" (value {value!r})"
        super().__init__(text)
