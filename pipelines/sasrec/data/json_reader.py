"""JSON-lines logs: Arrow's reader, or one ``json.loads`` per line for mixed types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from sasrec.data.column_mapping import rename_columns, resolve_columns
from sasrec.data.columns import EVENT, ITEM, RATING, USER
from sasrec.data.errors import DataError
from sasrec.data.file_format import (
    BLOCK_SIZE,
)
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    Locator,
    data_line_locator,
    decode_error,
    is_compressed,
    iter_lines,
    open_stream,
)


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


def read_json(
    path: Path, opts: ReaderOptions
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    first = _first_json_object(path, opts.encoding)
    columns = resolve_columns(path, opts, list(first), positional=False)
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
            read_options=pjson.ReadOptions(block_size=BLOCK_SIZE),
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
    return rename_columns(table, columns), columns, data_line_locator(path, 0), {}


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
