"""Hostile input files against ``sasrec data stats``: exit 0 or 2, never a traceback.

Writes a folder of malformed and borderline interaction logs (a 50 MiB line,
nested Parquet columns, a damaged row group, compressed files under a ``.csv``
name, NUL bytes, UTF-16, broken JSON lines, out-of-range and mixed-unit
timestamps, ...), runs ``python -m sasrec.cli data stats --data FILE`` on each
in a subprocess (k-core off, ``--json`` into an empty per-case directory that
is also the working directory) and prints a Markdown table: the file and
flags, the exit code and the expected one, whether a traceback appeared,
what was left behind in the working/output directory or next to the input,
and the first line of stderr.

Usage::

    .venv/bin/python bench/hostile_files.py               # files in a temp dir
    .venv/bin/python bench/hostile_files.py --out /tmp/hostile

Exits 1 if any case prints a traceback, exits with a code other than 0/2,
differs from its expected exit code, or leaves a file behind (a failed run
must not leave a partial report). ``tests/data/test_hostile_inputs.py`` runs
it as a slow test (``pytest -m slow``).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HEADER = "user_id,item_id,timestamp\n"
ROWS = "".join(f"u{i % 3},i{i % 4},{1_700_000_000 + i}\n" for i in range(6))
GOOD = HEADER + ROWS
JSON_ROW = '{{"user_id": {u}, "item_id": {i}, "timestamp": {t}}}\n'


def _parquet(path: Path, rows: int = 6, row_group_size: int | None = None, **columns) -> None:
    table = {
        "user_id": [f"u{i % 3}" for i in range(rows)],
        "item_id": [f"i{i % 4}" for i in range(rows)],
        "timestamp": [1_700_000_000 + i for i in range(rows)],
    }
    table.update(columns)
    pq.write_table(pa.table(table), path, row_group_size=row_group_size, compression="NONE")


def _damaged_row_group(path: Path) -> None:
    _parquet(path, rows=300, row_group_size=100)
    data = bytearray(path.read_bytes())
    start = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
    data[start : start + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))


def _truncated_parquet(path: Path) -> None:
    _parquet(path)
    path.write_bytes(path.read_bytes()[:-20])


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("log.csv", GOOD)


def _text(text: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    return lambda path: path.write_bytes(text.encode(encoding))


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _parquet_with(**columns) -> Callable[[Path], None]:
    return lambda path: _parquet(path, **columns)


MANY = "".join(f"u{i},i{i * 7},{1_700_000_000 + i}\n" for i in range(2000))
SECONDS_THEN_MS = HEADER + ROWS + "u1,i1,1700000010000\nu2,i2,1700000011000\n"
MS_THEN_SECONDS = (
    HEADER + "".join(f"u{i % 2},i{i},{(1_700_000_000 + i) * 1000}\n" for i in range(6))
) + "u0,i9,1700000010\n"

# (file name, writer, extra flags, expected exit code)
CASES: list[tuple[str, Callable[[Path], None], tuple[str, ...], int]] = [
    ("good.csv", _text(GOOD), (), 0),
    # Item 7: long lines.
    ("line_50mib.csv", _text(HEADER + "u1," + "x" * (50 << 20) + ",1700000000\n" + ROWS), (), 2),
    ("field_past_csv_limit.csv", _text(HEADER + "u9," + "x" * 131_073 + ",1\n" + ROWS), (), 0),
    ("quoted_field_past_csv_limit.csv", _text(HEADER + 'u9,"' + "x" * 131_073 + '",1\n'), (), 0),
    ("line_17mib_after_head.csv", _text(GOOD * 5 + "u1," + "x" * (17 << 20) + ",1\n"), (), 2),
    # Item 7: Parquet.
    ("list_id.parquet", _parquet_with(user_id=pa.array([[1, 2], [3], [4], [5], [6], [7]])), (), 2),
    ("struct_item.parquet", _parquet_with(item_id=pa.array([{"a": i} for i in range(6)])), (), 2),
    (
        "map_user.parquet",
        _parquet_with(user_id=pa.array([[("k", 1)]] * 6, pa.map_(pa.string(), pa.int64()))),
        (),
        2,
    ),
    ("list_timestamp.parquet", _parquet_with(timestamp=pa.array([[i] for i in range(6)])), (), 2),
    (
        "list_rating.parquet",
        _parquet_with(rating=pa.array([[1.0]] * 6)),
        ("--rating-col", "rating"),
        2,
    ),
    ("damaged_row_group.parquet", _damaged_row_group, (), 2),
    ("truncated.parquet", _truncated_parquet, (), 2),
    (
        "binary_ids_not_utf8.parquet",
        _parquet_with(user_id=pa.array([b"a", b"b", b"c", b"\xff", b"d", b"e"], pa.binary())),
        (),
        2,
    ),
    (
        "int64_nanoseconds.parquet",
        _parquet_with(timestamp=pa.array([1_700_000_000 * 10**9 + i for i in range(6)])),
        (),
        0,
    ),
    (
        "empty_rows.parquet",
        _parquet_with(
            **{k: pa.array([], pa.string()) for k in ("user_id", "item_id", "timestamp")}
        ),
        (),
        2,
    ),
    # Item 7: other malformed shapes.
    ("empty.csv", _text(""), (), 2),
    ("header_only.csv", _text(HEADER), (), 2),
    ("blank_lines.csv", _text("\n\n\n"), (), 2),
    ("missing_column.csv", _text("user_id,item_id\nu1,i1\n"), (), 2),
    ("short_line.csv", _text(GOOD + "u1,i1\n"), (), 2),
    ("cr_line_endings.csv", _text(GOOD.replace("\n", "\r")), (), 2),
    ("crlf_line_endings.csv", _text(GOOD.replace("\n", "\r\n")), (), 0),
    ("utf8_bom.csv", _text("\ufeff" + GOOD), (), 0),
    ("one_column.csv", _text("user_id\nu1\nu2\n"), (), 2),
    ("20000_columns.csv", _text(",".join(f"c{i}" for i in range(20_000)) + "\n"), (), 2),
    ("null_line.jsonl", _text(JSON_ROW.format(u='"u"', i='"a"', t=1) + "null\n"), (), 0),
    ("unclosed_quote.csv", _text(GOOD + 'u1,"i1,1700000000\n' + ROWS), (), 2),
    ("duplicate_header.csv", _text("user_id,user_id,item_id,timestamp\nu,v,i,1\n"), (), 2),
    ("binary_garbage.csv", _bytes(bytes(range(256)) * 64), (), 2),
    ("png_image.csv", _bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))), (), 2),
    ("nul_in_id.csv", _text(GOOD.replace("u1,i1", "u\x001,i1")), (), 2),
    ("nul_after_head.csv", _text(GOOD * 5 + "u\x009,i1,1\n"), (), 2),
    ("utf16_bom.csv", _text(GOOD, "utf-16"), (), 2),
    ("mixed_id_types.csv", _text(HEADER + "1,1,1700000000\n2,2.5,1700000001\nabc,x,1\n"), (), 0),
    (
        "mixed_id_types.jsonl",
        _text(JSON_ROW.format(u=1, i='"a"', t=1) + JSON_ROW.format(u='"x"', i=2, t=2)),
        (),
        0,
    ),
    (
        "object_id.jsonl",
        _text(JSON_ROW.format(u='"u"', i='"a"', t=1) + JSON_ROW.format(u='{"a": 1}', i='"b"', t=2)),
        (),
        2,
    ),
    (
        "broken_line.jsonl",
        _text(JSON_ROW.format(u='"u"', i='"a"', t=1) + '{"user_id": "u", "item_id\n'),
        (),
        2,
    ),
    ("array_line.jsonl", _text("[1, 2]\n"), (), 2),
    # Item 12: compressed files, encodings.
    ("gzip.csv", _bytes(gzip.compress(GOOD.encode())), (), 2),
    ("bzip2.csv", _bytes(bz2.compress(GOOD.encode())), (), 2),
    ("xz.csv", _bytes(lzma.compress(GOOD.encode())), (), 2),
    ("zip.csv", _zip, (), 2),
    ("zstd.csv", _bytes(pa.compress(GOOD.encode(), codec="zstd", asbytes=True)), (), 2),
    ("good.csv.gz", _bytes(gzip.compress(GOOD.encode())), (), 0),
    ("not_gzip.csv.gz", _text(GOOD), (), 2),
    ("truncated.csv.gz", _bytes(gzip.compress((HEADER + MANY).encode())[:3000]), (), 2),
    ("parquet_named.csv", _parquet_with(), (), 2),
    ("latin1.csv", _text(GOOD + "caf\xe9,i1,1700000009\n", "latin-1"), (), 2),
    ("latin1.csv", None, ("--encoding", "latin-1"), 0),
    ("good.csv", None, ("--encoding", "nonesuch"), 2),
    ("good.csv", None, ("--encoding", "utf-16"), 2),
    # Item 10: timestamps.
    ("ts_negative.csv", _text(GOOD + "u1,i9,-5\n"), (), 0),
    ("ts_negative.csv", None, ("--strict",), 2),
    ("ts_year_9999.csv", _text(GOOD + "u1,i9,253402300799\n"), (), 0),
    ("ts_year_9999.csv", None, ("--strict",), 2),
    ("ts_1e23.csv", _text(GOOD + "u1,i9,1e23\n"), (), 0),
    ("ts_1e23.csv", None, ("--strict",), 2),
    ("ts_seconds_then_ms.csv", _text(SECONDS_THEN_MS), (), 0),
    ("ts_seconds_then_ms.csv", None, ("--strict",), 2),
    ("ts_ms_then_seconds.csv", _text(MS_THEN_SECONDS), (), 0),
    ("ts_all_unparseable.csv", _text(HEADER + "u1,i1,soon\n"), (), 2),
]


def run_case(data: Path, flags: tuple[str, ...], work: Path) -> dict[str, object]:
    """One ``sasrec data stats`` run with ``work`` as working and output directory."""
    work.mkdir(parents=True)
    report = work / "stats.json"
    command = [sys.executable, "-m", "sasrec.cli", "data", "stats", "--data", str(data)]
    command += ["--min-user", "1", "--min-item", "1", "--json", str(report), *flags]
    result = subprocess.run(command, capture_output=True, text=True, cwd=work, timeout=600)
    left = sorted(p.name for p in work.iterdir() if not (result.returncode == 0 and p == report))
    lines = result.stderr.strip().splitlines()
    return {
        "code": result.returncode,
        "traceback": "Traceback (most recent call last)" in result.stderr,
        "left": left,
        "stderr": lines[0] if lines else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the files (default: a temp dir)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="hostile-"))
    files, runs = root / "files", root / "runs"
    for folder in (files, runs):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    for name, write, _, _ in CASES:
        if write is not None:
            write(files / name)
    written = sorted(os.listdir(files))

    env_note = f"files in {files}"
    print(f"sasrec data stats on {len(CASES)} hostile files ({env_note})\n")
    print("| file | flags | exit | expected | traceback | left behind | first line of stderr |")
    print("|---|---|---|---|---|---|---|")
    failing = 0
    for index, (name, _, flags, expected) in enumerate(CASES):
        outcome = run_case(files / name, flags, runs / f"{index:02d}")
        code = outcome["code"]
        bad = (
            outcome["traceback"] or code not in (0, 2) or code != expected or bool(outcome["left"])
        )
        failing += bad
        stderr = str(outcome["stderr"]).replace(str(files) + "/", "").replace("|", "\\|")
        if len(stderr) > 150:
            stderr = stderr[:147] + "..."
        print(
            f"| {name} | {' '.join(flags) or '-'} | {code}{' FAIL' if bad else ''} | {expected} "
            f"| {'yes' if outcome['traceback'] else 'no'} | {', '.join(outcome['left']) or '-'} "
            f"| {stderr or '-'} |"
        )
    stray = sorted(set(os.listdir(files)) - set(written))
    if stray:
        failing += 1
        print(f"\nleft next to the input files: {', '.join(stray)}")
    print(f"\n{len(CASES)} cases, {failing} failing")
    if args.out is None:
        shutil.rmtree(root)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
