"""Planned training batches as flat arrays for one ``tf.numpy_function`` call, and back.

An epoch planned in NumPy reaches ``tf.data`` as one call: every batch's
shape plus, per key, the values of all batches concatenated
(:func:`pack_batches`); :func:`packed_batches` turns them into ragged
tensors, one element per batch, and :func:`batch_unpacker` reshapes each
element into the batch dict the model trains on. Both the in-memory and the
streaming dataset use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


def batch_keys(num_negatives: int) -> list[str]:
    """The keys of a training batch (``negatives`` only for the sampled losses)."""
    return ["item_ids", "positives"] + (["negatives"] if num_negatives > 0 else [])


def pack_batches(planned: list[dict[str, np.ndarray]], keys: list[str]) -> tuple[np.ndarray, ...]:
    """Batches as flat arrays for one ``tf.numpy_function`` call (:func:`packed_batches`).

    ``(rows, widths, values_1, sizes_1, values_2, sizes_2, ...)``: each
    batch's shape, then per key its values of every batch concatenated and
    each batch's number of values.
    """
    out = [
        np.array([b["item_ids"].shape[0] for b in planned], np.int64),
        np.array([b["item_ids"].shape[1] for b in planned], np.int64),
    ]
    for key in keys:
        # Cast while concatenating: one array of the epoch's values, not two.
        out.append(np.concatenate([b[key].ravel() for b in planned], dtype=np.int32))
        out.append(np.array([b[key].size for b in planned], np.int64))
    return tuple(out)


def packed_types(keys: list[str]) -> list[Any]:
    """The ``tf.numpy_function`` output types of :func:`pack_batches`."""
    import tensorflow as tf

    return [tf.int64, tf.int64] + [tf.int32, tf.int64] * len(keys)


def packed_batches(values: list[Any]) -> tf.data.Dataset:
    """One element per batch of :func:`pack_batches`' tensors: ``(rows, widths, *ragged)``."""
    import tensorflow as tf

    for value in values:
        value.set_shape((None,))
    parts = [
        tf.RaggedTensor.from_row_lengths(values[j], values[j + 1]) for j in range(2, len(values), 2)
    ]
    return tf.data.Dataset.from_tensor_slices((values[0], values[1], *parts))


def batch_unpacker(
    num_negatives: int, negatives_per_sequence: bool, negatives_per_batch: bool = False
) -> Any:
    """The ``map`` function from a :func:`packed_batches` element to the batch dict.

    ``negatives`` is ``(B, t, n)``, ``(B, 1, n)`` per sequence or ``(1, 1, n)`` per batch.
    """
    import tensorflow as tf

    def unpack(rows: Any, widths: Any, *parts: Any) -> dict[str, Any]:
        batch = {
            "item_ids": tf.reshape(parts[0], tf.stack([rows, widths])),
            "positives": tf.reshape(parts[1], tf.stack([rows, widths])),
        }
        if num_negatives > 0:
            one = tf.constant(1, tf.int64)
            steps = one if negatives_per_sequence or negatives_per_batch else widths
            sets = one if negatives_per_batch else rows
            shape = tf.stack([sets, steps, tf.constant(num_negatives, tf.int64)])
            batch["negatives"] = tf.reshape(parts[2], shape)
            if negatives_per_batch:
                batch["negatives"].set_shape((1, 1, num_negatives))
            elif negatives_per_sequence:
                batch["negatives"].set_shape((None, 1, num_negatives))
            else:
                batch["negatives"].set_shape((None, None, num_negatives))
        return batch

    return unpack
