"""User, item and event id columns -> integer codes and their string values.

Codes follow first appearance in the file, whatever order a stored
dictionary has, so users are numbered the same way for every format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sasrec.data.errors import DataError
from sasrec.data.text_file import (
    MAX_LINE_BYTES,
    Locator,
    iter_lines,
)


def as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    return pc.cast(column, pa.string())


def dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """``int32`` codes (``-1`` for null) and the string values they index.

    Encoding a chunked column gives one dictionary shared by all chunks
    (measured faster than letting the CSV reader encode per block and unifying).
    """
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(as_string(column))
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


def category_series(codes: np.ndarray, values: pa.Array) -> pd.Series:
    categories = pd.Index(values.to_pandas(), dtype="str")
    return pd.Series(categorical_from_codes(codes, categories), copy=False)


def categorical_from_codes(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    """``pd.Categorical`` of ``codes`` over ``categories`` known to be distinct.

    pandas checks that categories are unique by hashing every one of them
    (0.6 s for the 10M-event log's 1.4M user and item ids, each time a column
    is built); dictionary values and subsets of them are unique already.

    Example:
        >>> categorical_from_codes(np.array([1, -1, 0]), pd.Index(["a", "b"])).tolist()
        ['b', nan, 'a']
    """
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    if fastpath is None:  # pragma: no cover - a pandas without the private constructor
        return pd.Categorical.from_codes(codes, categories=categories, validate=False)
    return pd.Categorical.from_codes(codes, dtype=fastpath(categories, False), validate=False)


def empty_values(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False), bool)


def encode_ids(
    table: pa.Table, name: str, path: Path, columns: dict[str, str], locate: Locator
) -> tuple[np.ndarray, pa.Array]:
    """:func:`dictionary_codes`, with undecodable bytes and NUL bytes named by line or row."""
    column = table.column(name)
    try:
        codes, values = dictionary_codes(column)
    except pa.ArrowInvalid as err:  # binary Parquet ids that are not UTF-8
        row = next(
            (i for i, v in enumerate(column.to_pylist()) if v is not None and not _is_utf8(v)), 0
        )
        raise located(
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
        raise located(
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
        raise located(
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


def located(
    message: str, path: Path, name: str, columns: dict[str, str], locate: Locator, row: int
) -> DataError:
    ((label, number),) = locate([row])
    if label == "line":
        return DataError(message, path=path, line=number, column=columns[name])
    return DataError(f"{message} (row {number})", path=path, column=columns[name])
