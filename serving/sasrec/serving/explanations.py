"""Why an answer: the history items behind the list and behind each recommended item."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sasrec.serving.domain import HistoryAttention

Explanation = tuple[HistoryAttention, ...]


class AttentionExplainer:
    """Explains model answers with the last position's attention and the item table.

    ``a_j`` is the last position's attention over history position ``j``.
    For recommended item ``i`` the contribution of ``j`` is
    ``c_ij = a_j * max(0, E[h_j] . E[i])`` (``E``: the item table, which is
    also the output layer, so ``h_last . E[i]`` is the score); the weights
    are ``c_ij / sum_j c_ij`` (``a_j`` when every ``c_ij`` is 0), summed over
    repeated history items; the top ``explain_top`` with a positive weight
    are returned, highest first (ties: first occurrence). The list-level
    summary is ``a_j`` summed over repeated items, top ``explain_top``.

    Args:
        item_table: float32 ``(N + 1, d)`` item embeddings (``Engine.item_table``).
        names: Raw item id by model index.
        explain_top: History items per explanation.

    Example:
        >>> table = np.array([[0, 0], [1, 0], [0, 1], [2, 0]], np.float32)
        >>> explainer = AttentionExplainer(table, ("", "a", "b", "c"), explain_top=5)
        >>> summary, per_item = explainer.explain(
        ...     np.array([1, 2]), np.array([0.25, 0.75], np.float32), np.array([3])
        ... )
        >>> [(e.item_id, e.weight) for e in summary]
        [('b', 0.75), ('a', 0.25)]
        >>> [(e.item_id, e.weight) for e in per_item[0]]
        [('a', 1.0)]
    """

    def __init__(self, item_table: np.ndarray, names: Sequence[str], explain_top: int) -> None:
        self.item_table = item_table
        self.names = names
        self.explain_top = explain_top

    def explain(
        self, history_ids: np.ndarray, attention: np.ndarray, item_ids: np.ndarray
    ) -> tuple[Explanation, list[Explanation]]:
        """The list-level summary and one explanation per recommended item.

        Args:
            history_ids: The row's history, oldest first (no padding).
            attention: The row's attention, most recent item in the last column
                (any width >= the history's).
            item_ids: The recommended items, in answer order.
        """
        history = history_ids
        t = history.size
        a = attention[-t:].astype(np.float64)
        # Distinct history items in first-occurrence order; onehot (t, U).
        uniq, first, inverse = np.unique(history, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        onehot = np.zeros((t, uniq.size))
        onehot[np.arange(t), rank[inverse.reshape(-1)]] = 1.0
        names = [self.names[i] for i in uniq[order].tolist()]
        top = self.explain_top

        def pick(row: np.ndarray) -> Explanation:
            best = np.argsort(-row, kind="stable")[:top]
            return tuple(HistoryAttention(names[u], float(row[u])) for u in best if row[u] > 0)

        summary = pick(a @ onehot)
        if not item_ids.size:
            return summary, []
        table = self.item_table
        dots = table[item_ids].astype(np.float64) @ table[history].astype(np.float64).T  # (k, t)
        contrib = a[None, :] * np.maximum(dots, 0.0)
        totals = contrib.sum(axis=1, keepdims=True)
        shares = np.where(totals > 0, contrib / np.where(totals > 0, totals, 1.0), a[None, :])
        per_item = shares @ onehot  # (k, U)
        return summary, [pick(row) for row in per_item]
