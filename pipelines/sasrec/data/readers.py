"""Reading interaction logs into a canonical frame (see ``sasrec.data.columns``).

Entry point for the orchestrator::

    df, report = load_interactions("u.data", preset="ml-100k")
    df, report = load_interactions("log.csv", user="uid", item="sku", timestamp="ts")

``load_interactions(path, preset=None, **options) -> (DataFrame, DataReport)``
takes the options of :class:`~sasrec.data.reader_options.ReaderOptions`
(a preset gives the defaults, keyword options override them). Delimited text
(any delimiter, ``.gz`` too), Parquet and JSON lines are read by Arrow's
multi-threaded readers; nothing loops in Python per event except the error
paths, which re-scan the file to name the exact line.

Rows with a missing user or item id are dropped and counted; unparseable
timestamps are dropped and counted with the first examples (file, line, value)
unless ``strict=True``, which raises :class:`DataError` on the first one.
Timestamps outside ``1970-01-01 <= t < 2100-01-01`` (after unit conversion,
see :mod:`sasrec.data.timestamps`) are bad timestamps too. Epoch numbers that
jump between units (seconds next to milliseconds) are a warning in the
report's ``read.warnings`` and on the ``sasrec.data`` logger (stderr on the
command line), the values in the minority unit are dropped as bad timestamps,
and ``strict=True`` fails naming the first line where the unit changes.

Every other problem (missing file or column, a line with the wrong number of
fields or longer than 16 MiB, malformed JSON, invalid UTF-8 or NUL bytes, a
compressed or Parquet file under a text name, a Parquet column of a nested
type, a damaged compressed stream or Parquet row group) raises
:class:`DataError` naming the file and the line, byte offset, column or row
group. Arrow and OS errors that still escape are wrapped in a
:class:`DataError` naming the file, so the command line never shows a
traceback for bad input.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.presets import get_preset
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    COMPRESSION_SUFFIXES,
    MAX_LINE_BYTES,
    Locator,
    check_text_bytes,
    data_line_locator,
    decode_error,
    head_lines,
    is_compressed,
    iter_lines,
    nul_error,
    open_stream,
)
from sasrec.data.timestamps import (
    VALID_RANGE,
    first_unit_change,
    out_of_range,
    parse_timestamps,
    unit_mismatch,
)

logger = logging.getLogger(__name__)

_SEP_BY_SUFFIX = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".inter": "\t", ".dat": "::"}
_SNIFF_CANDIDATES = ("\t", "::", ",", ";", "|", " ")
_SNIFF_LINES = 20  # lines that must agree on the field count
_LINE_SPLIT_DELIMITER = "\x1e"  # ASCII record separator: never inside real log lines
_BLOCK_SIZE = 1 << 24

_SHOWN_COLUMNS = 20  # column names listed in a "no such column" error


def load_interactions(
    path: str | os.PathLike, preset: str | None = None, **options: Any
) -> tuple[pd.DataFrame, DataReport]:
    """Reads an interaction log into a canonical frame and a report.

    Args:
        path: File to read, or a directory holding the preset's default file.
        preset: ``ml-100k``, ``ml-1m``, ``sasrec``, ``amazon`` or ``recbole``
            (see :mod:`sasrec.data.presets`); ``None`` starts from the
            :class:`ReaderOptions` defaults (``user_id``, ``item_id``,
            ``timestamp`` header columns).
        **options: :class:`ReaderOptions` fields overriding the preset, e.g.
            ``sep=";"``, ``user="uid"``, ``timestamp=None``, ``strict=True``.

    Returns:
        ``(df, report)``: the canonical frame in file order and a
        :class:`DataReport` whose ``read`` section counts what was dropped.

    Raises:
        DataError: Bad input; the message names the file and line or column.
        ValueError: Unknown preset or option.
    """
    base = get_preset(preset) if preset else ReaderOptions()
    opts = base.replace(**options) if options else base
    df, info = read_interactions(path, opts)
    report = DataReport(source={"path": info["file"], "preset": preset, "format": info["format"]})
    report.read = info
    return df, report


def read_interactions(
    path: str | os.PathLike, options: ReaderOptions | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Reads one file with explicit options; see :func:`load_interactions`.

    Returns:
        ``(df, info)`` where ``info`` is a JSON-serialisable dict: ``file``,
        ``format``, ``rows``, ``missing_ids``, ``bad_timestamps``,
        ``bad_timestamp_reasons`` (counts of ``unparseable``,
        ``out_of_range`` and ``unit_mismatch``), ``bad_timestamp_examples``
        (dicts with ``file``, ``line`` or ``row``, ``value``, and ``reason``
        unless the value is unparseable), ``timestamp_unit``,
        ``timestamp_range``, ``warnings`` (e.g. a ``timestamp_unit_change``
        with ``file``, ``line`` or ``row``, ``column``, ``from``, ``to``,
        ``counts`` and ``message``) and ``columns``.
    """
    opts = options or ReaderOptions()
    file = _resolve_path(Path(path), opts)
    fmt = _detect_format(file, opts)
    try:
        if fmt == "parquet":
            table, columns, locate, extra = _read_parquet(file, opts)
        else:
            check_text_bytes(file, fmt, opts)
            reader = _read_json if fmt == "json" else _read_delimited
            table, columns, locate, extra = reader(file, opts)
        df, info = _to_frame(table, file, opts, columns, locate)
    except DataError:
        raise
    except (pa.ArrowException, OSError, csv.Error, UnicodeError) as err:
        # A shape of bad input no check above names: still no traceback.
        raise DataError(f"cannot read the file ({type(err).__name__}: {err})", path=file) from err
    info = {"file": str(file), "format": fmt, **extra, **info}
    return df, info


