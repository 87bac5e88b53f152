"""Timestamps outside 1970-01-01 <= t < 2100-01-01, and columns mixing seconds with milliseconds.

Out-of-range values are bad timestamps: dropped and counted in the report
(``read.bad_timestamps``, ``read.bad_timestamp_reasons``), fatal under
``--strict`` with file, line and column. A column whose epoch numbers jump by
~1000x is a warning in ``data_stats.json`` and on stderr, and an error under
``--strict``, naming the first line where the unit changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sasrec.cli import main
from sasrec.data.readers import load_interactions
from sasrec.data.timestamps import MAX_SECONDS, first_unit_change, out_of_range

HEADER = "user_id,item_id,timestamp\n"
GOOD = "u1,i1,1700000000\nu1,i2,1700000001\nu2,i1,1700000002\n"  # lines 2..4


def stats(path: Path, capsys, *flags: str) -> tuple[int, str, str, dict | None]:
    """``sasrec data stats`` without k-core: (exit code, stdout, stderr, report JSON)."""
    report = path.with_suffix(".stats.json")
    code = main(
        ["data", "stats", "--data", str(path), "--min-user", "1", "--min-item", "1"]
        + ["--json", str(report), *flags]
    )
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err, json.loads(report.read_text()) if report.exists() else None


# --------------------------------------------------------------------------- the range


def test_range_boundaries():
    seconds = np.array([-1.0, 0.0, 1.0, MAX_SECONDS - 1, MAX_SECONDS, 1e23, np.nan])
    assert out_of_range(seconds).tolist() == [True, False, False, False, True, True, False]
    assert MAX_SECONDS == 4102444800.0  # 2100-01-01T00:00:00Z


@pytest.mark.parametrize(
    "value,shown",
    [("-5", -5), ("253402300799", 253402300799), ("1e23", 1e23)],
    ids=["negative", "year-9999", "1e23"],
)
def test_out_of_range_is_a_counted_bad_timestamp(tmp_path, capsys, value, shown):
    # Before: exit 0 with the value read as a time (e.g. 1969-12-31T23:59:55).
    path = tmp_path / "log.csv"
    path.write_text(HEADER + GOOD + f"u2,i3,{value}\n")
    code, out, err, report = stats(path, capsys)
    assert code == 0, err
    read = report["read"]
    assert (read["rows"], read["events"], read["bad_timestamps"]) == (4, 3, 1)
    assert read["bad_timestamp_reasons"] == {
        "unparseable": 0,
        "out_of_range": 1,
        "unit_mismatch": 0,
    }
    assert read["bad_timestamp_examples"] == [
        {
            "file": str(path),
            "line": 5,
            "value": shown,
            "reason": "timestamp out of range (1970-01-01 <= t < 2100-01-01 UTC)",
        }
    ]
    assert report["stats"]["timestamp_max"] == 1700000002.0
    assert "1 out of range" in out


@pytest.mark.parametrize("value", ["-5", "253402300799", "1e23"])
def test_out_of_range_is_fatal_under_strict(tmp_path, capsys, value):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + GOOD + f"u2,i3,{value}\n")
    code, _, err, _ = stats(path, capsys, "--strict")
    assert code == 2
    assert err.startswith(f"sasrec data stats: error: {path}, line 5, column 'timestamp': ")
    assert "timestamp out of range (1970-01-01 <= t < 2100-01-01 UTC)" in err


def test_iso_dates_and_explicit_units_use_the_same_range(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        HEADER
        + "u1,i1,1969-12-31T23:59:59Z\n"  # 1 s before the epoch
        + "u1,i2,1970-01-01T00:00:00Z\n"  # the epoch: valid
        + "u1,i3,2099-12-31T23:59:59Z\n"  # last valid second
        + "u1,i4,2100-01-01T00:00:00Z\n"
    )
    df, report = load_interactions(path)
    assert df["timestamp"].tolist() == [0.0, 4102444799.0]
    assert report.read["bad_timestamp_reasons"]["out_of_range"] == 2
    # Milliseconds given as seconds land near the year 55,000.
    path.write_text(HEADER + "u1,i1,1700000000000\nu1,i2,1700000001000\n")
    df, report = load_interactions(path, timestamp_unit="s")
    assert len(df) == 0 and report.read["bad_timestamp_reasons"]["out_of_range"] == 2
    df, report = load_interactions(path, timestamp_unit="ms")
    assert df["timestamp"].tolist() == [1700000000.0, 1700000001.0]


def test_parquet_timestamps_are_range_checked_too(tmp_path, capsys):
    import pyarrow.parquet as pq

    path = tmp_path / "log.parquet"
    times = pa.array([1_700_000_000, -1, 2_000_000_000, 9 * 10**18], pa.int64())
    pq.write_table(
        pa.table({"user_id": ["a"] * 4, "item_id": list("wxyz"), "timestamp": times}), path
    )
    code, _, err, _ = stats(path, capsys, "--strict")
    assert code == 2
    assert f"{path}, column 'timestamp': timestamp out of range" in err and "(row 2)" in err


# --------------------------------------------------------------------------- mixed units


SECONDS_THEN_MS = (
    HEADER
    + "u1,i1,1700000000\n"  # line 2
    + "u1,i2,1700000001\n"
    + "u2,i1,1700000002\n"
    + "u2,i2,1700000003000\n"  # line 5: milliseconds start
    + "u1,i3,1700000004000\n"
)


def test_unit_change_lookup():
    values = np.array([1.7e9, np.nan, 1.7e9 + 1, 1.7e12, 1e23, 1.7e9 + 2])
    assert first_unit_change(values, np.ones(6, bool)) == (
        3,
        "seconds",
        "milliseconds",
        {"seconds": 3, "milliseconds": 1},
    )
    # 1e23 and a year-9999 sentinel are out of range, not another unit.
    assert first_unit_change(np.array([1.7e9, 1e23, 253402300799.0]), np.ones(3, bool)) is None
    # Small "toy" times do not count as a unit either.
    assert first_unit_change(np.array([1.0, 2.0, 1.7e12]), np.ones(3, bool)) is None


def test_seconds_then_milliseconds_warns_and_drops_the_minority(tmp_path, capsys):
    # Before: exit 0, silently; the ms rows were read as the year ~55,000.
    path = tmp_path / "log.csv"
    path.write_text(SECONDS_THEN_MS)
    code, out, err, report = stats(path, capsys)
    assert code == 0, err
    read = report["read"]
    assert read["timestamp_unit"] == "s"
    assert read["bad_timestamps"] == 2
    assert read["bad_timestamp_reasons"]["unit_mismatch"] == 2
    (warning,) = read["warnings"]
    assert warning["kind"] == "timestamp_unit_change"
    assert (warning["line"], warning["column"], warning["from"], warning["to"]) == (
        5,
        "timestamp",
        "seconds",
        "milliseconds",
    )
    assert warning["counts"] == {"seconds": 3, "milliseconds": 2}
    assert f"warning: {path}: column 'timestamp' mixes timestamp units" in out
    assert "seconds until line 5, where milliseconds start" in out


def test_milliseconds_then_seconds_does_not_reorder_events(tmp_path, capsys):
    # Before: the seconds value was read as milliseconds, 1970-01-20, and
    # became u1's FIRST event although it is the last line of the file.
    path = tmp_path / "log.csv"
    path.write_text(
        HEADER
        + "u1,i1,1700000000000\n"
        + "u1,i2,1700000001000\n"
        + "u1,i3,1700000002000\n"
        + "u1,i4,1700000003\n"  # line 5: seconds
    )
    df, report = load_interactions(path)
    assert df["item_id"].tolist() == ["i1", "i2", "i3"]
    assert df["timestamp"].tolist() == [1700000000.0, 1700000001.0, 1700000002.0]
    assert report.read["warnings"][0]["line"] == 5
    assert report.read["bad_timestamp_examples"] == [
        {
            "file": str(path),
            "line": 5,
            "value": 1700000003,
            "reason": "timestamp in another unit than the rest of the column",
        }
    ]


def test_unit_change_is_fatal_under_strict(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text(SECONDS_THEN_MS)
    code, _, err, report = stats(path, capsys, "--strict")
    assert code == 2 and report is None
    assert err.startswith(f"sasrec data stats: error: {path}, line 5, column 'timestamp': ")
    assert "timestamps change from seconds to milliseconds" in err


def test_unit_change_warning_goes_to_stderr(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(SECONDS_THEN_MS)
    result = subprocess.run(
        [sys.executable, "-m", "sasrec.cli", "data", "stats", "--data", str(path)]
        + ["--min-user", "1", "--min-item", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        f"{path}: column 'timestamp' mixes timestamp units: seconds until line 5, "
        "where milliseconds start (value 1700000003000)"
    )
    assert "Traceback" not in result.stderr


def test_one_unit_columns_raise_no_warning(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "u1,i1,0\nu1,i2,1\nu2,i1,2\n")  # toy times from the epoch
    code, _, err, report = stats(path, capsys)
    assert code == 0, err
    assert report["read"]["warnings"] == [] and report["read"]["bad_timestamps"] == 0
    path.write_text(HEADER + "u1,i1,1700000000000\nu1,i2,1700000000500\n")
    code, _, err, report = stats(path, capsys)
    assert code == 0, err
    assert report["read"]["timestamp_unit"] == "ms" and report["read"]["warnings"] == []
