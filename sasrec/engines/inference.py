"""Compiled top-k inference and TF SavedModel export.

:class:`InferenceFunction` wraps :meth:`sasrec.models.SASRec.top_k` in one
``tf.function`` with a fixed input signature, so it is traced exactly once
whatever the batch size or ``k``; :func:`export_saved_model` writes the same
graph as a TF SavedModel (``serving_default``: ``histories``, ``k``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sasrec.io import staging_directory
from sasrec.models import SASRec


def _signature(max_len: int) -> dict[str, tf.TensorSpec]:
    return {
        "histories": tf.TensorSpec((None, max_len), tf.int32, name="histories"),
        "k": tf.TensorSpec((), tf.int32, name="k"),
        "exclude_history": tf.TensorSpec((None,), tf.bool, name="exclude_history"),
        "deny_ids": tf.TensorSpec((None, None), tf.int32, name="deny_ids"),
        "allow_ids": tf.TensorSpec((None, None), tf.int32, name="allow_ids"),
    }


class InferenceFunction:
    """Top-k recommendation as one compiled TensorFlow function.

    Signature of :attr:`function` (traced once, at construction):
    ``histories int32 (None, max_len)``, ``k int32 ()``, ``exclude_history
    bool (None,)``, ``deny_ids int32 (None, None)``, ``allow_ids int32
    (None, None)`` -> ``{"ids": int32 (B, k'), "scores": float32 (B, k')}``
    with ``k' = min(k, N)``. Exclusions run inside the graph (one scatter per
    list into ``(B, N + 1)``). Leading columns that are padding in every row
    are trimmed in the graph first; position ids are anchored at the last
    column, so this changes no score.

    Args:
        model: A built :class:`sasrec.models.SASRec`.

    Example:
        >>> recommend = InferenceFunction(model)  # doctest: +SKIP
        >>> histories = pad_left([[3, 4]], model.max_len)  # doctest: +SKIP
        >>> out = recommend(histories, k=5, deny_ids=[[7]])  # doctest: +SKIP
        >>> out["ids"].shape, out["scores"].dtype  # doctest: +SKIP
        ((1, 5), dtype('float32'))
    """

    def __init__(self, model: SASRec) -> None:
        if not isinstance(model, SASRec):
            raise ValueError(f"model must be a sasrec.models.SASRec, received {type(model)!r}")
        self.model = model
        self.max_len = model.max_len
        self.num_items = model.num_items
        signature = _signature(self.max_len)
        self.function = tf.function(
            self._recommend,
            input_signature=[
                signature[name]
                for name in ("histories", "k", "exclude_history", "deny_ids", "allow_ids")
            ],
        )
        self.function.get_concrete_function()

    def _recommend(
        self, histories: Any, k: Any, exclude_history: Any, deny_ids: Any, allow_ids: Any
    ) -> dict[str, Any]:
        histories = _trim_leading_padding(histories)
        k = tf.maximum(k, 0)
        ids, scores = self.model.top_k(histories, k, exclude_history, deny_ids, allow_ids)
        return {"ids": ids, "scores": scores}

    def __call__(
        self,
        histories: Any,
        k: int = 10,
        exclude_history: bool | Any = True,
        deny_ids: Any | None = None,
        allow_ids: Any | None = None,
    ) -> dict[str, np.ndarray]:
        """Recommends for a batch of left-padded histories.

        Args:
            histories: Int ``(B, t)`` left-padded ids with ``t <= max_len``
                (narrower batches are left-padded to ``max_len``).
            k: Results per row (>= 1).
            exclude_history: Bool or bool ``(B,)``.
            deny_ids: Optional int ``(B, D)`` padded with 0.
            allow_ids: Optional int ``(B, D)`` padded with 0 (all-0 row = no list).

        Returns:
            ``{"ids": int32 (B, min(k, N)), "scores": float32 (B, min(k, N))}``
            as NumPy arrays; slots with no eligible item have id 0, score -inf.
        """
        histories = np.asarray(histories)
        if histories.ndim != 2 or not np.issubdtype(histories.dtype, np.integer):
            raise ValueError(
                f"histories must be a 2-D integer array (B, t), received shape "
                f"{histories.shape} dtype {histories.dtype}"
            )
        batch, width = histories.shape
        if width > self.max_len:
            raise ValueError(
                f"histories has {width} columns, more than max_len={self.max_len}; "
                "keep the most recent items with sasrec.padding.pad_left"
            )
        if width < self.max_len:
            histories = np.pad(histories, ((0, 0), (self.max_len - width, 0)))
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an int >= 1, received k={k!r}")
        exclude = np.broadcast_to(np.asarray(exclude_history, dtype=bool), (batch,))
        outputs = self.function(
            tf.convert_to_tensor(histories, tf.int32),
            tf.constant(int(k), tf.int32),
            tf.convert_to_tensor(exclude),
            _id_lists(deny_ids, batch, "deny_ids"),
            _id_lists(allow_ids, batch, "allow_ids"),
        )
        return {name: value.numpy() for name, value in outputs.items()}


def export_saved_model(model: SASRec, path: str | os.PathLike) -> Path:
    """Writes a TF SavedModel of :class:`InferenceFunction` at ``path``.

    Signatures: ``serving_default(histories int32 [None, max_len], k int32 [])
    -> {"ids", "scores"}`` (history excluded, no deny/allow lists) and
    ``recommend`` with the full :class:`InferenceFunction` signature. The
    directory is written in a staging directory and renamed into place.

    Raises:
        ValueError: ``path`` already exists.
    """
    path = Path(path)
    if path.exists():
        raise ValueError(f"{path}: already exists; refusing to overwrite")
    recommend = InferenceFunction(model)
    spec = _signature(model.max_len)

    @tf.function(input_signature=[spec["histories"], spec["k"]])
    def serve(histories: Any, k: Any) -> dict[str, Any]:
        batch = tf.shape(histories)[0]
        no_ids = tf.zeros((batch, 0), tf.int32)
        return recommend.function(histories, k, tf.ones((batch,), tf.bool), no_ids, no_ids)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint("recommend", recommend.function)
    with staging_directory(path.parent, prefix=f".tmp-{path.name}-") as tmp:
        archive.write_out(str(tmp / "saved_model"), verbose=False)
        os.rename(tmp / "saved_model", path)
    return path


def _trim_leading_padding(histories: Any) -> Any:
    """Drops leading columns that are padding in every row (keeps >= 1 column)."""
    used = tf.reduce_any(tf.not_equal(histories, 0), axis=0)
    total = tf.shape(histories)[1]
    first = tf.cast(tf.argmax(tf.cast(used, tf.int32)), tf.int32)
    width = tf.where(tf.reduce_any(used), total - first, 1)
    return histories[:, total - width :]


def _id_lists(ids: Any | None, batch: int, name: str) -> tf.Tensor:
    if ids is None:
        return tf.zeros((batch, 0), tf.int32)
    array = np.asarray(ids)
    if array.size == 0:
        return tf.zeros((batch, 0), tf.int32)
    if array.ndim != 2 or array.shape[0] != batch or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer array of shape ({batch}, D), received shape "
            f"{array.shape} dtype {array.dtype}"
        )
    return tf.convert_to_tensor(array, tf.int32)
