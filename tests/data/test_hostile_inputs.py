"""Hostile input files through the real command line: exit 2 with file and place, never a traceback.

Each test runs ``sasrec data stats`` in-process (``sasrec.cli.main``) on a
small file written to ``tmp_path`` and checks the exit code and stderr; a
traceback would surface as an exception out of ``main`` or as exit code 1.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sasrec.cli import main

REPO = Path(__file__).resolve().parents[2]
HEADER = "user_id,item_id,timestamp\n"
# 3 users, 4 items, 6 events: hand-counted below.
ROWS = (
    "u1,i1,1700000000\n"
    "u1,i2,1700000001\n"
    "u2,i1,1700000002\n"
    "u2,i3,1700000003\n"
    "u3,i4,1700000004\n"
    "u3,i1,1700000005\n"
)
GOOD = HEADER + ROWS


def stats(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    """``sasrec data stats`` without k-core filtering: (exit code, stdout, stderr)."""
    code = main(
        ["data", "stats", "--data", str(path), "--min-user", "1", "--min-item", "1", *flags]
    )
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def assert_user_error(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    assert err.startswith("sasrec data stats: error: "), err
    for part in parts:
        assert part in err, (part, err)


# --------------------------------------------------------------------------- long lines


def test_50_mib_line_is_exit_2_naming_its_line(tmp_path, capsys):
    # Before: exit 1, csv "field larger than field limit (131072)" traceback.
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "u1," + "x" * (50 << 20) + ",1700000000\n" + ROWS)
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, line 2:", "longer than 16 MiB")


def test_field_just_past_the_csv_modules_limit_is_read(tmp_path, capsys):
    # The smallest line that crashed the delimiter sniffing: one field of
    # 131,073 characters (csv.field_size_limit() is 131,072). Legal CSV, so it
    # is read: 4 users, 5 items, 7 events.
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "u9," + "x" * 131_073 + ",1700000006\n" + ROWS)
    code, out, err = stats(path, capsys)
    assert code == 0, err
    assert "4 users, 5 items, 7 events" in out


def test_quoted_field_past_the_csv_modules_limit_is_read(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + 'u9,"a,' + "x" * 131_073 + '",1700000006\n' + ROWS)
    code, out, err = stats(path, capsys)
    assert code == 0, err
    assert "4 users, 5 items, 7 events" in out


def test_long_line_after_the_sniffed_lines_is_named(tmp_path, capsys):
    # Past the 20 lines used to guess the delimiter, Arrow's reader fails on a
    # line longer than its 16 MiB block; the error names that line.
    path = tmp_path / "log.csv"
    path.write_text(HEADER + ROWS * 5 + "u1," + "x" * (17 << 20) + ",1700000000\n")
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, line 32:", "longer than 16 MiB")


# --------------------------------------------------------------------------- parquet


def _parquet(path: Path, rows: int = 6, row_group_size: int | None = None, **columns) -> Path:
    table = {
        "user_id": [f"u{i % 3}" for i in range(rows)],
        "item_id": [f"i{i % 4}" for i in range(rows)],
        "timestamp": [1_700_000_000 + i for i in range(rows)],
    }
    table.update(columns)
    pq.write_table(pa.table(table), path, row_group_size=row_group_size, compression="NONE")
    return path


def test_parquet_list_typed_id_column_names_the_column(tmp_path, capsys):
    # Before: exit 1, ArrowNotImplementedError "Unsupported cast from list" traceback.
    path = _parquet(tmp_path / "log.parquet", user_id=pa.array([[1, 2], [3], [4], [5], [6], [7]]))
    code, _, err = stats(path, capsys)
    assert_user_error(
        code, err, f"{path}, column 'user_id':", "type list<element: int64>", "strings or integers"
    )


@pytest.mark.parametrize(
    "column,values,flags",
    [
        ("item_id", pa.array([{"a": i} for i in range(6)]), ()),
        ("user_id", pa.array([[("k", 1)]] * 6, pa.map_(pa.string(), pa.int64())), ()),
        ("timestamp", pa.array([[i] for i in range(6)]), ()),
        ("rating", pa.array([[1.0]] * 6), ("--rating-col", "rating")),
    ],
    ids=["struct-item", "map-user", "list-time", "list-rating"],
)
def test_parquet_nested_columns_name_the_column(tmp_path, capsys, column, values, flags):
    # Before: exit 1 with an Arrow cast traceback for each.
    path = _parquet(tmp_path / "log.parquet", **{column: values})
    code, _, err = stats(path, capsys, *flags)
    assert_user_error(code, err, f"{path}, column '{column}':", "has type")


def test_parquet_damaged_row_group_names_row_group_and_column(tmp_path, capsys):
    path = _parquet(tmp_path / "log.parquet", rows=300, row_group_size=100)
    data = bytearray(path.read_bytes())
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = chunk.data_page_offset
    data[start : start + 40] = b"\xff" * 40  # the page header of row group 2, user_id
    path.write_bytes(bytes(data))
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, column 'user_id':", "row group 2 of 3 (rows 101..200)")
    assert len(err.strip().splitlines()) == 1


def test_truncated_parquet_is_named(tmp_path, capsys):
    path = _parquet(tmp_path / "log.parquet")
    path.write_bytes(path.read_bytes()[:-20])
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}:", "not a readable Parquet file")


def test_parquet_binary_ids_that_are_not_utf8_name_the_row(tmp_path, capsys):
    # Before: exit 2 with only "Invalid UTF8 payload": no file, column or row.
    ids = pa.array([b"a", b"b", b"c", b"\xff\xfe", b"d", b"e"], pa.binary())
    path = _parquet(tmp_path / "log.parquet", user_id=ids)
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, column 'user_id':", "not valid UTF-8", "(row 4)")


def test_parquet_int64_nanoseconds_are_read(tmp_path, capsys):
    # Before: exit 2 "Integer value 1700000000000000000 not in range: ..." (no
    # file): int64 nanoseconds are not exact float64 integers.
    ns = pa.array([1_700_000_000_000_000_000 + i * 10**9 for i in range(6)], pa.int64())
    path = _parquet(tmp_path / "log.parquet", timestamp=ns)
    json_path = tmp_path / "stats.json"
    code, _, err = stats(path, capsys, "--json", str(json_path))
    assert code == 0, err
    report = json.loads(json_path.read_text())
    assert report["read"]["timestamp_unit"] == "ns"
    assert report["stats"]["timestamp_min"] == 1_700_000_000.0
    assert report["stats"]["timestamp_max"] == 1_700_000_005.0


# --------------------------------------------------------------------------- text shapes


@pytest.mark.parametrize(
    "text,parts",
    [
        ("", ["file is empty"]),
        (HEADER, ["the interaction log has no events: 0 rows read"]),
        ("\n\n\n", ["file has no data lines"]),
        ("user_id,item_id\nu1,i1\n", ["no timestamp column 'timestamp'", "'user_id', 'item_id'"]),
        (HEADER + "u1,i1,1700000000\nu2,i2\n", ["line 3:", "expected 3 fields"]),
        (  # before: the whole file was the header, listed as garbled column names
            (HEADER + ROWS).replace("\n", "\r"),
            ["line 1:", "bare carriage return (old Mac line endings)"],
        ),
        (  # before: all 20,000 names on one stderr line
            ",".join(f"c{i}" for i in range(20_000)) + "\n" + "1," * 19_999 + "1\n",
            ["no user_id column 'user_id'", "'c19', ... (20,000 columns)"],
        ),
        (
            "user_id,user_id,item_id,timestamp\nu1,u2,i1,1700000000\n",
            ["line 1:", "names the user_id column 'user_id' more than once (fields 1, 2)"],
        ),
    ],
    ids=[
        "empty",
        "header-only",
        "blank-lines",
        "missing-column",
        "short-line",
        "cr-line-endings",
        "20000-columns",
        "dup-header",
    ],
)
def test_malformed_text_shapes(tmp_path, capsys, text, parts):
    # Before: all exit 2 except the duplicated header, read silently (exit 0)
    # from whichever user_id column Arrow picked.
    path = tmp_path / "log.csv"
    path.write_text(text)
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, str(path), *parts)


@pytest.mark.parametrize(
    "data,parts",
    [
        (bytes(range(256)) * 8, ["line 1:", "NUL byte (0x00) at byte offset 0", "binary"]),
        (  # a PNG image named .csv: its first line is "\x89PNG\r"
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
            ["line 1:", "invalid utf-8 byte 0x89 at byte offset 0"],
        ),
    ],
    ids=["nul-bytes", "png"],
)
def test_binary_garbage(tmp_path, capsys, data, parts):
    path = tmp_path / "log.csv"
    path.write_bytes(data)
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, str(path), *parts)


def test_nul_byte_inside_an_id_names_the_line(tmp_path, capsys):
    # Before: exit 0, "u\x002" read as a user id.
    path = tmp_path / "log.csv"
    path.write_bytes((HEADER + ROWS).replace("u2,i1", "u\x002,i1").encode())
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, line 4:", "NUL byte (0x00) at byte offset 61 (column 2")


def test_nul_byte_after_the_sniffed_lines_names_the_line(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_bytes((HEADER + ROWS * 5 + "u\x009,i1,1700000000\n").encode())
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, line 32, column 'user_id':", "NUL byte")


def test_utf16_file_says_convert_to_utf8(tmp_path, capsys):
    # Before: "invalid utf-8 byte 0xff at byte offset 0".
    path = tmp_path / "log.csv"
    path.write_text(GOOD, encoding="utf-16")
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}:", "UTF-16", "convert it to UTF-8")


def test_mixed_id_types_are_opaque_strings(tmp_path, capsys):
    # Numbers, words and decimals in one id column are all ids: 3 users, 3 items.
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "1,1,1700000000\n2,2.5,1700000001\nabc,x,1700000002\n1,x,1700000003\n")
    json_path = tmp_path / "stats.json"
    code, out, err = stats(path, capsys, "--json", str(json_path))
    assert code == 0, err
    assert "3 users, 3 items, 4 events" in out


def test_json_lines_mixed_id_types_and_object_ids(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"user_id": 1, "item_id": "a", "timestamp": 1700000000}\n'
        '{"user_id": "1", "item_id": "b", "timestamp": 1700000001}\n'
        '{"user_id": "x", "item_id": 2, "timestamp": 1700000002}\n'
    )
    code, out, err = stats(path, capsys)
    assert code == 0, err
    assert "2 users, 3 items, 3 events" in out  # 1 and "1" are the same id
    # An object where an id belongs. Before: exit 0 with the id "{'a': 1}".
    path.write_text(
        '{"user_id": "u", "item_id": "a", "timestamp": 1700000000}\n'
        '{"user_id": {"a": 1}, "item_id": "b", "timestamp": 1700000001}\n'
    )
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, line 2, column 'user_id':", "is an object")


def test_json_lines_broken_line_is_named(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"user_id": "u", "item_id": "a", "timestamp": 1700000000}\n'
        '{"user_id": "u", "item_id\n'
        '{"user_id": "u", "item_id": "c", "timestamp": 1700000002}\n'
    )
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}, line 2:", "malformed JSON")


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize(
    "compress,parts",
    [
        (gzip.compress, ["looks gzip-compressed", "decompress it or name it log.csv.gz"]),
        (bz2.compress, ["looks bzip2-compressed", "name it log.csv.bz2"]),
        (lzma.compress, ["looks xz-compressed", "decompress it"]),
    ],
    ids=["gzip", "bz2", "xz"],
)
def test_compressed_file_named_csv(tmp_path, capsys, compress, parts):
    # Before: "invalid utf-8 byte 0x8b at byte offset 1" (gzip) and the like.
    path = tmp_path / "log.csv"
    path.write_bytes(compress(GOOD.encode()))
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}:", *parts)
    assert "invalid utf-8" not in err


def test_zip_and_zstd_named_csv(tmp_path, capsys):
    path = tmp_path / "log.csv"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("log.csv", GOOD)
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, "looks zip-compressed", "extract")
    path.write_bytes(pa.compress(GOOD.encode(), codec="zstd", asbytes=True))
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, "looks zstd-compressed", "name it log.csv.zst")


def test_gzip_named_csv_gz_is_read(tmp_path, capsys):
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode()))
    code, out, err = stats(path, capsys)
    assert code == 0, err
    assert "3 users, 4 items, 6 events" in out


def test_csv_gz_that_is_not_gzip_or_is_truncated(tmp_path, capsys):
    # Before: exit 1 with "OSError: zlib inflate failed" / "Truncated compressed
    # stream" tracebacks.
    path = tmp_path / "log.csv.gz"
    path.write_text(GOOD)
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}:", "named .gz but is not gzip-compressed")
    many = "".join(f"u{i},i{i * 7},{1_700_000_000 + i}\n" for i in range(2000))
    path.write_bytes(gzip.compress((HEADER + many).encode())[:3000])
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}:", "cannot decompress the file", "truncated")


def test_parquet_named_csv(tmp_path, capsys):
    path = _parquet(tmp_path / "log.csv")
    code, _, err = stats(path, capsys)
    assert_user_error(code, err, f"{path}:", "looks like a Parquet file", "--format parquet")


# --------------------------------------------------------------------------- encodings


def test_encoding_error_names_the_cli_flag_which_then_reads_the_file(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_bytes((GOOD + "caf\xe9,i1,1700000009\n").encode("latin-1"))
    code, _, err = stats(path, capsys)
    assert_user_error(
        code, err, f"{path}, line 8:", "invalid utf-8 byte 0xe9", "--encoding latin-1"
    )
    code, out, err = stats(path, capsys, "--encoding", "latin-1")
    assert code == 0, err
    assert "4 users, 4 items, 7 events" in out


def test_unknown_or_unsupported_encoding_flag(tmp_path, capsys):
    # Before: exit 1 with a LookupError traceback; utf-16 failed on line 2.
    path = tmp_path / "log.csv"
    path.write_text(GOOD)
    code, _, err = stats(path, capsys, "--encoding", "nonesuch")
    assert_user_error(code, err, "unknown text encoding 'nonesuch'")
    code, _, err = stats(path, capsys, "--encoding", "utf-16")
    assert_user_error(code, err, "encoding 'utf-16' is not read", "convert the file to UTF-8")


def test_report_path_that_cannot_be_written_is_exit_2(tmp_path, capsys):
    # Before: exit 1, FileExistsError traceback (the --json folder is a file).
    path = tmp_path / "log.csv"
    path.write_text(GOOD)
    code, _, err = stats(path, capsys, "--json", str(path / "stats.json"))
    assert_user_error(code, err, "File exists", str(path))


# --------------------------------------------------------------------------- the bench


def test_subprocess_exit_code_and_stderr(tmp_path):
    # The shell's view: exit code 2 and one line on stderr.
    path = tmp_path / "log.csv"
    path.write_bytes(gzip.compress(GOOD.encode()))
    result = subprocess.run(
        [sys.executable, "-m", "sasrec.cli", "data", "stats", "--data", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"sasrec data stats: error: {path}: looks gzip-compressed (starts with 0x1f8b); "
        "decompress it or name it log.csv.gz"
    ]


@pytest.mark.slow
def test_hostile_files_bench_passes(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "hostile_files.py"), "--out", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failing" in result.stdout
