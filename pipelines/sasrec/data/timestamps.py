"""Timestamp parsing: numbers since the epoch (s/ms/us/ns) or ISO-8601 strings.

Every parser returns ``float64`` unix seconds plus a mask of the values that
could not be parsed (nulls included); the caller decides whether to drop them.

Valid range: after unit conversion a timestamp must satisfy
1970-01-01T00:00:00Z <= t < 2100-01-01T00:00:00Z, i.e. ``0 <= t < 4102444800``
unix seconds (:data:`MIN_SECONDS`, :data:`MAX_SECONDS`, checked by
:func:`out_of_range`). Negative times (before the Unix epoch: a sign bug or a
``-1`` placeholder) and far-future values (a ``9999-12-31`` sentinel,
``1e23``, milliseconds read as seconds, which land near the year 55000) are
bad timestamps like unparseable ones: the readers drop and count them, and
``strict=True`` fails on the first. 2100 leaves room for future-dated events
(subscriptions, schedules). The epoch itself and small numbers (``0``, ``1``,
``2``... seconds) stay valid, so toy logs that count time from 0 work.

Mixed units: :func:`first_unit_change` finds where the magnitude of epoch
numbers jumps across a unit boundary (seconds next to milliseconds, a ~1000x
jump), which no single unit reads correctly.
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
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}

MIN_SECONDS = 0.0  # 1970-01-01T00:00:00Z, inclusive
MAX_SECONDS = 4102444800.0  # 2100-01-01T00:00:00Z, exclusive
VALID_RANGE = "1970-01-01 <= t < 2100-01-01 UTC"
# A value is evidence of a unit when, read in that unit, it falls in
# 1990..2100: the windows of s, ms, us and ns do not overlap, so a year-9999
# sentinel in seconds (2.5e11, 1977 as ms) is out of range, not "milliseconds".
_PLAUSIBLE_MIN = 631152000.0  # 1990-01-01T00:00:00Z


def out_of_range(seconds: np.ndarray) -> np.ndarray:
    """Which parsed times fall outside ``MIN_SECONDS <= t < MAX_SECONDS`` (NaN is not flagged).

    Example:
        >>> out_of_range(np.array([-5.0, 0.0, 1.0, 1.7e9, 253402300799.0, 1e23, np.nan])).tolist()
        [True, False, False, False, True, True, False]
    """
    with np.errstate(invalid="ignore"):
        return (seconds < MIN_SECONDS) | (seconds >= MAX_SECONDS)


def magnitude_unit(values: np.ndarray) -> np.ndarray:
    """The unit each epoch number's magnitude suggests: 0 s, 1 ms, 2 us, 3 ns.

    The boundaries are those of ``"auto"`` (1e11, 1e14, 1e17): a value from
    today is ~1.7e9 in seconds, ~1.7e12 in milliseconds.
    """
    magnitude = np.abs(values)
    classes = np.zeros(values.shape, dtype=np.int8)
    for threshold, _ in _AUTO_THRESHOLDS:
        classes += magnitude >= threshold
    return classes


_CLASS_UNITS = ("s", "ms", "us", "ns")


def first_unit_change(values: np.ndarray, usable: np.ndarray) -> tuple[int, str, str, dict] | None:
    """Where epoch numbers jump to another unit, or ``None`` when they agree.

    Only values that read as a time in 1990..2100 in the unit of their own
    magnitude take part (and are ``usable``): ``1e23`` or a year-9999
    sentinel is garbage, not another unit, and is left to the range check.

    Args:
        values: Raw epoch numbers (before unit conversion), NaN where missing.
        usable: Rows to consider (e.g. not bad, id present).

    Returns:
        ``(row, unit_before, unit_after, counts)``: the first row (0-based)
        whose magnitude differs from the first considered row's, the two
        units' names and how many values look like each unit.

    Example:
        >>> first_unit_change(np.array([1.7e9, 1.7e9 + 1, 1.7e12]), np.ones(3, bool))[:3]
        (2, 'seconds', 'milliseconds')
    """
    considered = usable & np.isfinite(values)
    # No copy of the column in the common case (every value usable, none negative).
    taking_part = values if considered.all() else values[considered]
    if taking_part.size < 2:
        return None
    smallest, largest = taking_part.min(), taking_part.max()
    if smallest < 0:
        magnitude = np.abs(taking_part)
        smallest, largest = magnitude.min(), magnitude.max()
    low, high = magnitude_unit(np.array([smallest, largest]))
    if low == high:
        return None  # every magnitude in one unit's band: the common case, in two passes
    classes = magnitude_unit(values)
    scale = np.asarray([_SCALE[u] for u in _CLASS_UNITS])[classes]
    with np.errstate(invalid="ignore"):
        seconds = values * scale
        considered = usable & (seconds >= _PLAUSIBLE_MIN) & (seconds < MAX_SECONDS)
    rows = np.flatnonzero(considered)
    if rows.size < 2:
        return None
    seen = classes[rows]
    differs = np.flatnonzero(seen != seen[0])
    if differs.size == 0:
        return None
    counts = {_UNIT_NAMES[u]: int((seen == k).sum()) for k, u in enumerate(_CLASS_UNITS)}
    counts = {name: n for name, n in counts.items() if n}  # of the values taking part
    row = int(rows[differs[0]])
    before = _UNIT_NAMES[_CLASS_UNITS[int(seen[0])]]
    after = _UNIT_NAMES[_CLASS_UNITS[int(seen[differs[0]])]]
    return row, before, after, counts


def unit_mismatch(values: np.ndarray, unit: str) -> np.ndarray:
    """Which epoch numbers have the magnitude of another unit than ``unit``.

    Used only on a column where :func:`first_unit_change` found a jump: those
    values would be misplaced in time by a factor of 1000 or more.
    """
    return magnitude_unit(values) != _CLASS_UNITS.index(unit)


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
        # safe=False: int64 nanoseconds (~1.7e18) exceed float64's exact integers.
        raw = pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
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
