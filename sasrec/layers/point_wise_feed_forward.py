"""The position-wise feed-forward sublayer of a transformer block."""

from __future__ import annotations

from typing import Any

import keras

from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_optional_positive_int, check_positive_int
from sasrec.layers.hash_dropout import HashDropout


@keras.saving.register_keras_serializable(package="sasrec")
class PointWiseFeedForward(keras.layers.Layer):
    """Two dense layers applied to every position: ``Dense(d) o drop o act o Dense(f)``.

    SASRec's version (Kang & McAuley 2018) uses ReLU with dropout after each
    layer; the residual connection is added by :class:`TransformerBlock`.

    Args:
        hidden_dim: Input and output width d.
        ffn_dim: Inner width f (default ``hidden_dim``).
        dropout: Dropout after the activation and after the output layer
            (checked by the :class:`HashDropout` that applies it, when built).
        activation: Any Keras activation name (``"relu"`` as in the paper,
            ``"gelu"`` ...).
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> ffn = PointWiseFeedForward(hidden_dim=8, ffn_dim=16)
        >>> tuple(ffn(keras.ops.ones((2, 3, 8))).shape)
        (2, 3, 8)
    """

    def __init__(
        self,
        hidden_dim: int,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        check_positive_int(name, "hidden_dim", hidden_dim)
        check_optional_positive_int(name, "ffn_dim", ffn_dim)
        try:
            keras.activations.get(activation)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{name}: activation must be a Keras activation name, "
                f"received activation={activation!r}"
            ) from err
        self.hidden_dim = hidden_dim
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.activation = activation

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        inner = self.ffn_dim or self.hidden_dim
        self.inner_dense = keras.layers.Dense(
            inner, activation=self.activation, dtype=self.dtype_policy, name="inner"
        )
        self.inner_dense.build(input_shape)
        self.output_dense = keras.layers.Dense(
            self.hidden_dim, dtype=self.dtype_policy, name="output"
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (inner,))
        self.inner_dropout = HashDropout(
            self.dropout, dtype=self.dtype_policy, name="inner_dropout"
        )
        self.output_dropout = HashDropout(
            self.dropout, dtype=self.dtype_policy, name="output_dropout"
        )

    def call(self, x: Any, training: bool = False) -> Any:
        h = self.inner_dropout(self.inner_dense(x), training=training)
        return self.output_dropout(self.output_dense(h), training=training)

    def numpy_weights(self) -> dict[str, Any]:
        """Float32 copies of both dense layers and the activation, for the NumPy path.

        Returns:
            ``{"inner": {"kernel", "bias"}, "output": {"kernel", "bias"},
            "activation": callable}``; ``activation`` is the function the
            inner layer applies (``keras.activations.relu`` by default).
        """
        return {
            "inner": _numpy_weights.dense(self.inner_dense),
            "output": _numpy_weights.dense(self.output_dense),
            "activation": self.inner_dense.activation,
        }

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple:
        return tuple(input_shape[:-1]) + (self.hidden_dim,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
