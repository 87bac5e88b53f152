"""The ``"tensorflow"`` engine: :class:`~sasrec.engines.inference.InferenceFunction`
behind the :class:`~sasrec.engines.engine.Engine` interface.

It runs the graph that :func:`~sasrec.engines.inference.export_saved_model`
writes for TF Serving, so its answers are those of the exported model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from sasrec.engines import length_groups
from sasrec.engines.engine import TopK
from sasrec.engines.inference import InferenceFunction
from sasrec.padding import pad_left

_EMPTY_IDS = np.zeros((0,), dtype=np.int32)


class TensorFlowEngine:
    """Top-k of a trained SASRec with the compiled inference graph.

    Batches run at their exact size (the graph's batch dimension is None, so
    it never retraces, and padding rows would cost compute). When many rows
    are much shorter than the longest, they run in a separate, narrower call
    (the graph trims the columns that are padding in every row).

    Args:
        model: A built :class:`sasrec.models.SASRec`.

    Example:
        >>> engine = TensorFlowEngine(model)  # doctest: +SKIP
        >>> top = engine.top_k([np.array([3, 4])], k=5, with_attention=True)  # doctest: +SKIP
        >>> top.attention.shape  # doctest: +SKIP
        (1, 50)
    """

    name = "tensorflow"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.num_items = int(model.num_items)
        self.max_len = int(model.max_len)
        # Read once: a served version's weights never change.
        self.item_table = np.asarray(model.item_embeddings, dtype=np.float32)
        inference = InferenceFunction(model)
        self._infer = _flat_call(inference.function.get_concrete_function())
        self._attention = _flat_call(
            tf.function(
                model.attention_weights,
                input_signature=[tf.TensorSpec((None, self.max_len), tf.int32, name="histories")],
            ).get_concrete_function()
        )
        # Per-call constants, built once: tensors for k, an all-True
        # exclude_history and empty id lists per batch size.
        self._constants: dict[tuple[str, int], Any] = {}

    def top_k(
        self,
        histories: Sequence[np.ndarray],
        k: int,
        exclude_history: Sequence[bool] | bool = True,
        deny_ids: Sequence[np.ndarray] | None = None,
        allow_ids: Sequence[np.ndarray | None] | None = None,
        with_attention: bool = False,
    ) -> TopK:
        """See :meth:`sasrec.engines.engine.Engine.top_k`; the attention is ``(B, max_len)``."""
        size = len(histories)
        rows = [np.asarray(h, dtype=np.int32)[-self.max_len :] for h in histories]
        exclude = (
            [bool(exclude_history)] * size
            if isinstance(exclude_history, bool | np.bool_)
            else [bool(e) for e in exclude_history]
        )
        deny = [_EMPTY_IDS] * size if deny_ids is None else list(deny_ids)
        allow = [None] * size if allow_ids is None else list(allow_ids)
        groups = length_groups.split_by_length([r.size for r in rows], self.max_len)
        if len(groups) == 1:
            return self._top_k_group(rows, k, exclude, deny, allow, with_attention)
        width = min(k, self.num_items)
        ids = np.zeros((size, width), dtype=np.int32)
        scores = np.full((size, width), -np.inf, dtype=np.float32)
        attention = np.zeros((size, self.max_len), dtype=np.float32) if with_attention else None
        for group in groups:
            part = self._top_k_group(
                [rows[i] for i in group],
                k,
                [exclude[i] for i in group],
                [deny[i] for i in group],
                [allow[i] for i in group],
                with_attention,
            )
            ids[group] = part.ids
            scores[group] = part.scores
            if attention is not None:
                attention[group] = part.attention
        return TopK(ids, scores, attention)

    def _top_k_group(
        self,
        rows: list[np.ndarray],
        k: int,
        exclude: list[bool],
        deny: list[np.ndarray],
        allow: list[np.ndarray | None],
        with_attention: bool,
    ) -> TopK:
        size = len(rows)
        histories = tf.constant(pad_left(rows, self.max_len))
        exclude_tensor = (
            self._constant("exclude", size) if all(exclude) else tf.constant(exclude, tf.bool)
        )
        deny_tensor = (
            tf.constant(_stack_ids(deny, size))
            if any(np.asarray(d).size for d in deny)
            else self._constant("no_ids", size)
        )
        allow_tensor = (
            tf.constant(_stack_ids([_EMPTY_IDS if a is None else a for a in allow], size))
            if any(a is not None for a in allow)
            else self._constant("no_ids", size)
        )
        out = self._infer(
            histories, self._constant("k", int(k)), exclude_tensor, deny_tensor, allow_tensor
        )
        attention = self._attention(histories).numpy() if with_attention else None
        return TopK(out["ids"].numpy(), out["scores"].numpy(), attention)

    def _constant(self, kind: str, n: int) -> Any:
        """A cached input tensor: ``k`` = n, or for batch size n an all-True
        ``exclude_history`` / an empty ``(n, 0)`` id list."""
        key = (kind, n)
        tensor = self._constants.get(key)
        if tensor is None:
            if kind == "k":
                tensor = tf.constant(n, dtype=tf.int32)
            elif kind == "exclude":
                tensor = tf.ones((n,), dtype=tf.bool)
            else:
                tensor = tf.zeros((n, 0), dtype=tf.int32)
            self._constants[key] = tensor
        return tensor


def _flat_call(concrete: Any) -> Any:
    """Calls a concrete function with tensors already matching its signature.

    ``ConcreteFunction.__call__`` binds and checks the arguments against the
    signature on every call (about 0.3-0.5 ms here); our inputs are built to
    it, so the flat call runs the graph directly. Falls back to the public
    call if this TensorFlow has no ``_call_flat``.
    """
    call_flat = getattr(concrete, "_call_flat", None)
    if call_flat is None:  # pragma: no cover - other TensorFlow versions
        return concrete
    captured = concrete.captured_inputs

    def call(*tensors: Any) -> Any:
        return call_flat(list(tensors), captured)

    return call


def _stack_ids(rows: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Per-row id lists as one int32 ``(size, D)`` array padded with 0."""
    width = max(1, max(np.asarray(r).size for r in rows))
    out = np.zeros((size, width), dtype=np.int32)
    for i, r in enumerate(rows):
        r = np.asarray(r)
        if r.size:
            out[i, : r.size] = r
    return out
