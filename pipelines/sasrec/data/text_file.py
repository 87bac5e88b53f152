"""A text log as bytes and lines: what its first bytes say, line access, errors that name a line.

The readers (:mod:`sasrec.data.readers`) parse with Arrow; when Arrow fails,
or before it runs, these helpers look at the raw bytes so the error can say
what the file is (compressed, UTF-16, binary) and which line is at fault.

Example:
    >>> from pathlib import Path
    >>> is_compressed(Path("log.csv.gz")), is_compressed(Path("log.csv"))
    (True, False)
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from sasrec.data.errors import DataError
from sasrec.data.reader_options import ReaderOptions

# Arrow's readers need a whole line inside one block: longer lines are an error.
MAX_LINE_BYTES = 1 << 24

# Leading bytes of files that are not text, and what to tell the user.
_MAGIC = (
    (b"\x1f\x8b", "gzip", ".gz"),
    (b"BZh", "bzip2", ".bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd", ".zst"),
    (b"\x04\x22\x4d\x18", "lz4", ".lz4"),
    (b"\xfd7zXZ\x00", "xz", None),
    (b"PK\x03\x04", "zip", None),
    (b"PAR1", "parquet", None),
)

_SUFFIX_CODEC = {".gz": "gzip", ".bz2": "bzip2", ".zst": "zstd", ".lz4": "lz4"}

# Maps the data row index of an Arrow table to a (label, number) location.
Locator = Callable[[list[int]], list[tuple[str, int]]]

COMPRESSION_SUFFIXES = tuple(_SUFFIX_CODEC)


def check_text_bytes(path: Path, fmt: str, opts: ReaderOptions) -> None:
    """Names compressed, archived, Parquet and UTF-16 files given as text."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    suffix = path.suffix.lower()
    expected = _SUFFIX_CODEC.get(suffix)
    kind = next(((name, ext) for magic, name, ext in _MAGIC if head.startswith(magic)), None)
    if expected:
        if kind is None or kind[0] != expected:
            found = f"{kind[0]} data" if kind else f"bytes {head[:4]!r}"
            raise DataError(
                f"is named {suffix} but is not {expected}-compressed (starts with {found}); "
                f"rename it to what it is",
                path=path,
            )
        return
    if kind is None:
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise DataError(
                "looks UTF-16 encoded (starts with a UTF-16 byte-order mark); convert it to "
                "UTF-8, e.g. iconv -f UTF-16 -t UTF-8",
                path=path,
            )
        return
    name, ext = kind
    if name == "parquet":
        raise DataError(
            f"looks like a Parquet file (starts with 'PAR1') but is read as {fmt}; "
            f"name it {path.stem}.parquet or pass --format parquet (format='parquet' in Python)",
            path=path,
        )
    if ext:
        advice = f"decompress it or name it {path.name}{ext}"
    elif name == "zip":
        advice = "it is a zip archive (or a spreadsheet): extract or export the log as text"
    else:
        advice = f"decompress it ({name} is not read directly)"
    raise DataError(
        f"looks {name}-compressed (starts with 0x{head[:2].hex()}); {advice}", path=path
    )


def open_stream(path: Path) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="detect")


def iter_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """Yields ``(line_number, byte_offset, raw_line_without_newline)``.

    Raises:
        DataError: A line longer than 16 MiB, or a compressed stream that
            cannot be decompressed (naming the last line read).
    """
    with open_stream(path) as stream:
        number, offset, rest = 0, 0, b""
        while True:
            try:
                chunk = stream.read(1 << 20)
            except (OSError, pa.ArrowException) as err:
                where = f"after line {number}" if number else "at the start"
                raise DataError(
                    f"cannot decompress the file {where} ({err}): it is damaged or truncated",
                    path=path,
                ) from None
            if not chunk:
                break
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for raw in parts:
                number += 1
                _check_line_length(path, number, len(raw))
                yield number, offset, raw
                offset += len(raw) + 1
            _check_line_length(path, number + 1, len(rest))
        if rest:
            yield number + 1, offset, rest


def _check_line_length(path: Path, number: int, length: int) -> None:
    if length > MAX_LINE_BYTES:
        raise DataError(
            f"line is longer than {MAX_LINE_BYTES >> 20} MiB "
            f"({'at least ' if length else ''}{length:,} bytes): no interaction fits that; "
            "a missing line break or an unclosed quote?",
            path=path,
            line=number,
        )


def head_lines(path: Path, count: int, encoding: str) -> list[str]:
    """The first ``count`` non-empty lines (decoded, BOM stripped)."""
    lines: list[str] = []
    for number, offset, raw in iter_lines(path):
        if not raw.strip(b"\r"):
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if b"\x00" in raw:
            raise nul_error(path, number, offset, raw)
        try:
            lines.append(raw.rstrip(b"\r").decode(encoding))
        except UnicodeDecodeError as err:
            raise decode_error(path, number, offset, raw, err, encoding) from None
        if len(lines) >= count:
            break
    return lines


def decode_error(
    path: Path, number: int, offset: int, raw: bytes, err: UnicodeDecodeError, encoding: str
) -> DataError:
    bad = raw[err.start : err.start + 1]
    return DataError(
        f"invalid {encoding} byte 0x{bad.hex()} at byte offset {offset + err.start} "
        f"(column {err.start + 1} of the line); if the file is not {encoding}, pass its "
        "encoding with --encoding CODEC, e.g. --encoding latin-1 (encoding=... in Python)",
        path=path,
        line=number,
    )


def nul_error(path: Path, number: int, offset: int, raw: bytes) -> DataError:
    at = raw.index(b"\x00")
    return DataError(
        f"NUL byte (0x00) at byte offset {offset + at} (column {at + 1} of the line): "
        "text logs have none; the file is binary, or UTF-16/UTF-32 (convert it to UTF-8)",
        path=path,
        line=number,
    )


def first_nul(path: Path) -> DataError | None:
    """The first line holding a NUL byte (error path only)."""
    for number, offset, raw in iter_lines(path):
        if b"\x00" in raw:
            return nul_error(path, number, offset, raw)
    return None


def data_line_locator(path: Path, skip_rows: int) -> Locator:
    """Data row ``k`` is the ``k + skip_rows``-th non-empty physical line."""

    def locate(rows: list[int]) -> list[tuple[str, int]]:
        wanted = sorted({r + skip_rows for r in rows})
        found: dict[int, int] = {}
        index = -1
        pos = 0
        for number, _, raw in iter_lines(path):
            if not raw.strip(b"\r"):
                continue
            index += 1
            while pos < len(wanted) and wanted[pos] == index:
                found[index] = number
                pos += 1
            if pos == len(wanted):
                break
        return [("line", found.get(r + skip_rows, -1)) for r in rows]

    return locate


def is_compressed(path: Path) -> bool:
    return path.suffix.lower() in COMPRESSION_SUFFIXES
