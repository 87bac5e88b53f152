"""Private helpers: item-id sequences as CSR (offsets + flat items), validated once.

Every protocol and baseline accepts either a list of 1-D id arrays or a
left-padded ``(U, L)`` array; both are turned into the same CSR form so the
rest of the code is vectorised over flat arrays. Id 0 is padding and is
dropped wherever it appears (left padding is the only place it may occur).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from sasrec.padding import PAD_ID, pad_left

Sequences = Sequence[ArrayLike] | np.ndarray


def check_num_items(num_items: int) -> int:
    if isinstance(num_items, bool) or not isinstance(num_items, int | np.integer) or num_items < 1:
        raise ValueError(f"num_items must be an integer >= 1, received num_items={num_items!r}")
    return int(num_items)


def check_ids(values: np.ndarray, num_items: int, name: str, low: int = 0) -> None:
    """Raises if ``values`` is not integer or has an id outside ``low..num_items``."""
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must hold integer item ids, received dtype {values.dtype}")
    if not values.size:
        return
    bad = np.flatnonzero((values < low) | (values > num_items))
    if bad.size:
        where = np.unravel_index(bad[0], values.shape) if values.ndim > 1 else (int(bad[0]),)
        where_txt = ", ".join(str(int(i)) for i in where)
        raise ValueError(
            f"{name}[{where_txt}] = {int(values.flat[bad[0]])} is not a valid item id "
            f"(expected {low}..{num_items})"
        )


def to_csr(sequences: Sequences, num_items: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Converts sequences (list of 1-D arrays or padded 2-D array) to CSR.

    Returns:
        ``(offsets int64 (U + 1,), items int64 (total,))`` with padding removed;
        row ``u`` is ``items[offsets[u]:offsets[u + 1]]``, oldest first.
    """
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        check_ids(sequences, num_items, name)
        nonzero = sequences != PAD_ID
        lengths = nonzero.sum(axis=1)
        items = sequences[nonzero].astype(np.int64)
    else:
        if isinstance(sequences, np.ndarray) and sequences.ndim != 1:
            raise ValueError(
                f"{name} must be a list of 1-D arrays or a 2-D padded array, "
                f"received an array of shape {sequences.shape}"
            )
        rows = [np.asarray(s) for s in sequences]
        for u, row in enumerate(rows):
            if row.ndim != 1:
                raise ValueError(f"{name}[{u}] must be 1-D, received shape {row.shape}")
            if row.size and not np.issubdtype(row.dtype, np.integer):
                raise ValueError(f"{name}[{u}] must hold integer item ids, received {row.dtype}")
        raw_lengths = np.fromiter((r.size for r in rows), dtype=np.int64, count=len(rows))
        flat = (
            np.concatenate([r.astype(np.int64, copy=False) for r in rows])
            if rows
            else np.zeros(0, dtype=np.int64)
        )
        if flat.size:
            bad = np.flatnonzero((flat < 0) | (flat > num_items))
            if bad.size:
                row_of = np.searchsorted(np.cumsum(raw_lengths), bad[0], side="right")
                col = bad[0] - (np.cumsum(raw_lengths)[row_of] - raw_lengths[row_of])
                raise ValueError(
                    f"{name}[{int(row_of)}][{int(col)}] = {int(flat[bad[0]])} is not a valid "
                    f"item id (expected 0..{num_items}, 0 = padding)"
                )
        keep = flat != PAD_ID
        row_ids = np.repeat(np.arange(len(rows)), raw_lengths)
        lengths = np.bincount(row_ids[keep], minlength=len(rows))
        items = flat[keep]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, items


def check_csr(
    offsets: ArrayLike, items: ArrayLike, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validates a user-supplied CSR pair and drops padding ids."""
    offsets = np.asarray(offsets)
    items = np.asarray(items)
    if offsets.ndim != 1 or offsets.size < 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"offsets must be a 1-D integer array, received shape {offsets.shape}")
    if items.ndim != 1:
        raise ValueError(f"items must be 1-D, received shape {items.shape}")
    if offsets[0] != 0 or offsets[-1] != items.size or np.any(np.diff(offsets) < 0):
        raise ValueError(
            "offsets must start at 0, be non-decreasing and end at len(items)="
            f"{items.size}, received offsets[0]={int(offsets[0])}, offsets[-1]={int(offsets[-1])}"
        )
    check_ids(items, num_items, "items")
    lengths = np.diff(offsets).astype(np.int64)
    items = items.astype(np.int64)
    keep = items != PAD_ID
    if not keep.all():
        row_ids = np.repeat(np.arange(lengths.size), lengths)
        lengths = np.bincount(row_ids[keep], minlength=lengths.size)
        items = items[keep]
    out = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out, items


def fit_input_to_csr(
    sequences: Sequences | None,
    offsets: ArrayLike | None,
    items: ArrayLike | None,
    num_items: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Resolves the two accepted ``fit`` inputs (sequences, or offsets + items)."""
    if sequences is not None:
        if offsets is not None or items is not None:
            raise ValueError("pass either sequences or offsets + items, not both")
        return to_csr(sequences, num_items, "sequences")
    if offsets is None or items is None:
        raise ValueError("fit needs sequences, or both offsets and items (CSR)")
    return check_csr(offsets, items, num_items)


def gather_rows(
    offsets: np.ndarray, items: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flattens the CSR rows ``rows``: returns ``(position in rows, item)`` pairs."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    total = int(lengths.sum())
    row_pos = np.repeat(np.arange(rows.size), lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return row_pos, items[np.repeat(starts, lengths) + within]


def padded_batch(
    offsets: np.ndarray, items: np.ndarray, rows: np.ndarray, max_len: int
) -> np.ndarray:
    """Left-padded ``int32 (len(rows), max_len)`` histories of CSR rows ``rows``."""
    return pad_left((items[offsets[r] : offsets[r + 1]] for r in rows), max_len)


def check_histories(histories: ArrayLike, num_items: int) -> np.ndarray:
    """Validates the ``(B, L)`` left-padded batch a scorer receives."""
    histories = np.asarray(histories)
    if histories.ndim != 2:
        raise ValueError(f"histories must be 2-D (B, L), received shape {histories.shape}")
    check_ids(histories, num_items, "histories")
    return histories
