"""Training examples: left-padded windows of length ``max_len`` over every event.

A training sequence ``s_1..s_n`` has ``n - 1`` targets ``s_2..s_n``, each
predicted from the items before it. Windows are anchored at the most recent
event and step back by ``max_len`` (stride ``max_len``), so every target appears
in exactly one window and a sequence gives ``ceil((n - 1) / max_len)`` windows.
The window ending at target ``s_j`` holds inputs ``s_{j-max_len}..s_{j-1}`` and
positives ``s_{j-max_len+1}..s_j``; positions before ``s_1`` are padding
(``PAD_ID``) in both arrays, so only the oldest window of a user is padded::

    s = [1, 2, 3, 4, 5, 6], max_len = 3: windows end at s_6 and s_3
    inputs   [[0, 1, 2], [3, 4, 5]]
    positives [[0, 2, 3], [4, 5, 6]]
"""

from __future__ import annotations

import numpy as np

from sasrec.data.user_sequences import UserSequences
from sasrec.padding import PAD_ID

_CHUNK_WINDOWS = 1 << 16


def window_counts(lengths: np.ndarray, max_len: int, newest_only: bool = False) -> np.ndarray:
    """Windows per sequence: ``ceil((n - 1) / max_len)`` (0 when ``n < 2``), at most 1 newest only.

    Example:
        >>> window_counts(np.array([1, 2, 4, 7]), 3).tolist()
        [0, 1, 1, 2]
        >>> window_counts(np.array([1, 2, 4, 7]), 3, newest_only=True).tolist()
        [0, 1, 1, 1]
    """
    targets = np.maximum(np.asarray(lengths, dtype=np.int64) - 1, 0)
    counts = -(-targets // max_len)
    return np.minimum(counts, 1) if newest_only else counts


def window_owners(lengths: np.ndarray, max_len: int, newest_only: bool = False) -> np.ndarray:
    """``int64 (W,)`` the sequence of every window of :func:`training_windows`, in its order.

    Example:
        >>> window_owners(np.array([7, 1, 2]), 3).tolist()
        [0, 0, 2]
    """
    counts = window_counts(lengths, max_len, newest_only)
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)


def training_windows(
    seqs: UserSequences, max_len: int, newest_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """All training windows of all users (see the module docstring).

    Args:
        seqs: Training sequences (e.g. ``split.train``).
        max_len: Window length ``L``.
        newest_only: Only each user's newest window (its last ``L``
            targets), as the SASRec reference trains: a user's older
            targets never train then.

    Returns:
        ``(inputs, positives)``, both ``int32 (W, L)``, left-padded, most
        recent in the last column; ``positives[w, c]`` is the item after
        ``inputs[w, c]``. Windows are grouped by user, oldest first.

    Example:
        >>> seqs = UserSequences(["u"], [0, 6], [1, 2, 3, 4, 5, 6])
        >>> inputs, positives = training_windows(seqs, 3)
        >>> inputs.tolist(), positives.tolist()
        ([[0, 1, 2], [3, 4, 5]], [[0, 2, 3], [4, 5, 6]])
        >>> [a.tolist() for a in training_windows(seqs, 3, newest_only=True)]
        [[[3, 4, 5]], [[4, 5, 6]]]
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, received max_len={max_len}")
    lengths = seqs.lengths
    counts = window_counts(lengths, max_len, newest_only)
    total = int(counts.sum())
    inputs = np.full((total, max_len), PAD_ID, dtype=np.int32)
    positives = np.full((total, max_len), PAD_ID, dtype=np.int32)
    if total == 0:
        return inputs, positives
    owner = np.repeat(np.arange(len(seqs), dtype=np.int64), counts)
    # k-th window from the oldest of its user; the newest ends at the last event.
    first_window = np.cumsum(counts) - counts
    k = np.arange(total, dtype=np.int64) - np.repeat(first_window, counts)
    from_newest = counts[owner] - 1 - k
    start = seqs.offsets[:-1][owner]
    # Global index of the positive in the last column of each window.
    last_target = seqs.offsets[1:][owner] - 1 - from_newest * max_len
    columns = np.arange(max_len, dtype=np.int64)[None, :]
    items = seqs.items
    for lo in range(0, total, _CHUNK_WINDOWS):
        hi = min(lo + _CHUNK_WINDOWS, total)
        target = last_target[lo:hi, None] - (max_len - 1) + columns
        valid = target >= start[lo:hi, None] + 1
        safe = np.where(valid, target, 1)
        inputs[lo:hi] = np.where(valid, items[safe - 1], PAD_ID)
        positives[lo:hi] = np.where(valid, items[safe], PAD_ID)
    return inputs, positives
