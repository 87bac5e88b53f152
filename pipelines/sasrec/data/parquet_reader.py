"""Parquet logs: column types checked up front, damaged row groups named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sasrec.data.column_mapping import rename_columns, resolve_columns, row_locator
from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.errors import DataError
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    Locator,
)


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def read_parquet(
    path: Path, opts: ReaderOptions
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file ({err})", path=path) from None
    schema = parquet.schema_arrow
    columns = resolve_columns(path, opts, list(schema.names), positional=False)
    for canonical, actual in columns.items():
        _check_column_type(path, canonical, actual, schema.field(actual).type)
    wanted = list(dict.fromkeys(columns.values()))
    # Text ids come back dictionary-encoded: no string column of every event
    # is built, and the codes step below does not hash each event again.
    ids = [
        columns[c]
        for c in (USER, ITEM, EVENT)
        if c in columns and is_text(schema.field(columns[c]).type)
    ]
    try:
        if ids:
            parquet = pq.ParquetFile(path, read_dictionary=ids)
        table = parquet.read(columns=wanted)
    except (pa.ArrowException, OSError) as err:
        raise _parquet_row_group_error(path, parquet, wanted, err) from None
    return rename_columns(table, columns), columns, row_locator, {}


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
