"""Fixed sinusoidal position embeddings (Vaswani et al. 2017), right-anchored."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_positive_int, checked_width


def sinusoid_table(max_len: int, hidden_dim: int, base: float = 10000.0) -> np.ndarray:
    """``PE[p, 2i] = sin(p / base^(2i/d))``, ``PE[p, 2i+1] = cos(p / base^(2i/d))``."""
    positions = np.arange(max_len, dtype=np.float64)[:, None]
    rates = base ** (-np.arange(0, hidden_dim, 2, dtype=np.float64) / hidden_dim)
    angles = positions * rates[None, :]
    table = np.zeros((max_len, hidden_dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : hidden_dim // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="sasrec")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Sinusoidal position embeddings of the original Transformer, right-anchored.

    Same contract as :class:`PositionEmbedding` (column ``j`` of a width-``t``
    input gets position ``max_len - t + j``) but the table is fixed: it is
    stored as a non-trainable weight.

    Args:
        max_len: Number of positions T.
        hidden_dim: Embedding width d.
        base: Wavelength base (10000 in the paper).
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> layer = SinusoidalPositionEmbedding(max_len=4, hidden_dim=2)
        >>> pos = keras.ops.convert_to_numpy(layer(keras.ops.zeros((1, 1))))
        >>> bool(np.allclose(pos[0, 0], [np.sin(3.0), np.cos(3.0)]))
        True
    """

    def __init__(self, max_len: int, hidden_dim: int, base: float = 10000.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "max_len", max_len)
        check_positive_int(type(self).__name__, "hidden_dim", hidden_dim)
        if not (isinstance(base, int | float) and base > 1):
            raise ValueError(f"{type(self).__name__}: base must be > 1, received base={base!r}")
        self.max_len = max_len
        self.hidden_dim = hidden_dim
        self.base = base

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        table = sinusoid_table(self.max_len, self.hidden_dim, self.base)
        self.embeddings = self.add_weight(
            shape=table.shape,
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(table, dtype=dtype),
            trainable=False,
            name="embeddings",
        )

    def call(self, inputs: Any) -> Any:
        """Returns ``(1, t, d)`` position embeddings for ``inputs`` of width t."""
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
        config.update(max_len=self.max_len, hidden_dim=self.hidden_dim, base=self.base)
        return config
