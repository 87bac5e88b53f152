"""Learned position embeddings anchored at the most recent item."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_positive_int, checked_width


@keras.saving.register_keras_serializable(package="sasrec")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embeddings (``max_len`` rows), right-anchored.

    For an input of width ``t <= max_len``, column ``j`` gets position
    ``max_len - t + j``: the most recent item (last column) is always position
    ``max_len - 1``. Trimming all-padding leading columns of a left-padded
    batch therefore never changes the embedding of any remaining column.

    Args:
        max_len: Number of positions T.
        hidden_dim: Embedding width d.
        embeddings_initializer: Keras initializer for the table.
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> layer = PositionEmbedding(max_len=5, hidden_dim=4)
        >>> pos = layer(keras.ops.zeros((2, 3, 4)))
        >>> tuple(pos.shape)
        (1, 3, 4)
        >>> bool(keras.ops.all(pos[0] == layer.embeddings[2:]))
        True
    """

    def __init__(
        self,
        max_len: int,
        hidden_dim: int,
        embeddings_initializer: str | dict = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "max_len", max_len)
        check_positive_int(type(self).__name__, "hidden_dim", hidden_dim)
        self.max_len = max_len
        self.hidden_dim = hidden_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.embeddings = self.add_weight(
            shape=(self.max_len, self.hidden_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )

    def call(self, inputs: Any) -> Any:
        """Returns ``(1, t, d)`` position embeddings for ``inputs`` of width t.

        Args:
            inputs: Any tensor whose axis 1 is the sequence axis, e.g. item
                ids ``(B, t)`` or item embeddings ``(B, t, d)``.
        """
        width = checked_width(self, inputs)
        rows = ops.slice(self.embeddings, (self.max_len - width, 0), (width, self.hidden_dim))
        return ops.cast(rows, self.compute_dtype)[None]

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """A float32 copy of the table, for the NumPy serving path.

        Returns:
            ``{"embeddings": (max_len, d)}``; row ``max_len - 1`` is the last column.
        """
        return {"embeddings": _numpy_weights.array(self.embeddings)}

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple:
        return (1, input_shape[1], self.hidden_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            max_len=self.max_len,
            hidden_dim=self.hidden_dim,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config
