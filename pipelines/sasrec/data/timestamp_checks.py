"""The time column of a log: parsed, and each bad value classified for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sasrec.data.errors import DataError
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.text_file import (
    Locator,
)
from sasrec.data.timestamps import (
    VALID_RANGE,
    first_unit_change,
    out_of_range,
    parse_timestamps,
    unit_mismatch,
)

REASON_TEXT = {
    1: "unparseable timestamp",
    2: f"timestamp out of range ({VALID_RANGE})",
    3: "timestamp in another unit than the rest of the column",
}


def check_timestamps(
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
