"""The data statistics report: what was read, what each cleaning step removed, what is left."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sasrec.data.columns import ITEM, TIMESTAMP, USER
from sasrec.io import atomic_write_text

_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
_QUANTILE_NAMES = ("min", "p25", "p50", "p75", "p90", "p99", "max")
_STEP_KEYS = ("name", "before", "after", "removed")


def _codes(series: pd.Series) -> np.ndarray:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy()
    return pd.factorize(series, use_na_sentinel=True)[0]


def _distribution(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {name: 0.0 for name in (*_QUANTILE_NAMES, "mean")}
    values = np.quantile(counts, _QUANTILES)
    out = {name: float(v) for name, v in zip(_QUANTILE_NAMES, values)}
    out["mean"] = float(counts.mean())
    return out


def compute_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Users, items, events, density and length distributions of a canonical frame.

    Example:
        >>> frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"],
        ...                       "timestamp": [1, 2, 3]})
        >>> s = compute_stats(frame)
        >>> s["users"], s["items"], s["events"], s["density"]
        (2, 2, 3, 0.75)
    """
    users = _codes(df[USER])
    items = _codes(df[ITEM])
    user_counts = np.bincount(users[users >= 0]) if len(df) else np.zeros(0, dtype=np.int64)
    item_counts = np.bincount(items[items >= 0]) if len(df) else np.zeros(0, dtype=np.int64)
    user_counts = user_counts[user_counts > 0]
    item_counts = item_counts[item_counts > 0]
    n_users, n_items, n_events = int(user_counts.size), int(item_counts.size), int(len(df))
    stats: dict[str, Any] = {
        "users": n_users,
        "items": n_items,
        "events": n_events,
        "density": n_events / (n_users * n_items) if n_users and n_items else 0.0,
        "sequence_length": _distribution(user_counts),
        "item_frequency": _distribution(item_counts),
    }
    if n_events and TIMESTAMP in df:
        ts = df[TIMESTAMP].to_numpy(dtype=np.float64)
        stats["timestamp_min"] = float(np.nanmin(ts))
        stats["timestamp_max"] = float(np.nanmax(ts))
    return stats


class DataReport:
    """Statistics of one pipeline run, printable and JSON-serialisable.

    Sections: ``source`` (path, preset, format), ``read`` (rows read, rows
    dropped for missing ids or bad timestamps, with examples), ``steps`` (one
    entry per cleaning step: ``name``, ``before``, ``after``, ``removed`` and
    step details) and ``stats`` (:func:`compute_stats` of the final frame).

    Args:
        source: Where the data came from.

    Example:
        >>> report = DataReport(source={"path": "log.csv"})
        >>> report.add_step("duplicates", before=10, after=8)
        >>> report.steps[0]["removed"]
        2
        >>> DataReport.from_dict(report.to_dict()).to_dict() == report.to_dict()
        True
    """

    FORMAT = "sasrec.data_report.v1"

    def __init__(self, source: dict[str, Any] | None = None) -> None:
        self.source: dict[str, Any] = dict(source or {})
        self.read: dict[str, Any] = {}
        self.steps: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = {}

    def copy(self) -> DataReport:
        """A deep copy (pipeline functions never mutate the report they are given)."""
        return copy.deepcopy(self)

    def add_step(self, name: str, before: int, after: int, **details: Any) -> None:
        """Records one cleaning step and how many events it removed."""
        self.steps.append(
            {
                "name": name,
                "before": int(before),
                "after": int(after),
                "removed": int(before - after),
            }
            | details
        )

    def set_stats(self, df: pd.DataFrame) -> None:
        """Computes the final statistics of ``df``."""
        self.stats = compute_stats(df)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the report."""
        return json.loads(
            json.dumps(
                {
                    "format": self.FORMAT,
                    "source": self.source,
                    "read": self.read,
                    "steps": self.steps,
                    "stats": self.stats,
                },
                default=_json_default,
            )
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataReport:
        """Rebuilds a report from :meth:`to_dict` output."""
        report = cls(data.get("source"))
        report.read = dict(data.get("read", {}))
        report.steps = [dict(s) for s in data.get("steps", [])]
        report.stats = dict(data.get("stats", {}))
        return report

    def save(self, path: str | os.PathLike) -> None:
        """Writes the report as JSON, atomically."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def to_text(self) -> str:
        """A human-readable summary."""
        lines = []
        if self.source:
            lines.append("source: " + ", ".join(f"{k}={v}" for k, v in self.source.items()))
        if self.read:
            r = self.read
            reasons = r.get("bad_timestamp_reasons") or {}
            detail = ", ".join(
                f"{n:,} {name.replace('_', ' ')}" for name, n in reasons.items() if n
            )
            valid = f"; valid {r['timestamp_range']}" if r.get("timestamp_range") else ""
            lines.append(
                f"read: {r.get('rows', 0):,} rows; dropped {r.get('missing_ids', 0):,} with a "
                f"missing id, {r.get('bad_timestamps', 0):,} with an unparseable or invalid "
                f"timestamp{f' ({detail})' if detail else ''} "
                f"(timestamps: {r.get('timestamp_unit', '?')}{valid})"
            )
            for ex in r.get("bad_timestamp_examples", []):
                where = f"line {ex['line']}" if "line" in ex else f"row {ex.get('row')}"
                why = f" ({ex['reason']})" if ex.get("reason") else ""
                lines.append(f"  e.g. {ex['file']}, {where}: {ex['value']!r}{why}")
            for warning in r.get("warnings", []):
                lines.append(f"warning: {warning['message']}")
        for step in self.steps:
            details = {k: v for k, v in step.items() if k not in _STEP_KEYS}
            extra = f" ({', '.join(f'{k}={v}' for k, v in details.items())})" if details else ""
            removed, before = step["removed"], step["before"]
            lines.append(f"step {step['name']}: removed {removed:,} of {before:,} events{extra}")
        if self.stats:
            s = self.stats
            lines.append(
                f"result: {s['users']:,} users, {s['items']:,} items, {s['events']:,} events, "
                f"density {s['density']:.6f}"
            )
            q = s["sequence_length"]
            lines.append("events per user: " + ", ".join(f"{k} {_fmt(v)}" for k, v in q.items()))
            q = s["item_frequency"]
            lines.append("events per item: " + ", ".join(f"{k} {_fmt(v)}" for k, v in q.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _fmt(value: float) -> str:
    return f"{value:.1f}" if not float(value).is_integer() else f"{int(value)}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
