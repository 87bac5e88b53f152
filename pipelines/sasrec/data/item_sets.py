"""ItemSets: a set of items per row (user or window), with vectorised membership.

Negative sampling asks "is item i one of row r's items?" for every draw of a
batch at once. The sets are kept as one sorted ``int64`` array of keys
``row * (N + 1) + item``, so the question for any array of (row, item) pairs
is one ``np.searchsorted``: no Python loop, no per-row sets.
"""

from __future__ import annotations

import numpy as np

from sasrec.padding import PAD_ID


class ItemSets:
    """Item sets of ``R`` rows over items ``1..N``, queried with :meth:`contains`.

    Args:
        keys: Sorted, unique ``int64`` keys ``row * (num_items + 1) + item``.
        num_items: N.

    Example:
        >>> sets = ItemSets.from_rows(np.array([[0, 3, 1, 3], [2, 0, 0, 0]]), num_items=5)
        >>> sets.contains(np.array([0, 0, 1, 1]), np.array([3, 2, 2, 3])).tolist()
        [True, False, True, False]
    """

    def __init__(self, keys: np.ndarray, num_items: int) -> None:
        self.keys = np.asarray(keys, dtype=np.int64)
        self.num_items = int(num_items)

    @classmethod
    def from_rows(cls, rows: np.ndarray, num_items: int) -> ItemSets:
        """The items of each row of a 2-D id array (``PAD_ID`` entries ignored)."""
        rows = np.asarray(rows, dtype=np.int64)
        owners = np.broadcast_to(np.arange(len(rows), dtype=np.int64)[:, None], rows.shape)
        real = rows != PAD_ID
        return cls._from_pairs(owners[real], rows[real], num_items)

    @classmethod
    def from_csr(cls, offsets: np.ndarray, items: np.ndarray, num_items: int) -> ItemSets:
        """The items of each CSR row ``items[offsets[r]:offsets[r + 1]]`` (e.g. a user's sequence).

        Example:
            >>> sets = ItemSets.from_csr(np.array([0, 3, 4]), np.array([4, 1, 4, 2]), 4)
            >>> sets.contains(np.array([0, 0, 1]), np.array([1, 2, 2])).tolist()
            [True, False, True]
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        owners = np.repeat(np.arange(offsets.size - 1, dtype=np.int64), np.diff(offsets))
        return cls._from_pairs(owners, np.asarray(items, dtype=np.int64), num_items)

    @classmethod
    def _from_pairs(cls, owners: np.ndarray, items: np.ndarray, num_items: int) -> ItemSets:
        if items.size and (int(items.min()) < 1 or int(items.max()) > num_items):
            raise ValueError(f"item indices must be in 1..{num_items} (0 = padding)")
        return cls(np.unique(owners * (num_items + 1) + items), num_items)

    def contains(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``bool`` array: is ``items[...]`` in the set of ``rows[...]`` (broadcast together)."""
        keys = np.asarray(rows, dtype=np.int64) * (self.num_items + 1) + np.asarray(items)
        if self.keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        where = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return self.keys[where] == keys
