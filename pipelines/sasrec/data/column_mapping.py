"""Canonical column names <-> the names (or positions) in a log file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sasrec.data.columns import EVENT, RATING, TIMESTAMP
from sasrec.data.errors import DataError
from sasrec.data.reader_options import ReaderOptions

_SHOWN_COLUMNS = 20  # column names listed in a "no such column" error


def row_locator(rows: list[int]) -> list[tuple[str, int]]:
    return [("row", r + 1) for r in rows]


def resolve_columns(
    path: Path, opts: ReaderOptions, names: list[str], positional: bool
) -> dict[str, str]:
    """Canonical name -> name in the file; raises for a missing required column."""
    lookup = {n: n for n in names}
    if opts.strip_type_suffix:
        for name in names:
            lookup.setdefault(name.split(":", 1)[0], name)
    resolved: dict[str, str] = {}
    for canonical, ref in opts.columns().items():
        if isinstance(ref, int):
            actual = names[ref] if ref < len(names) else None
        elif positional:
            raise DataError(
                f"the file has no header, so the {canonical} column must be given by "
                f"position (0-based), received {ref!r}",
                path=path,
            )
        else:
            actual = lookup.get(ref)
        if actual is None:
            optional = canonical in (TIMESTAMP, EVENT, RATING) and opts.optional_columns
            if optional:
                continue
            shown = (
                f"{len(names)} field(s) (positions 0..{len(names) - 1})"
                if positional
                else ", ".join(repr(n[:80]) for n in names[:_SHOWN_COLUMNS])
                + (f", ... ({len(names):,} columns)" if len(names) > _SHOWN_COLUMNS else "")
            )
            raise DataError(
                f"no {canonical} column {ref!r}; the file has columns: {shown}", path=path
            )
        if not positional and names.count(actual) > 1:
            fields = [i + 1 for i, n in enumerate(names) if n == actual]
            raise DataError(
                f"the header names the {canonical} column {actual!r} more than once "
                f"(fields {', '.join(map(str, fields))}); which one holds the {canonical}?",
                path=path,
                line=1,
            )
        resolved[canonical] = actual
    return resolved


def rename_columns(table: pa.Table, columns: dict[str, str]) -> pa.Table:
    return pa.table({canonical: table.column(actual) for canonical, actual in columns.items()})
