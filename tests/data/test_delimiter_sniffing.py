"""A delimited file is read with the delimiter its lines agree on, whatever its extension."""

from __future__ import annotations

from pathlib import Path

import pytest

from sasrec.data.errors import DataError
from sasrec.data.readers import load_interactions

# Three events of two users; every reading below must give exactly these.
EXPECTED = [("u1", "i1", 1.0), ("u1", "i2", 2.0), ("u2", "i1", 3.0)]


def _events(df) -> list[tuple[str, str, float]]:
    return list(zip(df["user_id"].astype(str), df["item_id"].astype(str), df["timestamp"]))


def _write(path: Path, sep: str) -> Path:
    lines = [["user_id", "item_id", "timestamp"], ["u1", "i1", "1"], ["u1", "i2", "2"]]
    lines.append(["u2", "i1", "3"])
    path.write_text("".join(sep.join(fields) + "\n" for fields in lines))
    return path


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_with_another_delimiter_is_sniffed(tmp_path: Path, sep: str) -> None:
    df, report = load_interactions(_write(tmp_path / "log.csv", sep))
    assert _events(df) == EXPECTED
    assert report.read["sep"] == sep


def test_comma_inside_values_does_not_win_over_semicolons(tmp_path: Path) -> None:
    # Comma-decimal ratings: a comma splits the rows into 2 fields, the header into 1.
    log = tmp_path / "ratings.csv"
    log.write_text("user_id;item_id;rating;timestamp\nu1;i1;3,5;1\nu1;i2;4,0;2\nu2;i1;2,5;3\n")
    df, report = load_interactions(log)
    assert report.read["sep"] == ";"
    assert _events(df) == EXPECTED


def test_space_inside_iso_times_keeps_the_comma(tmp_path: Path) -> None:
    # Without a header, a space splits each row in two, the comma in three.
    log = tmp_path / "events.csv"
    log.write_text(
        "u1,i1,1970-01-01 00:00:01\nu1,i2,1970-01-01 00:00:02\nu2,i1,1970-01-01 00:00:03\n"
    )
    df, report = load_interactions(log, user=0, item=1, timestamp=2)
    assert report.read["sep"] == ","
    assert _events(df) == EXPECTED


def test_explicit_sep_wins_over_sniffing(tmp_path: Path) -> None:
    log = _write(tmp_path / "log.csv", ";")
    with pytest.raises(DataError, match="no user_id column 'user_id'"):
        load_interactions(log, sep=",")


def test_comma_csv_reads_as_before(tmp_path: Path) -> None:
    df, report = load_interactions(_write(tmp_path / "log.csv", ","))
    assert report.read["sep"] == ","
    assert _events(df) == EXPECTED
