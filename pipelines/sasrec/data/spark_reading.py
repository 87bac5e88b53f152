"""Spark engine, reading: what Spark reads, as canonical columns in an explicit order.

``read_events(spark, path, preset, reader)`` returns a DataFrame with the
canonical columns (``user_id``, ``item_id``, ``timestamp`` float seconds,
optional ``event`` and ``rating``) plus the order columns:

- ``_pos``: the global row number, files in path order then each file's
  physical lines (or Parquet rows) in order. The pandas engine reads one
  file in that same order, so stable sorts and "first appearance" break
  ties identically in both engines;
- ``_file``, ``_line``: where the row is, for error messages (1-based
  physical line for text, row for Parquet, as the pandas readers say).

A distributed reader has no global order, so it is made explicit: every
file split is numbered by ``(file, block start)``, the per-split row counts
(one small row per split, not the log) go to the driver, which turns them
into offsets; a row's number is its split's offset plus its index in the
split (``monotonically_increasing_id`` is consecutive within a partition).

The read report (``DataReport.read``) has the pandas readers' fields. What
the pandas readers check and this engine does not (compressed or binary
text, epoch numbers that change unit) is listed in
docs/spark.md.

Example:
    >>> events, info, first_seen, parsed = read_events(spark, "logs/*.parquet", None, {})
    ... # doctest: +SKIP
    >>> info["rows"], events.columns[:3]  # doctest: +SKIP
    (10000000, ['user_id', 'item_id', 'timestamp'])
"""

from __future__ import annotations

import json
from typing import Any

from sasrec.data.column_mapping import resolve_columns
from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.errors import DataError
from sasrec.data.file_format import (
    SEP_BY_SUFFIX,
    SNIFF_LINES,
    base_suffix,
    detect_format,
    sniff_sep,
)
from sasrec.data.presets import get_preset
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.timestamp_checks import REASON_TEXT
from sasrec.data.timestamps import _AUTO_THRESHOLDS, MAX_SECONDS, MIN_SECONDS, VALID_RANGE

POS, FILE, LINE, ROW = "_pos", "_file", "_line", "_row"
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def resolve_options(preset: str | None, reader: dict[str, Any]) -> ReaderOptions:
    """The preset's options with the flags' overrides (as ``load_interactions`` does)."""
    base = get_preset(preset) if preset else ReaderOptions()
    return base.replace(**reader) if reader else base


def _format(path: str, opts: ReaderOptions) -> str:
    """``--format``, else from the suffix of the file, of the glob, or of a folder's files."""
    from pathlib import Path, PurePath

    name = PurePath(path)
    local = Path(_local(path))
    if "://" not in path and local.is_dir():
        files = sorted(p for p in local.iterdir() if p.is_file() and p.name[0] not in "._")
        name = files[0] if files else name
    return detect_format(name, opts)


def _with_positions(spark: Any, frame: Any, header: bool) -> tuple[Any, list[tuple]]:
    """Adds ``_pos``, ``_file``, ``_line`` and ``_row`` (data row number) to a file scan."""
    from pyspark.sql import functions as F

    frame = frame.select(
        "*",
        F.col("_metadata.file_path").alias(FILE),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_mono"),
    )
    splits = (
        frame.groupBy(FILE, "_block")
        .agg(F.min("_mono").alias("_first"), F.count(F.lit(1)).alias("_n"))
        .collect()
    )
    splits = sorted((r[FILE], r["_block"], r["_first"], r["_n"]) for r in splits)
    rows, pos, file_start, previous = [], 0, 0, None
    data_before = 0
    for file, block, first, n in splits:
        if file != previous:
            file_start, previous = pos, file
        header_here = 1 if header and block == 0 else 0
        # (file, block, first mono id, global position, line offset in file, data rows before)
        rows.append((file, int(block), int(first), pos, pos - file_start, data_before, header_here))
        pos += n
        data_before += n - header_here
    offsets = spark.createDataFrame(
        rows,
        f"{FILE} string, _block long, _first long, _base long, _in_file long, "
        "_data long, _header int",
    )
    index = F.col("_mono") - F.col("_first")
    frame = (
        frame.join(F.broadcast(offsets), [FILE, "_block"])
        .withColumn(POS, F.col("_base") + index)
        .withColumn(LINE, F.col("_in_file") + index + 1)
        .withColumn("_is_header", (F.col("_header") == 1) & (index == 0))
        .withColumn(ROW, F.col("_data") + index - F.col("_header"))
    )
    return frame, rows


