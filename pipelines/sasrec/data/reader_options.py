"""How to read one interaction file: format, delimiter and column mapping."""

from __future__ import annotations

import codecs
import dataclasses
from typing import Any

FORMATS = ("auto", "csv", "parquet", "json")
TIMESTAMP_UNITS = ("auto", "s", "ms", "us", "ns", "iso")

ColumnRef = str | int


@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """Options of :func:`sasrec.data.readers.read_interactions`.

    Column references are header names (``str``) or 0-based field positions
    (``int``, for files without a header).

    Args:
        format: ``"csv"`` (any delimited text, optionally ``.gz``), ``"parquet"``,
            ``"json"`` (JSON lines) or ``"auto"`` (from the file extension).
        sep: Field delimiter; several characters are allowed (``"::"``).
            ``None``: from the extension (``.csv`` comma, ``.tsv``/``.tab``/
            ``.inter`` tab, ``.dat`` ``::``), else sniffed from the first line.
        header: Whether the first line names the columns. ``None``: ``True``
            when the column references are names, ``False`` when positions.
        user: Column with the user id.
        item: Column with the item id.
        timestamp: Column with the event time, or ``None`` when the file has
            none: then the row number is the time (file order is time order).
        event: Optional column with the event type.
        rating: Optional column with a rating or weight.
        timestamp_unit: ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` (numbers since the
            epoch), ``"iso"`` (ISO-8601 strings; naive ones are UTC) or
            ``"auto"``: ISO strings are recognised, numbers are seconds unless
            their median is above 1e11 (then ms), 1e14 (us) or 1e17 (ns).
        encoding: Text encoding of delimited files (UTF-8 by default; invalid
            bytes are an error that names the line and byte offset). It must
            be ASCII-compatible (utf-8, latin-1, cp1252...): UTF-16/32 files
            are an error asking for a conversion to UTF-8.
        strict: Fail on the first bad timestamp (unparseable, outside
            1970-01-01 <= t < 2100-01-01, or in another unit than the rest of
            the column) instead of dropping it.
        optional_columns: Ignore ``timestamp``/``event``/``rating`` columns that
            the file does not have (a missing timestamp means file order).
        strip_type_suffix: Strip RecBole ``name:type`` suffixes from headers.
        default_file: File to read when the path is a directory.
        max_examples: How many bad values the report keeps as examples.

    Example:
        >>> opts = ReaderOptions(sep="\\t", user=0, item=1, timestamp=3)
        >>> opts.resolved_header()
        False
    """

    format: str = "auto"
    sep: str | None = None
    header: bool | None = None
    user: ColumnRef = "user_id"
    item: ColumnRef = "item_id"
    timestamp: ColumnRef | None = "timestamp"
    event: ColumnRef | None = None
    rating: ColumnRef | None = None
    timestamp_unit: str = "auto"
    encoding: str = "utf-8"
    strict: bool = False
    optional_columns: bool = False
    strip_type_suffix: bool = False
    default_file: str | None = None
    max_examples: int = 5

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, received format={self.format!r}")
        if self.timestamp_unit not in TIMESTAMP_UNITS:
            raise ValueError(
                f"timestamp_unit must be one of {TIMESTAMP_UNITS}, "
                f"received timestamp_unit={self.timestamp_unit!r}"
            )
        if self.sep is not None and (not isinstance(self.sep, str) or not self.sep):
            raise ValueError(f"sep must be a non-empty string, received sep={self.sep!r}")
        for name in ("user", "item", "timestamp", "event", "rating"):
            ref = getattr(self, name)
            if ref is None and name in ("user", "item"):
                raise ValueError(f"{name} column is required, received {name}=None")
            if ref is not None and not isinstance(ref, (str, int)):
                raise ValueError(f"{name} must be a column name or position, received {ref!r}")
            if isinstance(ref, int) and ref < 0:
                raise ValueError(f"{name} position must be >= 0, received {name}={ref}")
        self._check_encoding()
        if self.max_examples < 0:
            raise ValueError(f"max_examples must be >= 0, received {self.max_examples}")

    def _check_encoding(self) -> None:
        try:
            codec = codecs.lookup(self.encoding)
        except (LookupError, TypeError):
            raise ValueError(
                f"unknown text encoding {self.encoding!r} (--encoding / encoding=...); "
                "e.g. utf-8, latin-1, cp1252"
            ) from None
        if "\n,\t;|: ".encode(codec.name) != b"\n,\t;|: ":
            raise ValueError(
                f"encoding {self.encoding!r} is not read: the reader splits lines and fields "
                "on ASCII bytes; convert the file to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
            )

    def columns(self) -> dict[str, ColumnRef]:
        """Canonical name -> column reference, for the columns that are mapped."""
        mapping = {
            "user_id": self.user,
            "item_id": self.item,
            "timestamp": self.timestamp,
            "event": self.event,
            "rating": self.rating,
        }
        return {k: v for k, v in mapping.items() if v is not None}

    def resolved_header(self) -> bool:
        """Whether the file has a header line, resolving ``header=None``."""
        if self.header is not None:
            return self.header
        return not any(isinstance(ref, int) for ref in self.columns().values())

    def replace(self, **changes: Any) -> ReaderOptions:
        """A copy with some fields changed; unknown names raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown reader option(s) {unknown}; valid options: {sorted(known)}")
        return dataclasses.replace(self, **changes)