# ----------------------------------------------------------------------------- paths


def _resolve_path(path: Path, opts: ReaderOptions) -> Path:
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


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _detect_format(path: Path, opts: ReaderOptions) -> str:
    if opts.format != "auto":
        return opts.format
    suffix = _base_suffix(path)
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    return "csv"


def _row_locator(rows: list[int]) -> list[tuple[str, int]]:
    return [("row", r + 1) for r in rows]


# ----------------------------------------------------------------------------- columns


def _resolve_columns(
    path: Path, opts: ReaderOptions, names: list[str], positional: bool
) -> dict[str, str]:
    """Canonical name -> name in the file; raises for a missing required column."""
    lookup = {n: n for n in names}
    if opts.strip_type_suffix:
        for name in names:
            lookup.setdefault(name.split(":", 1)[0], name)
    resolved: dict[str, str] = {}
    for canonical, ref in opts.columns().items():
        if isinstance(ref, int):
            actual = names[ref] if ref < len(names) else None
        elif positional:
            raise DataError(
                f"the file has no header, so the {canonical} column must be given by "
                f"position (0-based), received {ref!r}",
                path=path,
            )
        else:
            actual = lookup.get(ref)
        if actual is None:
            optional = canonical in (TIMESTAMP, EVENT, RATING) and opts.optional_columns
            if optional:
                continue
            shown = (
                f"{len(names)} field(s) (positions 0..{len(names) - 1})"
                if positional
                else ", ".join(repr(n[:80]) for n in names[:_SHOWN_COLUMNS])
                + (f", ... ({len(names):,} columns)" if len(names) > _SHOWN_COLUMNS else "")
            )
            raise DataError(
                f"no {canonical} column {ref!r}; the file has columns: {shown}", path=path
            )
        if not positional and names.count(actual) > 1:
            fields = [i + 1 for i, n in enumerate(names) if n == actual]
            raise DataError(
                f"the header names the {canonical} column {actual!r} more than once "
                f"(fields {', '.join(map(str, fields))}); which one holds the {canonical}?",
                path=path,
                line=1,
            )
        resolved[canonical] = actual
    return resolved


def _rename(table: pa.Table, columns: dict[str, str]) -> pa.Table:
    return pa.table({canonical: table.column(actual) for canonical, actual in columns.items()})


# ----------------------------------------------------------------------------- delimited


def _sniff_sep(path: Path, lines: list[str], expected: str | None) -> str:
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
        counts = {len(_split_fields(line, candidate)) for line in lines}
        if len(counts) == 1 and (count := counts.pop()) > 1:
            fields[candidate] = count
    if fields:
        return max(fields, key=fields.__getitem__)  # the first of equals: expected
    # No delimiter agrees on every line: take the likeliest, and let the
    # field-count check name the first bad line.
    for candidate in candidates:
        if len(_split_fields(lines[0], candidate)) > 1:
            return candidate
    raise DataError(
        "cannot guess the field delimiter from the first line; pass it with --sep SEP "
        "(sep=... in Python)",
        path=path,
        line=1,
        value=lines[0][:80],
    )


