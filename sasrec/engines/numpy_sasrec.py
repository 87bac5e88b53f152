"""SASRec inference in NumPy: the serving fast path for small batches.

A served request needs the last position of one history and a top-k over
the catalogue. Through TensorFlow that is a graph of about a hundred tiny ops,
each paying the executor's dispatch cost (1.7 ms for one history, most of it
overhead). The same arithmetic in NumPy, on weights copied once, skips that
and computes the last block for the last position only. It is checked against
the TensorFlow path (:class:`sasrec.engines.inference.InferenceFunction`) in
``tests/engines/test_numpy_sasrec.py``: same ids, scores equal to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Same fill as CausalSelfAttention: masked scores before the softmax.
_MASK_FILL = -1e9
# Largest item table that also gets a row-major (d, N + 1) copy for scoring.
# BLAS multiplies by it 20-33% faster than through the transposed view of
# the (N + 1, d) table (Games size, batch 1-32); past this size the memory
# (one more table) is not worth it.
SCORING_COPY_MAX_BYTES = 256 * 1024 * 1024


class NumpySASRec:
    """Last-position encoder and top-k of a trained SASRec, in NumPy.

    Weights are copied from the Keras model at construction (a served
    version never changes), through the layers' public ``numpy_weights()``
    and the encoder's settings; nothing here depends on how a layer names
    its sublayers. Supports every SASRec configuration: pre- or
    post-LN blocks, any number of heads, learned or sinusoidal positions, a
    local attention window; the ``relu`` feed-forward runs in NumPy, other
    activations through ``keras.activations``.

    Args:
        model: A built :class:`sasrec.models.SASRec`.
        scoring_copy: Keep a transposed copy of the item table for
            :meth:`top_k` (up to ``SCORING_COPY_MAX_BYTES``); False scores
            through the transposed view, for callers that only encode (the
            ANN index built at publishing: one table less in memory).

    Example:
        >>> fast = NumpySASRec(model)  # doctest: +SKIP
        >>> hidden, attention = fast.encode_last(np.array([[0, 3, 4]]))  # doctest: +SKIP
        >>> ids, scores = fast.top_k(np.array([[0, 3, 4]]), k=5)  # doctest: +SKIP
    """

    def __init__(self, model: Any, scoring_copy: bool = True) -> None:
        encoder = model.encoder
        weights = encoder.numpy_weights()
        self.num_items = int(encoder.num_items)
        self.max_len = int(encoder.max_len)
        self.hidden_dim = int(encoder.hidden_dim)
        self.num_heads = int(encoder.num_heads)
        self.window = encoder.attention_window
        self.norm_first = bool(encoder.norm_first)
        self.table = weights["item_embeddings"]  # (N + 1, d)
        self.scoring_table = (
            np.ascontiguousarray(self.table.T)
            if scoring_copy and self.table.nbytes <= SCORING_COPY_MAX_BYTES
            else self.table.T
        )  # (d, N + 1)
        self.positions = weights["position_embeddings"]  # (max_len, d)
        self.scale = np.float32(math.sqrt(self.hidden_dim))
        self.blocks = [
            _BlockWeights(block, self.num_heads, self.norm_first) for block in weights["blocks"]
        ]
        self.final_norm = _norm(weights["final_norm"])
        self._causal: dict[int, np.ndarray] = {}  # width -> additive mask (1, t, t)

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
        x = self.table[ids] * self.scale + self.positions[self.max_len - width :]
        mask = self._causal.get(width)
        if mask is None:
            allowed = _causal(width, self.window)[None]
            mask = self._causal[width] = np.where(allowed, 0.0, _MASK_FILL).astype(np.float32)
        keep = None  # no padding anywhere (a lone history): no masking work
        if not real.all():
            keep = real[:, :, None].astype(np.float32)
            x *= keep
            mask = mask + np.where(real, np.float32(0.0), np.float32(_MASK_FILL))[:, None, :]
        attention = np.zeros(ids.shape, dtype=np.float32)
        unwindowed = self.window is None or self.window >= width
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            if index == last:
                # Only the last position feeds the output: one query row. It
                # sees every key unless padding or a window hides some.
                last_row = None if keep is None and unwindowed else mask[:, -1:]
                x, attention = block.apply(x, last_row, keep, self, query_last=True)
            else:
                x, _ = block.apply(x, mask, keep, self, query_last=False)
        hidden = _layer_norm(x[:, -1], *self.final_norm)
        if keep is not None:
            hidden *= keep[:, -1]
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
        scores = hidden @ self.scoring_table  # (B, N + 1)
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
    """One TransformerBlock's weights (its ``numpy_weights()``), ready to apply."""

    def __init__(self, block: dict[str, Any], num_heads: int, norm_first: bool) -> None:
        attention, feed_forward = block["attention"], block["feed_forward"]
        query = _dense(attention["query"])
        key = _dense(attention["key"])
        value = _dense(attention["value"])
        self.num_heads = num_heads
        self.head_dim = query[0].shape[1] // num_heads
        # Folded once here so that each request runs fewer NumPy calls (each
        # costs about a microsecond at these sizes): the attention's
        # 1/sqrt(head_dim) goes into the query projection, and with pre-LN the
        # LayerNorms' gamma and beta go into the projections they feed (the
        # residual takes the block's input, not the normalised one).
        query = _scaled(query, np.float32(1.0 / math.sqrt(self.head_dim)))
        self.attention_norm = _norm(block["attention_norm"])
        self.feed_forward_norm = _norm(block["feed_forward_norm"])
        inner = _dense(feed_forward["inner"])
        if norm_first:
            query, key, value = (_fold_norm(self.attention_norm, w) for w in (query, key, value))
            inner = _fold_norm(self.feed_forward_norm, inner)
            self.attention_norm = _unit_norm(self.attention_norm)
            self.feed_forward_norm = _unit_norm(self.feed_forward_norm)
        # Fused projections: one matmul instead of three (or two for the last
        # block, whose only query is the last position).
        self.query = query
        self.key_value = _concat_dense(key, value)
        self.query_key_value = _concat_dense(query, key, value)
        self.output = _dense(attention["output"])
        self.inner = inner
        self.ffn_output = _dense(feed_forward["output"])
        activation = feed_forward["activation"]
        self.relu = getattr(activation, "__name__", "") == "relu"
        self.activation = activation

    def apply(
        self,
        x: np.ndarray,
        mask: np.ndarray | None,
        keep: np.ndarray | None,
        owner: NumpySASRec,
        query_last: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The block on ``x (B, t, d)``; with ``query_last`` only the last row.

        Returns ``(x', attention (B, t))``; ``x'`` is ``(B, 1, d)`` with
        ``query_last`` and the attention is the (head-averaged) last query row.
        """
        keep_out = None if keep is None else (keep[:, -1:] if query_last else keep)
        if owner.norm_first:
            normed = _layer_norm(x, *self.attention_norm)
            attended, weights = self._attend(normed, query_last, mask)
            x = (x[:, -1:] if query_last else x) + attended
            if keep_out is not None:
                x *= keep_out
            x += self._feed_forward(_layer_norm(x, *self.feed_forward_norm))
        else:
            attended, weights = self._attend(x, query_last, mask)
            x = _layer_norm((x[:, -1:] if query_last else x) + attended, *self.attention_norm)
            if keep_out is not None:
                x *= keep_out
            x = _layer_norm(x + self._feed_forward(x), *self.feed_forward_norm)
        if keep_out is not None:
            x *= keep_out
        last_row = weights[:, :, -1, :]
        return x, last_row[:, 0] if self.num_heads == 1 else last_row.mean(axis=1)

    def _attend(
        self, x: np.ndarray, query_last: bool, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        batch, tk, d = x.shape
        h, dk = self.num_heads, self.head_dim
        if query_last:
            tq = 1
            q = _apply_dense(x[:, -1:], self.query)
            kv = _apply_dense(x, self.key_value)
            k, v = kv[..., :d], kv[..., d:]
        else:
            tq = tk
            qkv = _apply_dense(x, self.query_key_value)
            q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
        q = q.reshape(batch, tq, h, dk).transpose(0, 2, 1, 3)
        k = k.reshape(batch, tk, h, dk).transpose(0, 2, 3, 1)
        v = v.reshape(batch, tk, h, dk).transpose(0, 2, 1, 3)
        scores = q @ k  # (B, H, tq, tk), already scaled by 1/sqrt(dk) (the query's kernel)
        # Additive mask: a masked key gets exp(-1e9 - max) == 0.0 exactly in
        # float32 for every real query; an all-padding query's row is junk
        # but is zeroed by `keep` right after, as in CausalSelfAttention.
        if mask is not None:
            scores += mask[:, None]
        scores -= np.maximum.reduce(scores, axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= np.add.reduce(scores, axis=-1, keepdims=True)
        weights = scores
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, tq, h * dk)
        return _apply_dense(context, self.output), weights

    def _feed_forward(self, x: np.ndarray) -> np.ndarray:
        inner = _apply_dense(x, self.inner)
        if self.relu:
            np.maximum(inner, 0.0, out=inner)
        else:
            inner = np.asarray(self.activation(inner), dtype=np.float32)
        return _apply_dense(inner, self.ffn_output)


def _dense(weights: dict[str, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
    return weights["kernel"], weights["bias"]


def _concat_dense(*layers: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, Any]:
    kernel = np.ascontiguousarray(np.concatenate([k for k, _ in layers], axis=1))
    if any(b is None for _, b in layers):
        return kernel, None
    return kernel, np.concatenate([b for _, b in layers])


def _apply_dense(x: np.ndarray, weights: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
    kernel, bias = weights
    out = x @ kernel
    if bias is not None:
        out += bias
    return out


def _norm(weights: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    return weights["gamma"], weights["beta"], weights["epsilon"]


def _unit_norm(norm: tuple[Any, Any, float]) -> tuple[None, None, float]:
    """The same LayerNorm without its scale and offset (folded elsewhere)."""
    return None, None, norm[2]


def _scaled(weights: tuple[np.ndarray, np.ndarray | None], factor: np.float32) -> tuple[Any, Any]:
    kernel, bias = weights
    scaled_bias = None if bias is None else (bias * factor).astype(np.float32)
    return (kernel * factor).astype(np.float32), scaled_bias


def _fold_norm(norm: tuple[Any, Any, float], weights: tuple[np.ndarray, Any]) -> tuple[Any, Any]:
    """Dense(LN(x)) as Dense'(unit LN(x)): W' = diag(gamma) W, b' = beta W + b."""
    gamma, beta, _ = norm
    kernel, bias = weights
    folded_bias = beta @ kernel if bias is None else beta @ kernel + bias
    return (gamma[:, None] * kernel).astype(np.float32), folded_bias.astype(np.float32)


def _layer_norm(
    x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, epsilon: float
) -> np.ndarray:
    # ufunc reductions directly: ndarray.mean's Python wrapper costs more
    # than the arithmetic at these sizes.
    scale = np.float32(1.0 / x.shape[-1])
    centred = x - np.add.reduce(x, axis=-1, keepdims=True) * scale
    variance = np.add.reduce(centred * centred, axis=-1, keepdims=True) * scale
    variance += np.float32(epsilon)
    centred /= np.sqrt(variance)
    if gamma is not None:  # None: folded into the projection that follows
        centred *= gamma
        centred += beta
    return centred


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


_GROUPS_PER_K = 4


def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row, ties by lower index, ``-inf`` slots -> id 0.

    With ``G`` groups of columns ``{g, g + G, g + 2G, ...}`` (strided, so the
    group maxima are one vectorised pass), the k largest values lie in the k
    groups with the largest maxima; only those groups' columns are searched.
    Rows where a value equal to the k-th best may be left out (another group
    or candidate ties with it) are redone exactly, sorted by (score, index).
    """
    batch, columns = scores.shape
    k = max(0, min(k, columns))
    ids = np.zeros((batch, k), dtype=np.int32)
    values = np.full((batch, k), -np.inf, dtype=np.float32)
    if k == 0:
        return ids, values
    groups = columns // (_GROUPS_PER_K * k)
    size = columns // groups if groups else 0
    redo = np.ones(batch, dtype=bool)
    # A few rows: the exact per-row path below is cheaper than the set-up.
    if batch > 2 and groups >= _GROUPS_PER_K * k and size >= 2:
        used = groups * size
        maxima = np.maximum.reduce(scores[:, :used].reshape(batch, size, groups), axis=1)
        best = np.argpartition(-maxima, k - 1, axis=1)[:, :k]  # (B, k) groups
        candidates = (best[:, None, :] + groups * np.arange(size)[None, :, None]).reshape(batch, -1)
        if used < columns:  # leftover columns are always candidates
            tail = np.broadcast_to(np.arange(used, columns), (batch, columns - used))
            candidates = np.concatenate([candidates, tail], axis=1)
        cand_scores = np.take_along_axis(scores, candidates, axis=1)
        top = np.argpartition(-cand_scores, k - 1, axis=1)[:, :k]
        chosen = np.take_along_axis(candidates, top, axis=1)
        chosen_scores = np.take_along_axis(cand_scores, top, axis=1)
        order = np.lexsort((chosen, -chosen_scores), axis=1)
        chosen = np.take_along_axis(chosen, order, axis=1)
        chosen_scores = np.take_along_axis(chosen_scores, order, axis=1)
        kth = chosen_scores[:, -1:]
        # Exact unless the k-th value also occurs outside the chosen k: among
        # the other candidates, or in a group that was not chosen.
        chosen_groups = np.take_along_axis(maxima, best, axis=1)
        redo = (np.add.reduce(cand_scores >= kth, axis=1) > k) | (
            np.add.reduce(maxima >= kth, axis=1) > np.add.reduce(chosen_groups >= kth, axis=1)
        )
        redo &= np.isfinite(kth[:, 0])
        finite = np.isfinite(chosen_scores)
        ids[finite] = chosen[finite]
        values[finite] = chosen_scores[finite]
    for r in np.flatnonzero(redo):
        row = scores[r]
        kth_value = np.partition(row, columns - k)[columns - k]
        exact = np.flatnonzero(row >= kth_value)
        pick = exact[np.lexsort((exact, -row[exact]))[:k]]
        finite = np.isfinite(row[pick])
        ids[r], values[r] = 0, -np.inf
        ids[r, : finite.sum()] = pick[finite]
        values[r, : finite.sum()] = row[pick[finite]]
    return ids, values
