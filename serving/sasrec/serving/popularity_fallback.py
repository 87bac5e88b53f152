"""Answers the model cannot give: most popular items first.

A request with no known history item (``fallback``) or whose allow list has
no known item gets the popularity ranking, with the same exclusions a model
answer would have. Scores are the counts (0 without ``popularity.json``,
which ranks by index).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sasrec.serving.domain import Recommendation, ScoredItem
from sasrec.serving.prepared_request import PreparedRequest

_EMPTY_IDS = np.zeros((0,), dtype=np.int32)


class PopularityFallback:
    """Most popular items first, ties by lower index; index 0 (padding) never listed.

    Args:
        counts: float32 ``(N + 1,)`` counts by model index
            (:func:`sasrec.artifact.counts_by_index`); ``counts[0]`` is ignored.
        names: Raw item id by model index (``names[0]`` is padding).

    Example:
        >>> fallback = PopularityFallback(np.array([0, 1, 5, 5], np.float32), ("", "a", "b", "c"))
        >>> fallback.order.tolist()
        [2, 3, 1]
    """

    def __init__(self, counts: np.ndarray, names: Sequence[str]) -> None:
        num_items = counts.shape[0] - 1
        self.counts = np.asarray(counts, dtype=np.float32)
        self.names = names
        # Most popular first, ties by index.
        order = np.lexsort((np.arange(1, num_items + 1), -self.counts[1:])) + 1
        self.order = order.astype(np.int32)
        # Position of each index in `order`, to sort an allow list by popularity.
        rank = np.empty((num_items + 1,), dtype=np.int64)
        rank[0] = num_items + 1
        rank[self.order] = np.arange(num_items)
        self._rank = rank

    def answer(self, prepared: PreparedRequest, model_version: str) -> Recommendation:
        """The popularity answer to one request (fallback or empty allow list)."""
        p = prepared
        if p.nothing_allowed:
            chosen = _EMPTY_IDS
        elif p.allow_ids is not None:
            chosen = np.unique(p.allow_ids)
            chosen = chosen[np.argsort(self._rank[chosen], kind="stable")]
        else:
            # Enough candidates that k remain after removing the denied ones.
            chosen = self.order[: p.k + p.deny_ids.size]
        if p.deny_ids.size and chosen.size:
            chosen = chosen[~np.isin(chosen, p.deny_ids)]
        if not p.fallback and p.exclude_history and chosen.size:
            chosen = chosen[~np.isin(chosen, p.history_ids)]
        chosen = chosen[: p.k]
        names = self.names
        return Recommendation(
            items=tuple(
                ScoredItem(names[i], s)
                for i, s in zip(chosen.tolist(), self.counts[chosen].tolist())
            ),
            model_version=model_version,
            unknown_items=p.unknown_items,
            fallback=p.fallback,
        )
