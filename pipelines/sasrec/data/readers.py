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

import csv
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.data_report import DataReport
from sasrec.data.delimited_reader import read_delimited
from sasrec.data.errors import DataError
from sasrec.data.file_format import (
    detect_format,
    resolve_path,
)
from sasrec.data.id_columns import (
    as_string,
    category_series,
    dictionary_codes,
    empty_values,
    encode_ids,
)
from sasrec.data.json_reader import read_json
from sasrec.data.parquet_reader import read_parquet
from sasrec.data.presets import get_preset
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    Locator,
    check_text_bytes,
)
from sasrec.data.timestamp_checks import REASON_TEXT, check_timestamps
from sasrec.data.timestamps import (
    VALID_RANGE,
)

logger = logging.getLogger(__name__)


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
    file = resolve_path(Path(path), opts)
    fmt = detect_format(file, opts)
    try:
        if fmt == "parquet":
            table, columns, locate, extra = read_parquet(file, opts)
        else:
            check_text_bytes(file, fmt, opts)
            reader = read_json if fmt == "json" else read_delimited
            table, columns, locate, extra = reader(file, opts)
        df, info = _to_frame(table, file, opts, columns, locate)
    except DataError:
        raise
    except (pa.ArrowException, OSError, csv.Error, UnicodeError) as err:
        # A shape of bad input no check above names: still no traceback.
        raise DataError(f"cannot read the file ({type(err).__name__}: {err})", path=file) from err
    info = {"file": str(file), "format": fmt, **extra, **info}
    return df, info


def _to_frame(
    table: pa.Table,
    path: Path,
    opts: ReaderOptions,
    columns: dict[str, str],
    locate: Locator,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    n = table.num_rows

    def encode(name: str) -> tuple[np.ndarray, pa.Array]:
        return encode_ids(table, name, path, columns, locate)

    # Arrow releases the GIL: unify the two id columns on two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        encoded = list(pool.map(encode, [USER, ITEM]))
    ids = dict(zip((USER, ITEM), encoded))
    missing = np.zeros(n, dtype=bool)
    for codes, values in ids.values():
        missing |= codes < 0
        empty = empty_values(values)
        if empty.any():
            missing |= empty[np.maximum(codes, 0)]

    examples: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    reasons = {"unparseable": 0, "out_of_range": 0, "unit_mismatch": 0}
    if TIMESTAMP in columns:
        seconds, bad, unit, reason, warning = check_timestamps(
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
                why = REASON_TEXT[int(reason[row])]
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
        name: category_series(kept(codes), values) for name, (codes, values) in ids.items()
    }
    data[TIMESTAMP] = pd.Series(kept(seconds), dtype=np.float64, copy=False)
    if EVENT in columns:
        codes, values = dictionary_codes(table.column(EVENT))
        data[EVENT] = category_series(kept(codes), values)
    if RATING in columns:
        rating = table.column(RATING)
        if pa.types.is_integer(rating.type) or pa.types.is_floating(rating.type):
            values = pc.cast(rating, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            values = pd.to_numeric(
                pd.Series(as_string(rating).to_pandas()), errors="coerce"
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
