"""The numpy engine with approximate candidates and exact answers.

The encoder pass is the numpy engine's; the index (:mod:`sasrec.engines.ann_index`)
proposes a few times k candidates for each history's state, and only those are
scored, exactly (``h . E[i]`` in float32, as the full product), with the same
rules as the full scan: history items and denied ids are never returned, an
allow list is scored in full (it is at most 10,000 ids: no index needed), ties
go to the lower id. Explanations read the same attention and item table. A row
whose exclusions are too many for the candidates, or whose candidates run out
before ``k`` eligible items, is scored by the full scan instead, so an answer
has fewer than ``k`` items only when fewer are eligible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sasrec.engines.ann_index import AnnIndex, candidate_count
from sasrec.engines.engine import TopK
from sasrec.engines.numpy_engine import NumpyEngine

# A row excluding more than this share of the catalogue goes to the full scan.
_MAX_EXCLUDED_SHARE = 0.25


class AnnEngine:
    """Top-k from index candidates, rescored exactly (the ``ann`` retrieval).

    Args:
        exact: The :class:`~sasrec.engines.numpy_engine.NumpyEngine` (or its
            compiled subclass) of the model
            (its encoder, and its full scan for the rows that need it).
        index: An :class:`~sasrec.engines.ann_index.AnnIndex` of ``exact.item_table``.

    Example:
        >>> engine = AnnEngine(NumpyEngine(model), AnnIndex.build(table))  # doctest: +SKIP
        >>> engine.top_k([np.array([3, 4])], k=5).ids.shape  # doctest: +SKIP
        (1, 5)
    """

    name = "numpy"
    retrieval = "ann"

    def __init__(self, exact: NumpyEngine, index: AnnIndex) -> None:
        if index.num_items != exact.num_items or index.dim != exact.item_table.shape[1]:
            raise ValueError(
                f"index of {index.num_items} x {index.dim} does not fit the model's "
                f"{exact.num_items} x {exact.item_table.shape[1]} item table"
            )
        self.exact = exact
        self.name = exact.name  # numpy or compiled: the encoder this engine runs
        self.index = index
        self.num_items = exact.num_items
        self.max_len = exact.max_len
        self.item_table = exact.item_table
        self.full_scans = 0  # rows answered by the full scan (tests, metrics)

    def top_k(
        self,
        histories: Sequence[np.ndarray],
        k: int,
        exclude_history: Sequence[bool] | bool = True,
        deny_ids: Sequence[np.ndarray] | None = None,
        allow_ids: Sequence[np.ndarray | None] | None = None,
        with_attention: bool = False,
    ) -> TopK:
        """See :meth:`sasrec.engines.engine.Engine.top_k`."""
        padded, hidden, attention = self.exact.encode(histories)
        batch = len(padded)
        n = self.num_items
        width = min(int(k), n)
        exclude = np.broadcast_to(np.asarray(exclude_history, dtype=bool), (batch,))
        ids = np.zeros((batch, width), dtype=np.int32)
        scores = np.full((batch, width), -np.inf, dtype=np.float32)
        excluded = [self._excluded(padded[r], exclude[r], deny_ids, r) for r in range(batch)]
        allowed = [None if allow_ids is None else allow_ids[r] for r in range(batch)]
        fetch = [candidate_count(width) + len(e) for e in excluded]
        indexed = [
            r for r in range(batch) if allowed[r] is None and fetch[r] <= _MAX_EXCLUDED_SHARE * n
        ]
        full = [r for r in range(batch) if allowed[r] is None and r not in set(indexed)]
        if indexed:
            found = self.index.search(hidden[indexed], max(fetch[r] for r in indexed))
            for row, r in enumerate(indexed):
                candidates = found[row, : fetch[r]]
                candidates = candidates[candidates > 0]
                picked = self._rescore(hidden[r], candidates, excluded[r], width)
                if len(picked[0]) < width and len(candidates) < n:
                    full.append(r)  # the probed lists ran out: scan it all
                    continue
                _store(ids, scores, r, picked)
        for r in range(batch):
            if allowed[r] is not None:
                candidates = np.unique(np.asarray(allowed[r], dtype=np.int64))
                candidates = candidates[(candidates > 0) & (candidates <= n)]
                _store(ids, scores, r, self._rescore(hidden[r], candidates, excluded[r], width))
        if full:
            self.full_scans += len(full)
            rows = np.asarray(sorted(full))
            full_ids, full_scores = self.exact.numpy_model.top_k(
                padded[rows],
                width,
                exclude[rows],
                None if deny_ids is None else [deny_ids[r] for r in rows],
                None,
                hidden=hidden[rows],
            )
            ids[rows], scores[rows] = full_ids, full_scores
        return TopK(ids, scores, attention)

    def _excluded(
        self, row: np.ndarray, exclude: bool, deny_ids: Sequence[np.ndarray] | None, r: int
    ) -> np.ndarray:
        """Sorted ids a row may not return: its history (if excluded) and its deny list."""
        parts = [row[row > 0]] if exclude else []
        if deny_ids is not None and len(deny_ids[r]):
            parts.append(np.asarray(deny_ids[r], dtype=np.int64))
        if not parts:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(parts).astype(np.int64))

    def _rescore(
        self, hidden: np.ndarray, candidates: np.ndarray, excluded: np.ndarray, width: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``width`` best eligible candidates by exact score, ties by lower id."""
        if len(excluded):
            candidates = candidates[~np.isin(candidates, excluded, assume_unique=False)]
        values = self.item_table[candidates] @ hidden
        order = np.lexsort((candidates, -values))[:width]
        return candidates[order], values[order]


def _store(ids: np.ndarray, scores: np.ndarray, r: int, picked: tuple[Any, Any]) -> None:
    chosen, values = picked
    ids[r, : len(chosen)] = chosen
    scores[r, : len(chosen)] = values