def _text_lines(spark: Any, path: str, opts: ReaderOptions) -> Any:
    if opts.encoding.lower().replace("-", "").replace("_", "") not in ("utf8", "ascii"):
        raise DataError(
            f"the Spark engine reads UTF-8 text; --encoding {opts.encoding} needs the pandas "
            "engine (or convert the file: iconv -f ... -t UTF-8)",
            path=path,
        )
    try:
        return spark.read.option("lineSep", "\n").text(path)
    except Exception as err:  # AnalysisException: the path does not exist
        raise DataError(f"cannot read: {_first_line(err)}", path=path) from None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _head(lines: Any, n: int) -> list[str]:
    return [r.value.rstrip("\r") for r in lines.limit(n).collect()]


def _delimited(spark: Any, path: str, opts: ReaderOptions) -> tuple[Any, dict, dict]:
    from pyspark.sql import functions as F

    lines = _text_lines(spark, path, opts)
    head = [line for line in _head(lines, SNIFF_LINES + 1) if line]
    if not head:
        raise DataError("file has no data lines", path=path)
    from pathlib import PurePath

    sep = opts.sep or sniff_sep(
        PurePath(path), head[:SNIFF_LINES], SEP_BY_SUFFIX.get(base_suffix(PurePath(path)))
    )
    header = opts.resolved_header()
    fields = head[0].split(sep)
    names = [f.strip() for f in fields] if header else [f"f{i}" for i in range(len(fields))]
    columns = resolve_columns(PurePath(path), opts, names, positional=not header)
    frame, _ = _with_positions(spark, lines, header)
    value = F.regexp_replace("value", "\r$", "")
    frame = frame.where(~F.col("_is_header") & (value != ""))
    parts = F.split(value, _regex_literal(sep), -1)
    frame = frame.withColumn("_nf", F.size(parts))
    bad = frame.where(F.col("_nf") != len(names)).orderBy(POS).limit(1).collect()
    if bad:
        row = bad[0]
        raise DataError(
            f"expected {len(names)} fields separated by {sep!r}, found {row['_nf']}",
            path=_local(row[FILE]),
            line=int(row[LINE]),
        )
    selected = {c: parts.getItem(names.index(actual)) for c, actual in columns.items()}
    return frame, selected, {"sep": sep, "header": header, "columns": columns}


def _regex_literal(sep: str) -> str:
    import re

    return re.escape(sep)


def _json(spark: Any, path: str, opts: ReaderOptions) -> tuple[Any, dict, dict]:
    from pyspark.sql import functions as F

    lines = _text_lines(spark, path, opts)
    head = [line for line in _head(lines, 50) if line.strip()]
    if not head:
        raise DataError("file has no data lines", path=path)
    try:
        first = json.loads(head[0])
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON ({err})", path=path, line=1) from None
    from pathlib import PurePath

    columns = resolve_columns(PurePath(path), opts, list(first), positional=False)
    frame, _ = _with_positions(spark, lines, header=False)
    frame = frame.where(F.trim("value") != "")
    selected = {c: F.get_json_object("value", "$." + actual) for c, actual in columns.items()}
    return frame, selected, {"columns": columns}


def _parquet(spark: Any, path: str, opts: ReaderOptions) -> tuple[Any, dict, dict]:
    from pyspark.sql import functions as F

    try:
        frame = spark.read.parquet(path)
    except Exception as err:
        raise DataError(f"not readable as Parquet: {_first_line(err)}", path=path) from None
    from pathlib import PurePath

    columns = resolve_columns(PurePath(path), opts, frame.columns, positional=False)
    frame, _ = _with_positions(spark, frame, header=False)
    selected = {c: F.col(f"`{actual}`") for c, actual in columns.items()}
    return frame, selected, {"columns": columns}


