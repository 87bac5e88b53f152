"""The item table: lookups with a dense gradient, shared by input and output."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_positive_int


@keras.saving.register_keras_serializable(package="sasrec")
class ItemEmbedding(keras.layers.Layer):
    """An ``(num_items + 1, d)`` embedding table (row 0 = padding).

    Unlike ``keras.layers.Embedding``, a lookup's gradient is one dense
    ``(N + 1, d)`` tensor (a segment sum) instead of ``IndexedSlices``. Adam
    reads the gradient twice (first and second moments), and with
    ``IndexedSlices`` TensorFlow densifies it twice and, under XLA, duplicates
    the whole backward fusion that produces the slices; a dense gradient is
    computed once. The same table scores items at the output (tied weights).

    Args:
        num_items: N; the table has ``N + 1`` rows.
        hidden_dim: Embedding width d.
        embeddings_initializer: Keras initializer of the table.
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> table = ItemEmbedding(num_items=5, hidden_dim=3)
        >>> tuple(table(ops.convert_to_tensor([[0, 4, 5]])).shape)
        (1, 3, 3)
    """

    def __init__(
        self,
        num_items: int,
        hidden_dim: int,
        embeddings_initializer: str | dict = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "num_items", num_items)
        check_positive_int(type(self).__name__, "hidden_dim", hidden_dim)
        self.num_items = num_items
        self.hidden_dim = hidden_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape: tuple[int | None, ...] | None = None) -> None:
        self.embeddings = self.add_weight(
            shape=(self.num_items + 1, self.hidden_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )

    def call(self, ids: Any) -> Any:
        """Rows of ``ids`` (any int shape), in the compute dtype."""
        return ops.cast(self.lookup(ids), self.compute_dtype)

    def lookup(self, ids: Any, dtype: str = "float32") -> Any:
        """``table[ids]`` in ``dtype`` with a dense segment-sum gradient."""
        table = ops.cast(ops.convert_to_tensor(self.embeddings), dtype)
        return _take_rows(table, ops.cast(ids, "int32"))

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """A float32 copy of the table, for the NumPy serving path.

        Returns:
            ``{"embeddings": (N + 1, d)}``, row 0 = padding.
        """
        return {"embeddings": _numpy_weights.array(self.embeddings)}

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple:
        return tuple(input_shape) + (self.hidden_dim,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_items=self.num_items,
            hidden_dim=self.hidden_dim,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config


@ops.custom_gradient
def _take_rows(table: Any, ids: Any) -> Any:
    rows = ops.take(table, ids, axis=0)

    def grad(*args: Any, upstream: Any = None) -> tuple[Any, None]:
        if upstream is None:
            (upstream,) = args
        width = ops.shape(table)[-1]
        dense = ops.segment_sum(
            ops.reshape(upstream, (-1, width)),
            ops.reshape(ids, (-1,)),
            num_segments=ops.shape(table)[0],
        )
        return dense, None

    return rows, grad
