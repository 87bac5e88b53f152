"""The one padding helper shared by training and serving.

Item id 0 is padding, real items are 1..N. Sequences are *left*-padded so the
most recent item always sits in the last column; position ids are anchored at
that last column (see ``SASRec``), so trimming leading padding never changes
what the model computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

PAD_ID = 0


def pad_left(sequences: Iterable[Sequence[int]], max_len: int) -> np.ndarray:
    """Left-pads (and left-truncates) integer sequences to ``max_len`` columns.

    Longer sequences keep their ``max_len`` most recent (rightmost) items.

    Args:
        sequences: Item-id sequences, oldest first, ids in 1..N.
        max_len: Number of columns of the result.

    Returns:
        ``int32`` array of shape ``(len(sequences), max_len)``.

    Example:
        >>> pad_left([[3, 4], [1, 2, 5, 6]], 3).tolist()
        [[0, 3, 4], [2, 5, 6]]
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, received max_len={max_len}")
    seqs = list(sequences)
    out = np.zeros((len(seqs), max_len), dtype=np.int32)
    for row, seq in enumerate(seqs):
        tail = np.asarray(seq, dtype=np.int64)[-max_len:]
        if tail.size:
            out[row, max_len - tail.size :] = tail
    return out


def trim_leading_padding(batch: np.ndarray, multiple: int = 1) -> np.ndarray:
    """Drops the all-padding leading columns of a left-padded batch.

    Args:
        batch: ``(B, T)`` left-padded ids.
        multiple: Keep a column count that is a multiple of this (bounded by
            ``T``), so compiled functions see few distinct shapes.

    Returns:
        A view ``batch[:, T - t:]`` where ``t`` covers the longest row.
    """
    batch = np.asarray(batch)
    total = batch.shape[1]
    nonzero = (batch != PAD_ID).any(axis=0)
    first = int(np.argmax(nonzero)) if nonzero.any() else total - 1
    width = total - first
    if multiple > 1:
        width = min(total, -(-width // multiple) * multiple)
    return batch[:, total - width :]
