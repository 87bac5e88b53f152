"""Timestamp parsing: numbers since the epoch (s/ms/us/ns) or ISO-8601 strings.

Every parser returns ``float64`` unix seconds plus a mask of the values that
could not be parsed (nulls included); the caller decides whether to drop them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
# Median magnitudes above which numbers are taken as ms, us, ns in "auto" mode:
# 1e11 seconds is the year 5138, 1e11 milliseconds is 1973.
_AUTO_THRESHOLDS = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))


def detect_numeric_unit(values: np.ndarray) -> str:
    """Guesses the unit of epoch numbers from the median magnitude.

    Example:
        >>> detect_numeric_unit(np.array([1.7e9, 1.8e9]))
        's'
        >>> detect_numeric_unit(np.array([1.7e12]))
        'ms'
    """
    # A strided sample of at most ~100k values is plenty to tell the unit.
    sample = values[:: max(1, values.size // 100_000)]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "s"
    median = float(np.median(np.abs(finite)))
    for threshold, unit in _AUTO_THRESHOLDS:
        if median >= threshold:
            return unit
    return "s"


def _numeric(values: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray, str]:
    values = values.astype(np.float64, copy=False)
    if unit == "auto":
        unit = detect_numeric_unit(values)
    bad = ~np.isfinite(values)
    seconds = values * _SCALE[unit] if unit != "s" else values
    return seconds, bad, unit


def _iso(strings: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    parsed = pd.to_datetime(strings, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    nanos = parsed.dt.tz_convert(None).astype("datetime64[ns]").to_numpy().astype(np.int64)
    seconds = nanos.astype(np.float64) / 1e9
    seconds[bad] = np.nan
    return seconds, bad


def parse_timestamps(
    values: pa.Array | pa.ChunkedArray, unit: str = "auto"
) -> tuple[np.ndarray, np.ndarray, str]:
    """Parses a column of timestamps to unix seconds.

    Args:
        values: Arrow column: integers/floats (epoch numbers), strings (epoch
            numbers or ISO-8601), Arrow timestamps or dates.
        unit: ``"auto"``, ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or ``"iso"``.

    Returns:
        ``(seconds float64, bad bool, unit_used)``; ``seconds`` is NaN where
        ``bad`` is True (null, empty or unparseable values).

    Example:
        >>> s, bad, unit = parse_timestamps(pa.array(["2024-01-01T00:00:01Z", "x"]))
        >>> float(s[0]), bad.tolist(), unit
        (1704067201.0, [False, True], 'iso')
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    kind = values.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        as_ns = pc.cast(values, pa.timestamp("ns")) if pa.types.is_date(kind) else values
        ticks = pc.cast(as_ns, pa.int64()).to_numpy(zero_copy_only=False)
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[as_ns.type.unit]
        seconds = np.asarray(ticks, dtype=np.float64) / per_second
        bad = np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        seconds[bad] = np.nan
        return seconds, bad, "iso"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        if unit == "iso":
            unit = "auto"
        raw = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        return _numeric(np.asarray(raw, dtype=np.float64), unit)
    if pa.types.is_null(kind):
        n = len(values)
        return np.full(n, np.nan), np.ones(n, dtype=bool), unit if unit != "auto" else "s"
    strings = pd.Series(pc.cast(values, pa.string()).to_pandas(), copy=False).str.strip()
    if unit in _SCALE:
        numbers = pd.to_numeric(strings, errors="coerce")
        return _numeric(numbers.to_numpy(dtype=np.float64, na_value=np.nan), unit)
    if unit == "iso":
        seconds, bad = _iso(strings)
        return seconds, bad, "iso"
    # "auto": numbers when they all parse, else whichever reading parses more values.
    numbers = pd.to_numeric(strings, errors="coerce")
    numbers = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    numeric_ok = int(np.isfinite(numbers).sum())
    if numeric_ok and numeric_ok == int(strings.notna().sum()):
        return _numeric(numbers, unit)
    seconds, bad = _iso(strings)
    if numeric_ok >= int((~bad).sum()):
        return _numeric(numbers, unit)
    return seconds, bad, "iso"
