"""Most-popular baseline with the ``score_fn`` interface."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from sasrec.evaluation._sequences import (
    Sequences,
    check_csr,
    check_histories,
    check_num_items,
    fit_input_to_csr,
)


class PopularityRecommender:
    """Scores every item by how often it occurs in the training sequences.

    The score ignores the history, so every user gets the same ranking. Column 0
    (padding) scores ``-inf``, like ``SASRec.score_last``.

    Args:
        num_items: N, the number of real items (ids 1..N).

    Attributes:
        counts: ``int64 (N + 1,)`` occurrence counts after :meth:`fit` (``counts[0] == 0``).

    Example:
        >>> import numpy as np
        >>> pop = PopularityRecommender(num_items=3).fit([np.array([1, 2, 2]), np.array([2])])
        >>> pop.counts.tolist()
        [0, 1, 3, 0]
        >>> pop(np.array([[0, 1]], dtype=np.int32)).tolist()
        [[-inf, 1.0, 3.0, 0.0]]
    """

    def __init__(self, num_items: int) -> None:
        self.num_items = check_num_items(num_items)
        self.counts: np.ndarray | None = None

    def fit(
        self,
        sequences: Sequences | None = None,
        *,
        offsets: ArrayLike | None = None,
        items: ArrayLike | None = None,
    ) -> PopularityRecommender:
        """Counts item occurrences.

        Args:
            sequences: Training sequences (list of 1-D id arrays or a padded
                2-D array; 0 is padding and ignored).
            offsets: Alternatively CSR offsets ``(U + 1,)``...
            items: ...and the flat item ids they index.

        Returns:
            ``self``.
        """
        _, flat = fit_input_to_csr(sequences, offsets, items, self.num_items)
        self.counts = np.bincount(flat, minlength=self.num_items + 1).astype(np.int64)
        return self

    def fit_parts(self, parts: Iterable[tuple[ArrayLike, ArrayLike]]) -> PopularityRecommender:
        """:meth:`fit` on ``(offsets, items)`` CSR parts, e.g. one file at a time.

        Example:
            >>> pop = PopularityRecommender(3).fit_parts([([0, 2], [1, 2]), ([0, 1], [2])])
            >>> pop.counts.tolist()
            [0, 1, 2, 0]
        """
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        for part_offsets, part_items in parts:
            _, flat = check_csr(part_offsets, part_items, self.num_items)
            counts += np.bincount(flat, minlength=self.num_items + 1).astype(np.int64)
        self.counts = counts
        return self

    def __call__(self, histories: ArrayLike) -> np.ndarray:
        """``float32 (B, N + 1)``: the popularity counts for every row."""
        if self.counts is None:
            raise RuntimeError("PopularityRecommender is not fitted: call fit() first")
        histories = check_histories(histories, self.num_items)
        row = self.counts.astype(np.float32)
        row[0] = -np.inf
        return np.tile(row, (histories.shape[0], 1))
