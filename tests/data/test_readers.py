"""Reading logs: every format, preset and timestamp kind, and every bad-input error."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sasrec.data import delimited_reader
from sasrec.data.errors import DataError
from sasrec.data.presets import get_preset, preset_names
from sasrec.data.reader_options import ReaderOptions
from sasrec.data.readers import load_interactions
from sasrec.data.timestamps import detect_numeric_unit, parse_timestamps


def _rows(df: pd.DataFrame) -> list[tuple]:
    cols = [c for c in ("user_id", "item_id", "timestamp", "event", "rating") if c in df]
    return [tuple(r) for r in df[cols].astype(object).itertuples(index=False)]


# --------------------------------------------------------------------------- timestamps


def test_parse_timestamps_seconds_and_milliseconds_auto():
    sec, bad, unit = parse_timestamps(pa.array([1_700_000_000, 1_700_000_001]))
    assert unit == "s" and sec.tolist() == [1_700_000_000.0, 1_700_000_001.0]
    assert not bad.any()
    ms, bad, unit = parse_timestamps(pa.array([1_700_000_000_250, 1_700_000_001_000]))
    assert unit == "ms" and ms.tolist() == [1_700_000_000.25, 1_700_000_001.0]


def test_parse_timestamps_explicit_units():
    values = pa.array([1_000_000, 2_000_000])
    assert parse_timestamps(values, "s")[0].tolist() == [1e6, 2e6]
    assert parse_timestamps(values, "ms")[0].tolist() == [1e3, 2e3]
    assert parse_timestamps(values, "us")[0].tolist() == [1.0, 2.0]
    assert parse_timestamps(pa.array([3_000_000_000]), "ns")[0].tolist() == [3.0]


def test_parse_timestamps_iso_forms():
    values = pa.array(
        [
            "2024-01-01T00:00:00Z",
            "2024-01-01T01:00:00+01:00",  # same instant as above
            "2024-01-01 00:00:01.500",  # naive = UTC, fractional seconds kept
            "2024-01-02",
            "not a date",
            None,
        ]
    )
    seconds, bad, unit = parse_timestamps(values)
    assert unit == "iso"
    assert seconds[:4].tolist() == [1704067200.0, 1704067200.0, 1704067201.5, 1704153600.0]
    assert bad.tolist() == [False, False, False, False, True, True]
    assert np.isnan(seconds[4:]).all()


def test_parse_timestamps_numeric_strings_with_garbage():
    seconds, bad, unit = parse_timestamps(pa.array(["100", " 200 ", "x", "", "1e2"]))
    assert unit == "s"
    assert bad.tolist() == [False, False, True, True, False]
    assert seconds[[0, 1, 4]].tolist() == [100.0, 200.0, 100.0]


def test_detect_numeric_unit_thresholds():
    assert detect_numeric_unit(np.array([9e10])) == "s"
    assert detect_numeric_unit(np.array([2e11])) == "ms"
    assert detect_numeric_unit(np.array([2e15])) == "us"
    assert detect_numeric_unit(np.array([2e18])) == "ns"


# --------------------------------------------------------------------------- delimited files


def test_csv_with_header_iso_times_blank_lines_and_bad_values(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,timestamp\n"
        "u1,i1,2024-01-01T00:00:00Z\n"
        "\n"
        'u2,"i,2",2024-01-01T00:00:01.5Z\n'
        "u3,i3,notatime\n"
        ",i4,2024-01-02\n"
        "u5,,2024-01-02\n"
        "u6,i6,\n"
    )
    df, report = load_interactions(path)
    assert _rows(df) == [("u1", "i1", 1704067200.0), ("u2", "i,2", 1704067201.5)]
    assert report.read["rows"] == 6
    assert report.read["missing_ids"] == 2
    assert report.read["bad_timestamps"] == 2
    # Physical line numbers: header is line 1, the blank line 3 is skipped by the reader.
    assert report.read["bad_timestamp_examples"] == [
        {"file": str(path), "line": 5, "value": "notatime"},
        {"file": str(path), "line": 8, "value": ""},
    ]
    assert "line 5" in report.to_text()


def test_strict_fails_on_first_bad_timestamp_with_file_line_value(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,10\nu1,i2,soon\nu1,i3,later\n")
    with pytest.raises(DataError) as err:
        load_interactions(path, strict=True)
    assert err.value.line == 3 and err.value.value == "soon"
    assert str(path) in str(err.value) and "line 3" in str(err.value)


def test_bad_timestamp_after_the_type_inference_block_is_still_found(tmp_path, monkeypatch):
    # Arrow infers int64 from the first block; a bad value later forces the string re-read.
    monkeypatch.setattr(delimited_reader, "BLOCK_SIZE", 1 << 10)
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n" + "u1,i1,5\n" * 2000 + "u2,i2,oops\n")
    df, report = load_interactions(path)
    assert len(df) == 2000
    assert report.read["bad_timestamp_examples"] == [
        {"file": str(path), "line": 2002, "value": "oops"}
    ]


def test_ids_are_opaque_strings(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n007,0042,1\n7,42,2\n")
    df, _ = load_interactions(path)
    assert df["user_id"].tolist() == ["007", "7"]
    assert df["item_id"].tolist() == ["0042", "42"]
    assert isinstance(df["user_id"].dtype, pd.CategoricalDtype)


def test_headerless_positions_semicolon_and_no_timestamp(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("a;x;1\nb;y;2\na;z;3\n")
    df, report = load_interactions(path, user=0, item=1, timestamp=None)
    assert report.read["sep"] == ";" and report.read["header"] is False
    assert _rows(df) == [("a", "x", 0.0), ("b", "y", 1.0), ("a", "z", 2.0)]
    assert report.read["timestamp_unit"] == "row order"


def test_gzip_csv_and_event_and_rating_columns(tmp_path):
    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("uid,sku,ts,kind,stars\nu1,i1,1700000000000,view,\nu1,i2,1700000000500,buy,4.5\n")
    df, report = load_interactions(
        path, user="uid", item="sku", timestamp="ts", event="kind", rating="stars"
    )
    assert report.read["timestamp_unit"] == "ms"
    assert df["timestamp"].tolist() == [1700000000.0, 1700000000.5]
    assert df["event"].tolist() == ["view", "buy"]
    assert np.isnan(df["rating"][0]) and df["rating"][1] == 4.5


def test_parquet_with_integer_ids_and_datetime_column(tmp_path):
    path = tmp_path / "log.parquet"
    frame = pd.DataFrame(
        {"u": [1, 2], "i": [10, 20], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])}
    )
    frame.to_parquet(path)
    df, report = load_interactions(path, user="u", item="i", timestamp="t")
    assert report.read["format"] == "parquet"
    assert _rows(df) == [("1", "10", 1704067200.0), ("2", "20", 1704153600.0)]


def test_parquet_dictionary_out_of_first_appearance_order_numbers_users_by_appearance(tmp_path):
    # A stored dictionary sorted and holding an unused value: codes must still
    # follow first appearance, as for a text log, and unused values vanish.
    import pyarrow.parquet as pq

    users = pa.DictionaryArray.from_arrays(
        pa.array([2, 0, 2, None, 1], pa.int32()), pa.array(["a", "b", "c", "zz"])
    )
    items = pa.array(["x", "y", "x", "y", "z"])
    times = pa.array([1, 2, 3, 4, 5], pa.int64())
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": users, "item_id": items, "timestamp": times}), path)
    df, report = load_interactions(path)
    assert report.read["missing_ids"] == 1
    assert list(df["user_id"].cat.categories) == ["c", "a", "b"]
    assert df["user_id"].cat.codes.tolist() == [0, 1, 0, 2]
    assert _rows(df) == [("c", "x", 1.0), ("a", "y", 2.0), ("c", "x", 3.0), ("b", "z", 5.0)]


# --------------------------------------------------------------------------- presets


def test_every_preset_is_valid_reader_options():
    assert preset_names() == ["amazon", "ml-100k", "ml-1m", "recbole", "sasrec"]
    for name in preset_names():
        assert isinstance(get_preset(name), ReaderOptions)
    with pytest.raises(ValueError, match="valid presets: amazon, ml-100k"):
        get_preset("ml-25m")


def test_preset_ml_100k_reads_folder(tmp_path):
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    df, report = load_interactions(tmp_path, preset="ml-100k")
    assert _rows(df) == [("196", "242", 881250949.0, 3.0), ("186", "302", 891717742.0, 3.0)]
    assert report.source["preset"] == "ml-100k"


def test_preset_ml_1m_double_colon(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::1193::5::978300760\r\n1::661::3::978302109\r\n")
    df, _ = load_interactions(path, preset="ml-1m")
    assert _rows(df) == [("1", "1193", 978300760.0, 5.0), ("1", "661", 978302109.0, 3.0)]


def test_preset_sasrec_line_order_is_time(tmp_path):
    path = tmp_path / "Video.txt"
    path.write_text("1 6393\n1 13504\n2 5\n1 7\n")
    df, _ = load_interactions(path, preset="sasrec")
    assert _rows(df) == [("1", "6393", 0.0), ("1", "13504", 1.0), ("2", "5", 2.0), ("1", "7", 3.0)]


def test_preset_amazon_json_lines(tmp_path):
    path = tmp_path / "reviews.json"
    lines = [
        {"reviewerID": "A2", "asin": "B01", "reviewText": "ok", "overall": 5.0,
         "unixReviewTime": 1393545600, "helpful": [0, 0]},
        {"reviewerID": "A3", "asin": "B02", "reviewText": "meh", "overall": 2.0,
         "unixReviewTime": 1363392000, "style": {"Color:": "red"}},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    df, _ = load_interactions(path, preset="amazon")
    assert _rows(df) == [("A2", "B01", 1393545600.0, 5.0), ("A3", "B02", 1363392000.0, 2.0)]


def test_json_with_types_changing_between_lines_uses_the_slow_path(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"reviewerID": "A", "asin": "x", "unixReviewTime": 5, "overall": 4.0}\n'
        "\n"
        '{"reviewerID": 7, "asin": "y", "unixReviewTime": "bad", "overall": 4}\n'
    )
    df, report = load_interactions(path, preset="amazon")
    assert _rows(df) == [("A", "x", 5.0, 4.0)]
    assert report.read["bad_timestamp_examples"] == [{"file": str(path), "line": 3, "value": "bad"}]


def test_preset_recbole_with_and_without_optional_columns(tmp_path):
    full = tmp_path / "ml.inter"
    full.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t4.0\t881250949\n"
    )
    df, _ = load_interactions(full, preset="recbole")
    assert _rows(df) == [("1", "2", 881250949.0, 4.0)]
    bare = tmp_path / "bare.inter"
    bare.write_text("user_id:token\titem_id:token\n1\t2\n1\t3\n")
    df, report = load_interactions(bare, preset="recbole")
    assert _rows(df) == [("1", "2", 0.0), ("1", "3", 1.0)]
    assert report.read["timestamp_unit"] == "row order"


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file") as err:
        load_interactions(tmp_path / "nope.csv")
    assert err.value.path == str(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_interactions(path)


def test_missing_column_lists_the_columns_present(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item_id,timestamp\nu1,i1,1\n")
    with pytest.raises(DataError) as err:
        load_interactions(path)
    message = str(err.value)
    assert "no user_id column 'user_id'" in message
    assert "'user', 'item_id', 'timestamp'" in message


def test_position_beyond_the_fields(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("1\t2\n")
    with pytest.raises(DataError, match=r"2 field\(s\)"):
        load_interactions(path, user=0, item=1, timestamp=5)


def test_line_with_wrong_number_of_fields(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,5\nu1,i2\nu1,i3,7\n")
    with pytest.raises(DataError) as err:
        load_interactions(path)
    assert err.value.line == 3 and "expected 3 fields" in str(err.value)


def test_multichar_separator_line_with_wrong_number_of_fields(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::5::100\n\n1::3::5::101\n1::4::5\n")
    with pytest.raises(DataError) as err:
        load_interactions(path, preset="ml-1m")
    assert err.value.line == 4 and "found 3" in str(err.value)


def test_invalid_utf8_names_line_and_byte_offset(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"user_id,item_id,timestamp\nu1,i1,5\nu1,i\xff2,6\n")
    with pytest.raises(DataError) as err:
        load_interactions(path)
    assert err.value.line == 3
    assert "byte offset 38" in str(err.value) and "0xff" in str(err.value)


def test_invalid_utf8_in_json_lines(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(
        b'{"reviewerID": "A", "asin": "x", "unixReviewTime": 5, "overall": 4.0}\n'
        b'{"reviewerID": "B\xff", "asin": "y", "unixReviewTime": 6, "overall": 4.0}\n'
    )
    with pytest.raises(
        DataError, match="invalid utf-8 byte 0xff at byte offset 87 \\(column 18 "
    ) as err:
        load_interactions(path, preset="amazon")
    assert err.value.line == 2


def test_malformed_json_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '{"reviewerID": "A", "asin": "x", "unixReviewTime": 5, "overall": 4.0}\n'
        '{"reviewerID": "B", "asin": "y", "unixReviewTime": 6\n'
    )
    with pytest.raises(DataError, match="malformed JSON") as err:
        load_interactions(path, preset="amazon")
    assert err.value.line == 2


def test_named_column_in_a_headerless_file_is_rejected(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("1\t2\t3\n")
    with pytest.raises(DataError, match="by position"):
        load_interactions(path, header=False, user=0, item=1, timestamp="ts")


def test_unknown_option_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown reader option"):
        load_interactions(tmp_path / "x.csv", usr="u")
