"""Which format a log file is, and how its text lines split into fields.

``detect_format`` reads the one suffix rule (``.csv.gz`` is CSV, ``.jsonl``
JSON lines, ``.parquet`` Parquet); ``sniff_sep`` guesses the delimiter of
text logs from their first lines. The pandas readers and the Spark engine
both use these, so a file is read as the same format by both.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sasrec.data.errors import DataError
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    COMPRESSION_SUFFIXES,
    MAX_LINE_BYTES,
)

SEP_BY_SUFFIX = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".inter": "\t", ".dat": "::"}
_SNIFF_CANDIDATES = ("\t", "::", ",", ";", "|", " ")
SNIFF_LINES = 20  # lines that must agree on the field count


BLOCK_SIZE = 1 << 24


def resolve_path(path: Path, opts: ReaderOptions) -> Path:
    if path.is_dir():
        if not opts.default_file:
            raise DataError("is a directory; give the file to read", path=path)
        path = path / opts.default_file
    if not path.exists():
        raise DataError("no such file", path=path)
    if not path.is_file():
        raise DataError("not a regular file", path=path)
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=path)
    return path


def base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def detect_format(path: Path, opts: ReaderOptions) -> str:
    if opts.format != "auto":
        return opts.format
    suffix = base_suffix(path)
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    return "csv"


def sniff_sep(path: Path, lines: list[str], expected: str | None) -> str:
    """The delimiter that splits the sampled lines into the most fields, the same on every line.

    A ``.csv`` written with semicolons (spreadsheets in comma-decimal
    locales), tabs or pipes is recognised instead of being read as one
    column. ``expected`` (the extension's delimiter) wins ties, so ordinary
    files read as before; a delimiter that also appears inside values (a
    space in ``2024-05-01 10:00``, a comma in ``3,5``) splits fewer fields or
    varies from line to line, and loses.
    """
    candidates = [expected] if expected else []
    candidates += [c for c in _SNIFF_CANDIDATES if c != expected]
    fields: dict[str, int] = {}
    for candidate in candidates:
        counts = {len(split_fields(line, candidate)) for line in lines}
        if len(counts) == 1 and (count := counts.pop()) > 1:
            fields[candidate] = count
    if fields:
        return max(fields, key=fields.__getitem__)  # the first of equals: expected
    # No delimiter agrees on every line: take the likeliest, and let the
    # field-count check name the first bad line.
    for candidate in candidates:
        if len(split_fields(lines[0], candidate)) > 1:
            return candidate
    raise DataError(
        "cannot guess the field delimiter from the first line; pass it with --sep SEP "
        "(sep=... in Python)",
        path=path,
        line=1,
        value=lines[0][:80],
    )


def split_fields(line: str, sep: str) -> list[str]:
    if len(sep) > 1 or '"' not in line:
        return line.split(sep)  # what the csv module does without quotes, for any length
    if len(line) >= csv.field_size_limit():
        # The csv module refuses fields over 128 KiB; lines are already capped
        # at MAX_LINE_BYTES, so raising its (process-wide) cap only loosens a guard.
        csv.field_size_limit(MAX_LINE_BYTES + 1)
    return next(csv.reader([line], delimiter=sep))