def _local(file: str) -> str:
    return file[len("file:") :] if file.startswith("file:") else file


def _resolve(path: str, opts: ReaderOptions) -> str:
    """A local folder with a preset's default file reads that file, as the pandas readers do."""
    from pathlib import Path

    local = Path(_local(path))
    if opts.default_file and "://" not in path and local.is_dir():
        return str(local / opts.default_file)
    return path


def read_events(
    spark: Any, path: str, preset: str | None, reader: dict[str, Any]
) -> tuple[Any, dict[str, Any], Any, Any]:
    """Reads a file, folder or glob: ``(events, read info, first_seen, parsed)``.

    ``first_seen`` has each user's first ``_pos`` in the log as read (rows
    dropped later count too: the pandas readers number users by their first
    row with an id), the order users are numbered in. ``parsed`` is the
    persisted parse of the log that ``events`` and ``first_seen`` read: the
    caller unpersists it once both are materialized.

    Raises:
        DataError: Bad input, named by file and line (or row); with
            ``strict``, the first bad timestamp in the explicit order.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    opts = resolve_options(preset, reader)
    path = _resolve(path, opts)
    fmt = _format(path, opts)
    build = {"csv": _delimited, "json": _json, "parquet": _parquet}[fmt]
    frame, selected, extra = build(spark, path, opts)
    columns = extra.pop("columns")

    def ident(column: Any) -> Any:
        text = column.cast("string")
        return F.when(text != "", text)

    out = [ident(selected[USER]).alias(USER), ident(selected[ITEM]).alias(ITEM)]
    missing = F.col(USER).isNull() | F.col(ITEM).isNull()
    if EVENT in selected:
        out.append(selected[EVENT].cast("string").alias(EVENT))
    if RATING in selected:
        out.append(F.trim(selected[RATING].cast("string")).try_cast("double").alias(RATING))
    time_raw = selected.get(TIMESTAMP)
    typed_time = False
    if time_raw is not None:
        # Text without an offset is UTC, as the pandas readers read it.
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        kind = frame.select(time_raw.alias("_t")).schema["_t"].dataType.typeName()
        typed_time = kind in ("timestamp", "timestamp_ntz", "date")
        text = F.trim(time_raw.cast("string"))
        instant = time_raw.cast("timestamp") if typed_time else F.try_to_timestamp(text)
        out.append(time_raw.cast("string").alias("_time_text"))
        out.append(text.try_cast("double").alias("_time_number"))
        out.append((F.unix_micros(instant) / 1e6).alias("_time_iso"))
    frame = frame.select(*out, POS, FILE, LINE, ROW)
    # Parsed once: the counts, the unit, the examples and the pipeline all read
    # this, not the files again. On the executors' disks only: held in memory
    # it kept about half of an executor's unified memory through the whole
    # run, and the per-user steps then ran out of execution memory (100M).
    frame = parsed = frame.persist(StorageLevel.DISK_ONLY)
    rows = frame.count()

    if time_raw is None:
        unit = "row order"
        frame = frame.withColumn(TIMESTAMP, F.col(ROW).cast("double"))
        reason = F.lit(0)
    else:
        unit = "iso" if typed_time else opts.timestamp_unit
        number = F.col("_time_number")
        finite = number.isNotNull() & ~F.isnan(number) & (F.abs(number) != float("inf"))
        if unit == "auto":
            unit = _auto_unit(frame, finite, rows)
        if unit == "iso":
            seconds = F.col("_time_iso")
            finite = seconds.isNotNull()
        else:
            seconds = number * _SCALE[unit]
        frame = frame.withColumn(TIMESTAMP, seconds)
        reason = (
            F.when(missing, 0)
            .when(~finite, 1)
            .when((seconds < MIN_SECONDS) | (seconds >= MAX_SECONDS), 2)
            .otherwise(0)
        )
    frame = frame.withColumn("_reason", reason)
    tally = frame.agg(
        F.sum(F.when(missing, 1).otherwise(0)).alias("missing"),
        F.sum(F.when(F.col("_reason") == 1, 1).otherwise(0)).alias("r1"),
        F.sum(F.when(F.col("_reason") == 2, 1).otherwise(0)).alias("r2"),
    ).first()
    counts = {1: int(tally["r1"] or 0), 2: int(tally["r2"] or 0)}
    n_missing = int(tally["missing"] or 0)
    bad_total = counts.get(1, 0) + counts.get(2, 0)
    examples: list[dict[str, Any]] = []
    if bad_total and (opts.strict or opts.max_examples):
        limit = 1 if opts.strict else opts.max_examples
        shown = frame.where(F.col("_reason") > 0).orderBy(POS).limit(limit).collect()
        for row in shown:
            label = "row" if fmt == "parquet" else "line"
            value = _raw_value(row["_time_text"], fmt, numeric=counts[1] == 0 and unit != "iso")
            why = REASON_TEXT[int(row["_reason"])]
            if opts.strict:
                line = int(row[LINE]) if label == "line" else None
                where = "" if line is not None else f" (row {int(row[LINE])})"
                raise DataError(
                    f"{why}{where}",
                    path=_local(row[FILE]),
                    line=line,
                    column=columns[TIMESTAMP],
                    value=value,
                )
            example = {"file": _local(row[FILE]), label: int(row[LINE]), "value": value}
            if row["_reason"] != 1:
                example["reason"] = why
            examples.append(example)
    first_seen = (
        frame.where(F.col(USER).isNotNull()).groupBy(USER).agg(F.min(POS).alias("_first_seen"))
    )
    kept = frame.where(~missing & (F.col("_reason") == 0)).drop(
        "_reason", "_time_text", "_time_number", "_time_iso", ROW, LINE
    )
    info = {
        "file": path,
        "format": fmt,
        **extra,
        "rows": int(rows),
        "missing_ids": int(n_missing),
        "bad_timestamps": int(bad_total),
        "bad_timestamp_reasons": {
            "unparseable": int(counts.get(1, 0)),
            "out_of_range": int(counts.get(2, 0)),
            "unit_mismatch": 0,
        },
        "bad_timestamp_examples": examples,
        "timestamp_unit": unit,
        "timestamp_range": VALID_RANGE,
        "warnings": [],
        "columns": dict(columns),
        "events": int(rows - n_missing - bad_total),
    }
    return kept, info, first_seen, parsed


def _raw_value(text: str | None, fmt: str, numeric: bool) -> Any:
    """The bad value as the pandas readers show it: Arrow types a text column of numbers."""
    if text is None:
        return None
    if fmt == "parquet" or fmt == "csv" and not numeric:
        return text
    for kind in (int, float) if fmt == "csv" else (json.loads,):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _auto_unit(frame: Any, finite: Any, rows: int) -> str:
    """The pandas rule: ISO-8601 when more values parse as dates than as numbers,
    else the median magnitude of a strided sample of at most ~100k numbers."""
    from pyspark.sql import functions as F

    parsed = frame.agg(
        F.count(F.when(finite, 1)).alias("numbers"), F.count("_time_iso").alias("dates")
    ).first()
    if parsed["dates"] > parsed["numbers"]:
        return "iso"
    stride = max(1, rows // 100_000)
    sample = frame.where((F.col(ROW) % stride == 0) & finite)
    median = sample.agg(F.percentile(F.abs("_time_number"), 0.5).alias("m")).first()["m"]
    if median is None:
        median = frame.where(finite).agg(F.percentile(F.abs("_time_number"), 0.5)).first()[0]
    if median is None:
        return "s"
    for threshold, unit in _AUTO_THRESHOLDS:
        if median >= threshold:
            return unit
    return "s"
