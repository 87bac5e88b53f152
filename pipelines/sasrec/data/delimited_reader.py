"""Delimited text logs (any delimiter, compressed too) read by Arrow's CSV reader.

A delimiter of several characters (``::``) is read as whole lines split in
one vectorised pass. Bad lines are found by re-scanning the file only on the
error path, so the message names the exact line.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from sasrec.data.column_mapping import rename_columns, resolve_columns
from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.errors import DataError
from sasrec.data.file_format import (
    BLOCK_SIZE,
    SEP_BY_SUFFIX,
    SNIFF_LINES,
    base_suffix,
    sniff_sep,
    split_fields,
)
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    Locator,
    data_line_locator,
    decode_error,
    head_lines,
    is_compressed,
    iter_lines,
    nul_error,
    open_stream,
)

_LINE_SPLIT_DELIMITER = "\x1e"  # ASCII record separator: never inside real log lines


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
        found = len(split_fields(text, sep))
        if found != n_fields:
            return DataError(
                f"expected {n_fields} fields separated by {sep!r}, found {found}",
                path=path,
                line=number,
                value=text[:200],
            )
    return None


def read_delimited(
    path: Path, opts: ReaderOptions
) -> tuple[pa.Table, dict[str, str], Locator, dict[str, Any]]:
    head = head_lines(path, SNIFF_LINES, opts.encoding)
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
    sep = opts.sep or sniff_sep(path, head, SEP_BY_SUFFIX.get(base_suffix(path)))
    header = opts.resolved_header()
    fields = split_fields(first, sep)
    names = [f.strip() for f in fields] if header else [f"f{i}" for i in range(len(fields))]
    columns = resolve_columns(path, opts, names, positional=not header)
    skip = 1 if header else 0
    locate = data_line_locator(path, skip)
    extra = {"sep": sep, "header": header}

    if len(sep) > 1:
        table = _read_multichar(path, opts, sep, skip, names, columns, locate)
        return rename_columns(table, columns), columns, locate, extra

    id_columns = {columns[c] for c in (USER, ITEM, EVENT) if c in columns}
    string_only = {columns[c] for c in (TIMESTAMP, RATING) if c in columns}
    read_options = pcsv.ReadOptions(
        skip_rows=skip,
        column_names=names,
        encoding=opts.encoding,
        block_size=BLOCK_SIZE,
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
    return rename_columns(table, columns), columns, locate, extra


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
                block_size=BLOCK_SIZE,
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
