"""SASRec inference in NumPy: the serving fast path for small batches.

A served request needs the last position of one history and a top-k over
the catalogue. Through TensorFlow that is a graph of about a hundred tiny ops,
each paying the executor's dispatch cost (1.7 ms for one history, most of it
overhead). The same arithmetic in NumPy, on weights copied once, skips that
and computes the last block for the last position only. It is checked against
the TensorFlow path (:class:`sasrec.inference.InferenceFunction`) in
``tests/test_numpy_sasrec.py``: same ids, scores equal to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Same fill as CausalSelfAttention: masked scores before the softmax.
_MASK_FILL = -1e9


class NumpySASRec:
    """Last-position encoder and top-k of a trained SASRec, in NumPy.

    Weights are copied from the Keras model at construction (a served
    version never changes). Supports every SASRec configuration: pre- or
    post-LN blocks, any number of heads, learned or sinusoidal positions, a
    local attention window; the ``relu`` feed-forward runs in NumPy, other
    activations through ``keras.activations``.

    Args:
        model: A built :class:`sasrec.models.SASRec`.

    Example:
        >>> fast = NumpySASRec(model)  # doctest: +SKIP
        >>> hidden, attention = fast.encode_last(np.array([[0, 3, 4]]))  # doctest: +SKIP
        >>> ids, scores = fast.top_k(np.array([[0, 3, 4]]), k=5)  # doctest: +SKIP
    """

    def __init__(self, model: Any) -> None:
        encoder = model.encoder
        self.num_items = int(model.num_items)
        self.max_len = int(model.max_len)
        self.hidden_dim = int(model.hidden_dim)
        self.num_heads = int(model.num_heads)
        self.window = encoder.attention_window
        self.norm_first = bool(encoder.norm_first)
        self.table = _array(encoder.item_embeddings)  # (N + 1, d)
        self.positions = _array(encoder.positions.embeddings)  # (max_len, d)
        self.scale = np.float32(math.sqrt(self.hidden_dim))
        self.blocks = [_BlockWeights(block) for block in encoder.blocks]
        self.final_norm = _norm(encoder.final_norm)

    # ------------------------------------------------------------------ encoder
    def encode_last(self, histories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hidden state of the last position and its last-block attention.

        Args:
            histories: Int ``(B, t)`` left-padded ids, ``1 <= t <= max_len``;
                ids outside ``1..N`` count as padding.

        Returns:
            ``(hidden (B, d), attention (B, t))`` float32: the final
            LayerNorm'd state of the last column (zeros for an all-padding
            row) and the last block's attention of that position, averaged
            over heads (what ``SASRec.attention_weights`` returns).
        """
        ids = np.asarray(histories)
        if ids.ndim != 2 or not 1 <= ids.shape[1] <= self.max_len:
            raise ValueError(
                f"histories must have shape (B, t) with 1 <= t <= {self.max_len}, "
                f"received {ids.shape}"
            )
        ids = np.where((ids > 0) & (ids <= self.num_items), ids, 0)
        width = ids.shape[1]
        real = ids != 0  # padding_mask (B, t)
        keep = real[:, :, None].astype(np.float32)
        x = self.table[ids] * self.scale + self.positions[self.max_len - width :]
        x *= keep
        mask = _causal(width, self.window)[None] & real[:, None, :]  # (B, t, t)
        attention = np.zeros(ids.shape, dtype=np.float32)
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            if index == last:
                # Only the last position feeds the output: one query row.
                x, attention = block.apply(x, mask[:, -1:], keep, self, query_last=True)
            else:
                x, _ = block.apply(x, mask, keep, self, query_last=False)
        hidden = _layer_norm(x[:, -1], *self.final_norm) * keep[:, -1]
        return hidden.astype(np.float32, copy=False), attention

    # -------------------------------------------------------------------- top-k
    def top_k(
        self,
        histories: np.ndarray,
        k: int,
        exclude_history: Sequence[bool] | np.ndarray | bool = True,
        deny_ids: Sequence[np.ndarray] | None = None,
        allow_ids: Sequence[np.ndarray | None] | None = None,
        hidden: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` items per row, exclusions applied; the graph's semantics.

        Args:
            histories: Int ``(B, t)`` left-padded ids.
            k: Results per row (``1 <= k``; at most N are returned).
            exclude_history: Per row (or one bool): drop the row's history items.
            deny_ids: Per row, ids never returned (or None).
            allow_ids: Per row, None (no allow list) or the only ids allowed.
            hidden: The rows' :meth:`encode_last` states, if already computed.

        Returns:
            ``(ids int32 (B, k'), scores float32 (B, k'))``, ``k' = min(k, N)``,
            best first, ties by lower id (as ``tf.math.top_k``); slots with no
            eligible item have id 0 and score ``-inf``.
        """
        ids = np.asarray(histories)
        batch = ids.shape[0]
        if hidden is None:
            hidden, _ = self.encode_last(ids)
        scores = hidden @ self.table.T  # (B, N + 1)
        scores[:, 0] = -np.inf
        exclude = np.broadcast_to(np.asarray(exclude_history, dtype=bool), (batch,))
        if exclude.any():
            rows = np.nonzero(exclude)[0]
            seen = ids[rows]
            scores[np.repeat(rows, seen.shape[1]), seen.reshape(-1)] = -np.inf
            scores[:, 0] = -np.inf  # padding columns hit column 0
        for r in range(batch):
            if deny_ids is not None and len(deny_ids[r]):
                scores[r, _in_range(deny_ids[r], self.num_items)] = -np.inf
            if allow_ids is not None and allow_ids[r] is not None:
                allowed = _in_range(allow_ids[r], self.num_items)
                kept = scores[r, allowed].copy()
                scores[r] = -np.inf
                scores[r, allowed] = kept
                scores[r, 0] = -np.inf
        return _top_k_rows(scores, min(int(k), self.num_items))


class _BlockWeights:
    """One TransformerBlock's weights as float32 arrays."""

    def __init__(self, block: Any) -> None:
        attention = block.attention
        self.num_heads = int(attention.num_heads)
        self.head_dim = int(attention.head_dim)
        self.query = _dense(attention.query_dense)
        self.key = _dense(attention.key_dense)
        self.value = _dense(attention.value_dense)
        self.output = _dense(attention.output_dense)
        self.inner = _dense(block.feed_forward.inner_dense)
        self.ffn_output = _dense(block.feed_forward.output_dense)
        activation = block.feed_forward.inner_dense.activation
        self.relu = getattr(activation, "__name__", "") == "relu"
        self.activation = activation
        self.attention_norm = _norm(block.attention_norm)
        self.feed_forward_norm = _norm(block.feed_forward_norm)

    def apply(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        keep: np.ndarray,
        owner: NumpySASRec,
        query_last: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The block on ``x (B, t, d)``; with ``query_last`` only the last row.

        Returns ``(x', attention (B, t))``; ``x'`` is ``(B, 1, d)`` with
        ``query_last`` and the attention is the (head-averaged) last query row.
        """
        keep_out = keep[:, -1:] if query_last else keep
        if owner.norm_first:
            normed = _layer_norm(x, *self.attention_norm)
            queries = normed[:, -1:] if query_last else normed
            attended, weights = self._attend(queries, normed, mask)
            x = (x[:, -1:] if query_last else x) + attended
            x = x * keep_out
            x = x + self._feed_forward(_layer_norm(x, *self.feed_forward_norm))
            x = x * keep_out
        else:
            queries = x[:, -1:] if query_last else x
            attended, weights = self._attend(queries, x, mask)
            x = _layer_norm(queries + attended, *self.attention_norm) * keep_out
            x = _layer_norm(x + self._feed_forward(x), *self.feed_forward_norm) * keep_out
        return x, weights[:, :, -1, :].mean(axis=1)

    def _attend(
        self, queries: np.ndarray, keys: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        batch, tq, _ = queries.shape
        tk = keys.shape[1]
        h, dk = self.num_heads, self.head_dim
        q = _apply_dense(queries, self.query).reshape(batch, tq, h, dk).transpose(0, 2, 1, 3)
        k = _apply_dense(keys, self.key).reshape(batch, tk, h, dk).transpose(0, 2, 3, 1)
        v = _apply_dense(keys, self.value).reshape(batch, tk, h, dk).transpose(0, 2, 1, 3)
        scores = (q @ k) * np.float32(1.0 / math.sqrt(dk))  # (B, H, tq, tk)
        allowed = mask[:, None]
        scores = np.where(allowed, scores, np.float32(_MASK_FILL))
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        weights = np.where(allowed, scores, np.float32(0.0))
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, tq, h * dk)
        return _apply_dense(context, self.output), weights

    def _feed_forward(self, x: np.ndarray) -> np.ndarray:
        inner = _apply_dense(x, self.inner)
        if self.relu:
            np.maximum(inner, 0.0, out=inner)
        else:
            inner = np.asarray(self.activation(inner), dtype=np.float32)
        return _apply_dense(inner, self.ffn_output)


def _array(variable: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(variable, dtype=np.float32))


def _dense(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    kernel = _array(layer.kernel)
    bias = _array(layer.bias) if getattr(layer, "use_bias", False) else None
    return kernel, bias


def _apply_dense(x: np.ndarray, weights: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
    kernel, bias = weights
    out = x @ kernel
    if bias is not None:
        out += bias
    return out


def _norm(layer: Any) -> tuple[np.ndarray, np.ndarray, float]:
    return _array(layer.gamma), _array(layer.beta), float(layer.epsilon)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(epsilon)) * gamma + beta


def _causal(width: int, window: int | None) -> np.ndarray:
    query = np.arange(width)[:, None]
    key = np.arange(width)[None, :]
    mask = key <= query
    if window is not None:
        mask &= key > query - window
    return mask


def _in_range(ids: np.ndarray, num_items: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    return ids[(ids > 0) & (ids <= num_items)]


def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row, ties by lower index, ``-inf`` slots -> id 0."""
    batch, columns = scores.shape
    k = max(0, min(k, columns))
    ids = np.zeros((batch, k), dtype=np.int32)
    values = np.full((batch, k), -np.inf, dtype=np.float32)
    if k == 0:
        return ids, values
    # The k-th largest per row, then every column >= it (ties included) is a
    # candidate; sorting candidates by (-score, index) is exact and cheap.
    kth = np.partition(scores, columns - k, axis=1)[:, columns - k]
    for r in range(batch):
        row = scores[r]
        candidates = np.flatnonzero(row >= kth[r])
        order = np.lexsort((candidates, -row[candidates]))[:k]
        chosen = candidates[order]
        finite = np.isfinite(row[chosen])
        chosen = chosen[finite]
        ids[r, : chosen.size] = chosen
        values[r, : chosen.size] = row[chosen]
    return ids, values
