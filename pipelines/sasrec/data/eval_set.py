"""Evaluation cases: one (history, target) pair per evaluated user."""

from __future__ import annotations

import numpy as np

from sasrec.data.user_sequences import UserSequences
from sasrec.padding import PAD_ID


def left_pad_csr(offsets: np.ndarray, items: np.ndarray, max_len: int) -> np.ndarray:
    """Vectorised ``sasrec.padding.pad_left`` for CSR sequences.

    Same semantics as :func:`sasrec.padding.pad_left` (left padding with
    ``PAD_ID``, the most recent ``max_len`` items kept, most recent in the last
    column); tests check the two agree.

    Example:
        >>> left_pad_csr(np.array([0, 2, 6]), np.array([3, 4, 1, 2, 5, 6]), 3).tolist()
        [[0, 3, 4], [2, 5, 6]]
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, received max_len={max_len}")
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = offsets.size - 1
    out = np.full((rows, max_len), PAD_ID, dtype=np.int32)
    if rows == 0 or items.size == 0:
        return out
    ends = offsets[1:]
    starts = np.maximum(offsets[:-1], ends - max_len)
    # Column c of row r holds item ends[r] - max_len + c when that is >= starts[r].
    source = ends[:, None] - max_len + np.arange(max_len)[None, :]
    valid = source >= starts[:, None]
    out[valid] = np.asarray(items)[source[valid]]
    return out


class EvalSet:
    """Histories (CSR) and next-item targets of the evaluated users.

    Args:
        histories: Each evaluated user's input sequence, oldest first.
        targets: ``int32 (U,)`` the item to predict after each history.
        target_timestamps: ``float64 (U,)`` when the target happened.

    Example:
        >>> hist = UserSequences(["u1"], [0, 2], [4, 9])
        >>> cases = EvalSet(hist, [7], [30.0])
        >>> cases.history(0).tolist(), int(cases.targets[0]), cases.padded(3).tolist()
        ([4, 9], 7, [[0, 4, 9]])
    """

    def __init__(
        self,
        histories: UserSequences,
        targets: np.ndarray | list[int],
        target_timestamps: np.ndarray | list[float],
    ) -> None:
        self.histories = histories
        self.targets = np.asarray(targets, dtype=np.int32)
        self.target_timestamps = np.asarray(target_timestamps, dtype=np.float64)
        if self.targets.shape != (len(histories),) or self.target_timestamps.shape != (
            len(histories),
        ):
            raise ValueError(
                f"targets and target_timestamps need one entry per history ({len(histories)}), "
                f"received {self.targets.shape} and {self.target_timestamps.shape}"
            )

    def __len__(self) -> int:
        return len(self.histories)

    @property
    def user_ids(self) -> np.ndarray:
        """Raw ids of the evaluated users."""
        return self.histories.user_ids

    def history(self, i: int) -> np.ndarray:
        """The i-th evaluated user's history (int32 item indices, oldest first)."""
        return self.histories[i]

    def padded(self, max_len: int) -> np.ndarray:
        """``int32 (U, max_len)`` left-padded histories (the model's input)."""
        return left_pad_csr(self.histories.offsets, self.histories.items, max_len)

    def __repr__(self) -> str:
        return f"EvalSet(users={len(self)}, history_events={self.histories.num_events})"
