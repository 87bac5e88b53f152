"""The ``"numpy"`` engine: :class:`~sasrec.engines.numpy_sasrec.NumpySASRec` behind
the :class:`~sasrec.engines.engine.Engine` interface.

The lowest-latency engine for serving: no per-op dispatch cost, the last block
for the last position only, and the attention behind explanations from the
same pass (so it is always returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sasrec.engines import length_groups
from sasrec.engines.engine import TopK
from sasrec.engines.numpy_sasrec import NumpySASRec
from sasrec.padding import pad_left


class NumpyEngine:
    """Top-k of a trained SASRec in NumPy, on weights copied once.

    Args:
        model: A built :class:`sasrec.models.SASRec`.
        scoring_copy: As :class:`~sasrec.engines.numpy_sasrec.NumpySASRec`.

    Example:
        >>> engine = NumpyEngine(model)  # doctest: +SKIP
        >>> top = engine.top_k([np.array([3, 4]), np.array([9])], k=5)  # doctest: +SKIP
        >>> top.ids.shape, top.attention.shape  # doctest: +SKIP
        ((2, 5), (2, 2))
    """

    name = "numpy"

    def __init__(self, model: Any, scoring_copy: bool = True) -> None:
        self.numpy_model = NumpySASRec(model, scoring_copy)
        self.num_items = self.numpy_model.num_items
        self.max_len = self.numpy_model.max_len
        self.item_table = self.numpy_model.table

    def top_k(
        self,
        histories: Sequence[np.ndarray],
        k: int,
        exclude_history: Sequence[bool] | bool = True,
        deny_ids: Sequence[np.ndarray] | None = None,
        allow_ids: Sequence[np.ndarray | None] | None = None,
        with_attention: bool = False,
    ) -> TopK:
        """See :meth:`sasrec.engines.engine.Engine.top_k`; the attention always comes back."""
        padded, hidden, attention = self.encode(histories)
        ids, scores = self.numpy_model.top_k(
            padded, k, exclude_history, deny_ids, allow_ids, hidden=hidden
        )
        return TopK(ids, scores, attention)

    def encode(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows left-padded, their last hidden states and last-block attention.

        Returns:
            ``(padded int (B, W), hidden float32 (B, d), attention float32 (B, W))``.
        """
        fast = self.numpy_model
        lengths = [min(np.asarray(h).size, self.max_len) for h in histories]
        width = max(1, max(lengths))
        padded = pad_left(histories, width)
        groups = length_groups.split_by_length(lengths, self.max_len)
        if len(groups) == 1:
            hidden, attention = fast.encode_last(padded)
        else:
            # Short rows skip the long rows' padding; the (B, N) scoring
            # product and the top-k run once for the whole batch.
            hidden = np.empty((len(lengths), fast.hidden_dim), dtype=np.float32)
            attention = np.zeros(padded.shape, dtype=np.float32)
            for group in groups:
                cols = max(1, max(lengths[i] for i in group))
                hidden[group], attention[group, width - cols :] = fast.encode_last(
                    padded[group, width - cols :]
                )
        return padded, hidden, attention
