"""First-order Markov (item-to-item transition) baseline with the ``score_fn`` interface."""

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


class MarkovRecommender:
    """Scores the next item by how often it followed the user's last item in training.

    ``fit`` counts consecutive pairs ``(a -> b)`` inside each training sequence
    (never across two sequences) and stores them as a CSR matrix built with
    numpy (sorted pair keys, ``np.unique``, row offsets): memory grows with the
    number of distinct pairs, never with N².

    Score of item ``b`` for a history whose last item is ``a``::

        count(a -> b) + tie_break_weight * popularity(b) / max(popularity)

    The popularity term is below 1, so it only orders items with equal
    transition counts (including the zero-count tail and users whose last item
    was never followed by anything). It is not 1e-6: in float32 such a term
    vanishes next to any count >= 1 (``1.0 + 1e-6 == 1.0``), and ties among
    items with equal non-zero counts would stay unbroken. An all-padding
    history gets the popularity term alone. Column 0 (padding) is ``-inf``.

    Args:
        num_items: N, the number of real items (ids 1..N).
        tie_break_weight: Weight of the normalised popularity, in ``[0, 1)``.

    Attributes:
        indptr: ``int64 (N + 2,)`` CSR row offsets: transitions out of item ``a``
            are at ``indptr[a]:indptr[a + 1]``.
        next_items: ``int32`` CSR column ids ``b`` (sorted within a row).
        transition_counts: ``int64`` CSR values ``count(a -> b)``.
        popularity: ``int64 (N + 1,)`` item occurrence counts.

    Example:
        >>> import numpy as np
        >>> markov = MarkovRecommender(num_items=3).fit([np.array([1, 2, 1, 3]), np.array([1, 2])])
        >>> markov.transitions_from(1)
        (array([2, 3], dtype=int32), array([2, 1]))
        >>> scores = markov(np.array([[0, 1]], dtype=np.int32))
        >>> np.argsort(-scores[0, 1:]).tolist()  # items 2, 3, then 1
        [1, 2, 0]
    """

    def __init__(self, num_items: int, tie_break_weight: float = 0.5) -> None:
        self.num_items = check_num_items(num_items)
        if not 0.0 <= tie_break_weight < 1.0:
            raise ValueError(
                f"tie_break_weight must be in [0, 1) so it never outweighs one transition, "
                f"received tie_break_weight={tie_break_weight!r}"
            )
        self.tie_break_weight = float(tie_break_weight)
        self.indptr: np.ndarray | None = None
        self.next_items: np.ndarray | None = None
        self.transition_counts: np.ndarray | None = None
        self.popularity: np.ndarray | None = None
        self._base: np.ndarray | None = None

    def fit(
        self,
        sequences: Sequences | None = None,
        *,
        offsets: ArrayLike | None = None,
        items: ArrayLike | None = None,
    ) -> MarkovRecommender:
        """Counts consecutive-item transitions and item popularity.

        Args:
            sequences: Training sequences, oldest first (list of 1-D id arrays
                or a left-padded 2-D array; 0 is padding and ignored).
            offsets: Alternatively CSR offsets ``(U + 1,)``...
            items: ...and the flat item ids they index.

        Returns:
            ``self``.
        """
        offsets_, flat = fit_input_to_csr(sequences, offsets, items, self.num_items)
        return self._fit_checked([(offsets_, flat)], None)

    def fit_parts(
        self, parts: Iterable[tuple[ArrayLike, ArrayLike]], sources: ArrayLike | None = None
    ) -> MarkovRecommender:
        """:meth:`fit` on training sequences that arrive in parts, e.g. one file at a time.

        Each part is ``(offsets, items)`` CSR; the result equals :meth:`fit`
        on all parts' sequences joined, and memory grows with the distinct
        pairs, not with the events. With ``sources`` only the transitions out
        of those items are kept: enough to score histories that end in one
        of them (an evaluation's), with memory bounded by their rows.

        Example:
            >>> import numpy as np
            >>> parts = [([0, 4], [1, 2, 1, 3]), ([0, 2], [1, 2])]
            >>> MarkovRecommender(num_items=3).fit_parts(parts).transitions_from(1)
            (array([2, 3], dtype=int32), array([2, 1]))
        """
        checked = (check_csr(o, i, self.num_items) for o, i in parts)
        return self._fit_checked(checked, sources)

    def _fit_checked(
        self, parts: Iterable[tuple[np.ndarray, np.ndarray]], sources: ArrayLike | None
    ) -> MarkovRecommender:
        width = self.num_items + 1
        merged = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        popularity = np.zeros(width, dtype=np.int64)
        wanted = None
        if sources is not None:
            wanted = np.zeros(width, dtype=bool)
            wanted[np.asarray(sources, dtype=np.int64)] = True
        for offsets_, flat in parts:
            # A pair (p, p + 1) is a transition unless p + 1 starts a new sequence.
            starts = np.zeros(flat.size + 1, dtype=bool)
            starts[offsets_[:-1]] = True
            inside = ~starts[1 : flat.size]
            if wanted is not None:
                inside &= wanted[flat[:-1]]
            keys = flat[:-1][inside] * width + flat[1:][inside]
            pending.append(np.unique(keys, return_counts=True))
            popularity += np.bincount(flat, minlength=width).astype(np.int64)
            # Merged once the pending pairs outnumber the merged ones: each pair
            # is re-sorted O(log parts) times, not once per part.
            if sum(p.size for p, _ in pending) > merged[0].size:
                merged = _merge_counts([merged, *pending])
                pending.clear()
        pairs, counts = _merge_counts([merged, *pending]) if pending else merged
        sources = pairs // width
        self.next_items = (pairs % width).astype(np.int32)
        self.transition_counts = counts
        self.indptr = np.zeros(width + 1, dtype=np.int64)
        np.cumsum(np.bincount(sources, minlength=width), out=self.indptr[1:])
        self.popularity = popularity
        top = self.popularity.max()
        base = self.tie_break_weight * self.popularity / (top if top > 0 else 1)
        base[0] = -np.inf
        self._base = base.astype(np.float32)
        return self

    def transitions_from(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """``(next item ids, counts)`` of the transitions out of ``item``."""
        self._check_fitted()
        if not 0 <= item <= self.num_items:
            raise ValueError(f"item must be in 0..{self.num_items}, received item={item}")
        lo, hi = self.indptr[item], self.indptr[item + 1]
        return self.next_items[lo:hi], self.transition_counts[lo:hi]

    def __call__(self, histories: ArrayLike) -> np.ndarray:
        """``float32 (B, N + 1)`` scores from the last (rightmost) item of each row."""
        self._check_fitted()
        histories = check_histories(histories, self.num_items)
        batch = histories.shape[0]
        scores = np.tile(self._base, (batch, 1))
        if histories.shape[1] == 0 or batch == 0:
            return scores
        last = histories[:, -1].astype(np.int64)
        lo = self.indptr[last]
        lengths = self.indptr[last + 1] - lo
        rows = np.repeat(np.arange(batch), lengths)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        entries = np.repeat(lo, lengths) + within
        cols = self.next_items[entries]
        scores[rows, cols] += self.transition_counts[entries].astype(np.float32)
        return scores

    def _check_fitted(self) -> None:
        if self.indptr is None:
            raise RuntimeError("MarkovRecommender is not fitted: call fit() first")


def _merge_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys of ``(keys, counts)`` parts and their summed counts."""
    parts = [part for part in parts if part[0].size]
    if len(parts) == 1:  # one part is sorted and distinct already
        return parts[0]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = np.concatenate([k for k, _ in parts])
    unique, where = np.unique(keys, return_inverse=True)
    # float64 weights are exact for counts below 2**53.
    weights = np.concatenate([c for _, c in parts]).astype(np.float64)
    return unique, np.bincount(where, weights=weights, minlength=unique.size).astype(np.int64)