def _split_fields(line: str, sep: str) -> list[str]:
    if len(sep) > 1 or '"' not in line:
        return line.split(sep)  # what the csv module does without quotes, for any length
    if len(line) >= csv.field_size_limit():
        # The csv module refuses fields over 128 KiB; lines are already capped
        # at MAX_LINE_BYTES, so raising its (process-wide) cap only loosens a guard.
        csv.field_size_limit(MAX_LINE_BYTES + 1)
    return next(csv.reader([line], delimiter=sep))


def _scan_text_problem(path: Path, sep: str, n_fields: int, encoding: str) -> DataError | None:
    """Finds the first undecodable or wrongly-sized line (error path only)."""
    for number, offset, raw in iter_lines(path):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        if b"\x00" in line:
            return nul_error(path, number, offset, raw)
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as err:
            return decode_error(path, number, offset, raw, err, encoding)
        found = len(_split_fields(text, sep))
        if found != n_fields:
            return DataError(
                f"expected {n_fields} fields separated by {sep!r}, found {found}",
                path=path,
                line=number,
                value=text[:200],
            )
    return None


def _read_delimited(
    path: Path, opts: ReaderOptions
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    head = head_lines(path, _SNIFF_LINES, opts.encoding)
    if not head:
        raise DataError("file has no data lines", path=path)
    first = head[0]
    if "\r" in first:
        raise DataError(
            "lines end in a bare carriage return (old Mac line endings); convert them to "
            "LF or CRLF line breaks",
            path=path,
            line=1,
        )
    sep = opts.sep or _sniff_sep(path, head, _SEP_BY_SUFFIX.get(_base_suffix(path)))
    header = opts.resolved_header()
    fields = _split_fields(first, sep)
    names = [f.strip() for f in fields] if header else [f"f{i}" for i in range(len(fields))]
    columns = _resolve_columns(path, opts, names, positional=not header)
    skip = 1 if header else 0
    locate = data_line_locator(path, skip)
    extra = {"sep": sep, "header": header}

    if len(sep) > 1:
        table = _read_multichar(path, opts, sep, skip, names, columns, locate)
        return _rename(table, columns), columns, locate, extra

    id_columns = {columns[c] for c in (USER, ITEM, EVENT) if c in columns}
    string_only = {columns[c] for c in (TIMESTAMP, RATING) if c in columns}
    read_options = pcsv.ReadOptions(
        skip_rows=skip,
        column_names=names,
        encoding=opts.encoding,
        block_size=_BLOCK_SIZE,
    )
    parse_options = pcsv.ParseOptions(delimiter=sep)
    attempts = [set(), string_only]
    for as_string in attempts:
        convert_options = pcsv.ConvertOptions(
            include_columns=list(dict.fromkeys(columns.values())),
            column_types={n: pa.string() for n in id_columns | as_string},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            table = pcsv.read_csv(
                open_stream(path) if is_compressed(path) else str(path),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowInvalid as err:
            message = str(err)
            if "conversion error" in message and "UTF8" not in message and not as_string:
                continue  # a bad timestamp or rating after the type-inference block
            problem = _scan_text_problem(path, sep, len(names), opts.encoding)
            raise problem or DataError(f"cannot read the file: {message}", path=path) from None
        break
    if any(pa.types.is_binary(t) for t in table.schema.types):
        problem = _scan_text_problem(path, sep, len(names), opts.encoding)
        raise problem or DataError("undecodable bytes in the file", path=path)
    return _rename(table, columns), columns, locate, extra


def _read_multichar(
    path: Path,
    opts: ReaderOptions,
    sep: str,
    skip: int,
    names: list[str],
    columns: dict[str, str],
    locate: Locator,
) -> pa.Table:
    """Arrow reads whole lines, then one vectorised split on the delimiter."""
    try:
        lines = pcsv.read_csv(
            open_stream(path) if is_compressed(path) else str(path),
            read_options=pcsv.ReadOptions(
                skip_rows=skip,
                column_names=["line"],
                encoding=opts.encoding,
                block_size=_BLOCK_SIZE,
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=_LINE_SPLIT_DELIMITER, quote_char=False, escape_char=False
            ),
            convert_options=pcsv.ConvertOptions(column_types={"line": pa.string()}),
        ).column("line")
    except pa.ArrowInvalid as err:
        problem = _scan_text_problem(path, sep, len(names), opts.encoding)
        raise problem or DataError(f"cannot read the file: {err}", path=path) from None
    lines = pc.utf8_rtrim(lines, characters="\r")
    parts = pc.split_pattern(lines, pattern=sep)
    sizes = np.asarray(pc.list_value_length(parts).to_numpy(zero_copy_only=False))
    wrong = np.flatnonzero(sizes != len(names))
    if wrong.size:
        row = int(wrong[0])
        ((_, line),) = locate([row])
        raise DataError(
            f"expected {len(names)} fields separated by {sep!r}, found {int(sizes[row])}",
            path=path,
            line=line,
            value=str(lines[row].as_py())[:200],
        )
    position = {name: i for i, name in enumerate(names)}
    wanted = dict.fromkeys(columns.values())
    return pa.table({n: pc.list_element(parts, position[n]) for n in wanted})


# ----------------------------------------------------------------------------- parquet, json


def _read_parquet(
    path: Path, opts: ReaderOptions
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file ({err})", path=path) from None
    schema = parquet.schema_arrow
    columns = _resolve_columns(path, opts, list(schema.names), positional=False)
    for canonical, actual in columns.items():
        _check_column_type(path, canonical, actual, schema.field(actual).type)
    wanted = list(dict.fromkeys(columns.values()))
    # Text ids come back dictionary-encoded: no string column of every event
    # is built, and the codes step below does not hash each event again.
    ids = [
        columns[c]
        for c in (USER, ITEM, EVENT)
        if c in columns and _is_text(schema.field(columns[c]).type)
    ]
    try:
        if ids:
            parquet = pq.ParquetFile(path, read_dictionary=ids)
        table = parquet.read(columns=wanted)
    except (pa.ArrowException, OSError) as err:
        raise _parquet_row_group_error(path, parquet, wanted, err) from None
    return _rename(table, columns), columns, _row_locator, {}


def _check_column_type(path: Path, canonical: str, actual: str, kind: pa.DataType) -> None:
    """Ids must be scalars, times numbers/strings/dates, ratings numbers or strings."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    scalar_text = (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_null(kind)
    )
    number = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    if canonical == TIMESTAMP:
        ok = scalar_text or number or pa.types.is_timestamp(kind) or pa.types.is_date(kind)
        expected = "integers, floats, strings, timestamps or dates"
    elif canonical == RATING:
        ok = scalar_text or number or pa.types.is_boolean(kind)
        expected = "numbers or strings"
    else:
        ok = scalar_text or number or pa.types.is_boolean(kind)
        expected = "strings or integers (one id per row)"
    if not ok:
        raise DataError(
            f"the {canonical} column has type {kind}; expected {expected}",
            path=path,
            column=actual,
        )


def _parquet_row_group_error(
    path: Path, parquet: pq.ParquetFile, columns: list[str], err: Exception
) -> DataError:
    """Names the first row group (and column) that cannot be read (error path only)."""
    groups = parquet.metadata.num_row_groups
    first_row = 0
    for group in range(groups):
        size = parquet.metadata.row_group(group).num_rows
        for name in columns:
            try:
                parquet.read_row_group(group, columns=[name])
            except (pa.ArrowException, OSError) as group_err:
                detail = " ".join(str(group_err).split())  # Arrow's can span lines
                return DataError(
                    f"cannot read row group {group + 1} of {groups} (rows {first_row + 1}.."
                    f"{first_row + size}): {detail}",
                    path=path,
                    column=name,
                )
        first_row += size
    return DataError(f"not a readable Parquet file ({err})", path=path)


def _json_type(value: object) -> pa.DataType | None:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    return None


def _first_json_object(path: Path, encoding: str) -> dict[str, Any]:
    for number, offset, raw in iter_lines(path):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode(encoding))
        except UnicodeDecodeError as err:
            raise decode_error(path, number, offset, raw, err, encoding) from None
        except json.JSONDecodeError as err:
            raise DataError(f"malformed JSON ({err.msg})", path=path, line=number) from None
        if not isinstance(obj, dict):
            raise DataError("expected one JSON object per line", path=path, line=number)
        return obj
    raise DataError("file has no JSON lines", path=path)


def _read_json(
    path: Path, opts: ReaderOptions
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    first = _first_json_object(path, opts.encoding)
    columns = _resolve_columns(path, opts, list(first), positional=False)
    wanted = list(dict.fromkeys(columns.values()))
    fields = []
    for name in wanted:
        kind = _json_type(first.get(name))
        if kind is None:
            return _read_json_slow(path, opts, columns)
        fields.append(pa.field(name, kind))
    try:
        table = pjson.read_json(
            open_stream(path) if is_compressed(path) else str(path),
            read_options=pjson.ReadOptions(block_size=_BLOCK_SIZE),
            parse_options=pjson.ParseOptions(
                explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"
            ),
        )
        for column in table.columns:
            # Arrow's JSON reader does not check UTF-8 in strings; validating does.
            column.validate(full=True)
    except pa.ArrowException:
        # Types that change between lines, a malformed line or invalid UTF-8: the
        # slow path handles the first and names the line of the others.
        return _read_json_slow(path, opts, columns)
    return _rename(table, columns), columns, data_line_locator(path, 0), {}


def _read_json_slow(
    path: Path, opts: ReaderOptions, columns: dict[str, str]
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    """One ``json.loads`` per line: exact line numbers and mixed value types."""
    values: dict[str, list[Any]] = {c: [] for c in columns}
    numbers: list[int] = []
    for number, offset, raw in iter_lines(path):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode(opts.encoding))
        except UnicodeDecodeError as err:
            raise decode_error(path, number, offset, raw, err, opts.encoding) from None
        except json.JSONDecodeError as err:
            raise DataError(
                f"malformed JSON ({err.msg} at column {err.colno})", path=path, line=number
            ) from None
        if not isinstance(obj, dict):
            raise DataError("expected one JSON object per line", path=path, line=number)
        numbers.append(number)
        for canonical, actual in columns.items():
            value = obj.get(actual)
            if canonical in (USER, ITEM, EVENT) and isinstance(value, (dict, list)):
                kind = "an object" if isinstance(value, dict) else "an array"
                raise DataError(
                    f"the {canonical} is {kind}; expected a string or a number",
                    path=path,
                    line=number,
                    column=actual,
                    value=raw.decode(opts.encoding, "replace")[:200],
                )
            if canonical == RATING:
                values[canonical].append(value if isinstance(value, (int, float)) else None)
            else:
                values[canonical].append(None if value is None else str(value))
    table = pa.table(
        {
            c: pa.array(v, type=pa.float64() if c == RATING else pa.string())
            for c, v in values.items()
        }
    )
    line_of = np.asarray(numbers, dtype=np.int64)

    def locate(rows: list[int]) -> list[tuple[str, int]]:
        return [("line", int(line_of[r])) for r in rows]

    return table, columns, locate, {}


# ----------------------------------------------------------------------------- frame


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    return pc.cast(column, pa.string())


def _dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """``int32`` codes (``-1`` for null) and the string values they index.

    Encoding a chunked column gives one dictionary shared by all chunks
    (measured faster than letting the CSV reader encode per block and unifying).
    """
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(_as_string(column))
    elif not pa.types.is_string(column.type.value_type):
        column = pc.dictionary_encode(pc.cast(column, pa.string()))
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int32), pa.array([], pa.string())
    first = column.chunk(0).dictionary
    if not all(c.dictionary.equals(first) for c in column.chunks[1:]):
        column = column.unify_dictionaries()
        first = column.chunk(0).dictionary
    codes = np.concatenate(
        [
            np.asarray(pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False), np.int32)
            for c in column.chunks
        ]
    )
    return _first_appearance_codes(codes, first)


def _first_appearance_codes(codes: np.ndarray, values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Renumbers codes so that values are numbered in order of first appearance.

    Users are numbered by first appearance in the file, and a dictionary
    stored in a Parquet file need not be in that order (nor use every value).

    Example:
        >>> codes, values = _first_appearance_codes(np.array([1, -1, 0, 1]), pa.array(["a", "b"]))
        >>> codes.tolist(), values.to_pylist()
        ([0, -1, 1, 0], ['b', 'a'])
    """
    if codes.size == 0:
        return codes, values.slice(0, 0)
    # In first-appearance order each new code is one above every code before it.
    previous = np.maximum.accumulate(codes)
    high = int(previous[-1])
    if (
        high == len(values) - 1
        and int(codes[0]) <= 0
        and bool((codes[1:] <= previous[:-1] + 1).all())
    ):
        return codes, values
    present = codes >= 0
    seen, first_row = np.unique(codes[present], return_index=True)
    order = seen[np.argsort(first_row, kind="stable")]
    remap = np.full(len(values) + 1, -1, dtype=np.int32)
    remap[order] = np.arange(order.size, dtype=np.int32)
    return remap[codes], values.take(pa.array(order))


def _category_series(codes: np.ndarray, values: pa.Array) -> pd.Series:
    categories = pd.Index(values.to_pandas(), dtype="str")
    categorical = pd.Categorical.from_codes(codes, categories=categories, validate=False)
    return pd.Series(categorical, copy=False)


def _empty_values(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False), bool)


def _encode_ids(
    table: pa.Table, name: str, path: Path, columns: dict[str, str], locate: Locator
) -> tuple[np.ndarray, pa.Array]:
    """:func:`_dictionary_codes`, with undecodable bytes and NUL bytes named by line or row."""
    column = table.column(name)
    try:
        codes, values = _dictionary_codes(column)
    except pa.ArrowInvalid as err:  # binary Parquet ids that are not UTF-8
        row = next(
            (i for i, v in enumerate(column.to_pylist()) if v is not None and not _is_utf8(v)), 0
        )
        raise _located(
            f"the {name} value is not valid UTF-8 ({err})", path, name, columns, locate, row
        ) from None
    lengths = np.asarray(pc.binary_length(values).to_numpy(zero_copy_only=False))
    if lengths.size and np.nanmax(lengths) > MAX_LINE_BYTES:
        # Arrow reads some lines longer than its block: hold them to the same limit.
        row = int(
            np.flatnonzero((lengths[np.maximum(codes, 0)] > MAX_LINE_BYTES) & (codes >= 0))[0]
        )
        ((label, _),) = locate([row])
        if label == "line":
            for _ in iter_lines(path):  # raises on the first line over the limit
                pass
        raise _located(
            f"the {name} value is longer than {MAX_LINE_BYTES >> 20} MiB",
            path,
            name,
            columns,
            locate,
            row,
        )
    nul = np.asarray(pc.match_substring(values, "\x00").to_numpy(zero_copy_only=False), dtype=bool)
    if nul.any():
        row = int(np.flatnonzero(nul[np.maximum(codes, 0)] & (codes >= 0))[0])
        raise _located(
            f"NUL byte (0x00) in the {name} value: text logs have none; the file is binary, "
            "or UTF-16/UTF-32 (convert it to UTF-8)",
            path,
            name,
            columns,
            locate,
            row,
        )
    return codes, values


def _is_utf8(value: object) -> bool:
    if not isinstance(value, bytes):
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _located(
    message: str, path: Path, name: str, columns: dict[str, str], locate: Locator, row: int
) -> DataError:
    ((label, number),) = locate([row])
    if label == "line":
        return DataError(message, path=path, line=number, column=columns[name])
    return DataError(f"{message} (row {number})", path=path, column=columns[name])


_REASON_TEXT = {
    1: "unparseable timestamp",
    2: f"timestamp out of range ({VALID_RANGE})",
    3: "timestamp in another unit than the rest of the column",
}


def _check_timestamps(
    column: pa.ChunkedArray,
    path: Path,
    opts: ReaderOptions,
    name: str,
    missing: np.ndarray,
    locate: Locator,
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray, dict[str, Any] | None]:
    """Parses the time column and classifies its bad values.

    Returns:
        ``(seconds, bad, unit, reason, warning)``: ``reason`` is 0 for a good
        value (or a row already dropped for its id), 1 unparseable, 2 out of
        range, 3 in the minority unit of a column that mixes units;
        ``warning`` describes a unit change (``None`` without one).

    Raises:
        DataError: ``strict`` and the epoch numbers change unit.
    """
    seconds, bad, unit = parse_timestamps(column, opts.timestamp_unit)
    reason = np.zeros(len(seconds), dtype=np.int8)
    reason[bad & ~missing] = 1
    reason[(reason == 0) & ~missing & out_of_range(seconds)] = 2
    warning = None
    if unit in ("s", "ms", "us", "ns"):
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
        raw = seconds / scale
        change = first_unit_change(raw, ~bad & ~missing)
        if change is not None:
            row, before, after, counts = change
            ((label, number),) = locate([row])
            where = f"line {number}" if label == "line" else f"row {number}"
            shown = "values that look like " + ", ".join(f"{u}: {n:,}" for u, n in counts.items())
            message = (
                f"{path}: column {name!r} mixes timestamp units: {before} until {where}, "
                f"where {after} start (value {column[row].as_py()!r}); {shown}"
            )
            if opts.strict:
                raise DataError(
                    f"timestamps change from {before} to {after} ({shown}); one column must "
                    "use one unit",
                    path=path,
                    line=number if label == "line" else None,
                    column=name,
                    value=column[row].as_py(),
                )
            other = unit_mismatch(raw, unit) & ~bad & ~missing
            reason[other] = 3
            message += f"; the {int(other.sum()):,} not in {unit} are dropped as bad timestamps"
            message += " (pass --strict to make this an error)"
            warning = {
                "kind": "timestamp_unit_change",
                "file": str(path),
                label: number,
                "column": name,
                "from": before,
                "to": after,
                "counts": counts,
                "message": message,
            }
    return seconds, bad, unit, reason, warning


def _to_frame(
    table: pa.Table,
    path: Path,
    opts: ReaderOptions,
    columns: dict[str, str],
    locate: Locator,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    n = table.num_rows

    def encode(name: str) -> tuple[np.ndarray, pa.Array]:
        return _encode_ids(table, name, path, columns, locate)

    # Arrow releases the GIL: unify the two id columns on two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        encoded = list(pool.map(encode, [USER, ITEM]))
    ids = dict(zip((USER, ITEM), encoded))
    missing = np.zeros(n, dtype=bool)
    for codes, values in ids.values():
        missing |= codes < 0
        empty = _empty_values(values)
        if empty.any():
            missing |= empty[np.maximum(codes, 0)]

    examples: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    reasons = {"unparseable": 0, "out_of_range": 0, "unit_mismatch": 0}
    if TIMESTAMP in columns:
        seconds, bad, unit, reason, warning = _check_timestamps(
            table.column(TIMESTAMP), path, opts, columns[TIMESTAMP], missing, locate
        )
        if warning:
            warnings.append(warning)
            logger.warning("%s", warning["message"])
        bad = reason > 0
        reasons = {name: int((reason == k).sum()) for k, name in enumerate(reasons, start=1)}
        bad_rows = np.flatnonzero(bad)
        if bad_rows.size and (opts.strict or opts.max_examples):
            shown = bad_rows[: 1 if opts.strict else opts.max_examples].tolist()
            raw = table.column(TIMESTAMP)
            for row, (label, number) in zip(shown, locate(shown)):
                value = raw[row].as_py()
                why = _REASON_TEXT[int(reason[row])]
                if opts.strict:
                    line = number if label == "line" else None
                    where = "" if line is not None else f" (row {number})"
                    raise DataError(
                        f"{why}{where}",
                        path=path,
                        line=line,
                        column=columns[TIMESTAMP],
                        value=value,
                    )
                example = {"file": str(path), label: number, "value": value}
                if reason[row] != 1:
                    example["reason"] = why
                examples.append(example)
    else:
        seconds = np.arange(n, dtype=np.float64)
        bad = np.zeros(n, dtype=bool)
        unit = "row order"

    keep = ~(missing | bad)
    everything = bool(keep.all())

    def kept(values: np.ndarray) -> np.ndarray:
        return values if everything else values[keep]

    data: dict[str, Any] = {
        name: _category_series(kept(codes), values) for name, (codes, values) in ids.items()
    }
    data[TIMESTAMP] = pd.Series(kept(seconds), dtype=np.float64, copy=False)
    if EVENT in columns:
        codes, values = _dictionary_codes(table.column(EVENT))
        data[EVENT] = _category_series(kept(codes), values)
    if RATING in columns:
        rating = table.column(RATING)
        if pa.types.is_integer(rating.type) or pa.types.is_floating(rating.type):
            values = pc.cast(rating, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            values = pd.to_numeric(
                pd.Series(_as_string(rating).to_pandas()), errors="coerce"
            ).to_numpy(dtype=np.float64, na_value=np.nan)
        data[RATING] = pd.Series(kept(np.asarray(values, dtype=np.float64)), copy=False)
    df = pd.DataFrame(data, copy=False)
    info = {
        "rows": int(n),
        "missing_ids": int(missing.sum()),
        "bad_timestamps": int(bad.sum()),
        "bad_timestamp_reasons": reasons,
        "bad_timestamp_examples": examples,
        "timestamp_unit": unit,
        "timestamp_range": VALID_RANGE,
        "warnings": warnings,
        "columns": dict(columns),
        "events": int(len(df)),
    }
    return df, info
