"""The interface every top-k scoring engine of a trained SASRec implements.

Callers (the serving predictor, benchmarks, tests) pick an engine by name
from :mod:`sasrec.engines.registry` and never branch on which one they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class TopK:
    """The best items of a batch of histories.

    Attributes:
        ids: int32 ``(B, k')``, best first, ties by lower id (as
            ``tf.math.top_k``); slots with no eligible item hold id 0.
        scores: float32 ``(B, k')``; ``-inf`` (at most ``-1e30``) in empty slots.
        attention: float32 ``(B, W)``, ``W`` >= the longest history: the last
            block's attention of the last position, averaged over heads, with
            the most recent item in the last column; None when not asked for.

    Example:
        >>> top = TopK(np.array([[3, 1]], np.int32), np.array([[0.9, 0.2]], np.float32), None)
        >>> top.ids[0].tolist()
        [3, 1]
    """

    ids: np.ndarray
    scores: np.ndarray
    attention: np.ndarray | None


@runtime_checkable
class Engine(Protocol):
    """Top-k next items of a trained SASRec, with the exclusions serving needs.

    Attributes:
        name: The registry name (``"compiled"``, ``"numpy"``, ``"tensorflow"``).
        num_items: N (item ids are 1..N; 0 is padding).
        max_len: The longest history window the model reads.
        item_table: float32 ``(N + 1, d)`` item embeddings, also the output
            layer (``score = h_last . item_table[i]``); explanations use it.

    Example:
        >>> engine = create_engine("numpy", model)  # doctest: +SKIP
        >>> top = engine.top_k([np.array([3, 4])], k=5, deny_ids=[np.array([7])])  # doctest: +SKIP
        >>> top.ids.shape  # doctest: +SKIP
        (1, 5)
    """

    name: str
    num_items: int
    max_len: int
    item_table: np.ndarray

    def top_k(
        self,
        histories: Sequence[np.ndarray],
        k: int,
        exclude_history: Sequence[bool] | bool = True,
        deny_ids: Sequence[np.ndarray] | None = None,
        allow_ids: Sequence[np.ndarray | None] | None = None,
        with_attention: bool = False,
    ) -> TopK:
        """Best ``k`` items per history.

        Args:
            histories: One int array per row: item ids oldest first, at most
                ``max_len`` (ids 0 are padding; rows may differ in length).
            k: Results per row (``>= 1``; at most N are returned).
            exclude_history: Per row (or one bool): never return the row's
                history items.
            deny_ids: Per row, ids never returned (or None for none).
            allow_ids: Per row, None (no allow list) or the only ids allowed.
            with_attention: Also return the attention behind explanations.

        Returns:
            A :class:`TopK` with ``k' = min(k, N)`` columns.
        """
        ...
