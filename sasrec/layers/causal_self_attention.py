"""Multi-head causal self-attention with explicit padding and window masks."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_bool, check_optional_positive_int, check_positive_int
from sasrec.layers.hash_dropout import HashDropout
from sasrec.layers.masks import merge_masks

# Large but finite: exp(-1e9 - max) is exactly 0 in float32, and a fully
# masked row stays finite (its weights are zeroed afterwards, never NaN).
_MASK_FILL = -1e9


@keras.saving.register_keras_serializable(package="sasrec")
class CausalSelfAttention(keras.layers.Layer):
    """Causal multi-head self-attention: position t attends to real items <= t.

    Queries, keys and values are projected from the same input by three
    dense layers, split into ``num_heads`` heads of width ``hidden_dim //
    num_heads``, combined as ``softmax(Q K^T / sqrt(d_k) + mask) V``, then the
    heads are concatenated and projected by an output dense layer. Scores and
    softmax are computed in float32 even under a mixed-precision policy. A
    query that sees no real item (a left-padding position) gets all-zero
    weights, so its output is the output bias, never NaN.

    Args:
        hidden_dim: Model width d (input and output width).
        num_heads: Number of heads; must divide ``hidden_dim``.
        dropout: Dropout rate on the attention weights (checked by the
            :class:`HashDropout` that applies it, when the layer is built).
        window: If set, position t attends only to t-window+1..t.
        use_bias: Whether the projections have biases.
        **kwargs: Standard ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Example:
        >>> layer = CausalSelfAttention(hidden_dim=8, num_heads=2)
        >>> x = keras.random.normal((2, 5, 8))
        >>> mask = ops.convert_to_tensor([[False, True, True, True, True]] * 2)
        >>> out, weights = layer(x, padding_mask=mask, return_attention_scores=True)
        >>> tuple(out.shape), tuple(weights.shape)
        ((2, 5, 8), (2, 2, 5, 5))
    """

    def __init__(
        self,
        hidden_dim: int,
        num_heads: int = 1,
        dropout: float = 0.0,
        window: int | None = None,
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        check_positive_int(name, "hidden_dim", hidden_dim)
        check_positive_int(name, "num_heads", num_heads)
        # The model's only check of this rule: the block, the encoder and
        # SASRecConfig pass num_heads through and rely on it.
        if hidden_dim % num_heads:
            raise ValueError(
                f"{name}: num_heads must divide hidden_dim={hidden_dim}, "
                f"received num_heads={num_heads!r}"
            )
        check_optional_positive_int(name, "window", window)
        check_bool(name, "use_bias", use_bias)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.window = window
        self.use_bias = use_bias
        self.head_dim = hidden_dim // num_heads

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if input_shape[-1] is not None and input_shape[-1] != self.hidden_dim:
            raise ValueError(
                f"{type(self).__name__}: input width must equal hidden_dim={self.hidden_dim}, "
                f"received input_shape={tuple(input_shape)}"
            )
        # Separate projections: cheaper on CPU than one fused (d, 3d) dense
        # followed by a split, which copies the (B, T, 3d) result.
        self.query_dense = self._projection("query", input_shape)
        self.key_dense = self._projection("key", input_shape)
        self.value_dense = self._projection("value", input_shape)
        self.output_dense = self._projection("output", input_shape)
        self.weights_dropout = HashDropout(
            self.dropout, dtype=self.dtype_policy, name="attention_dropout"
        )

    def call(
        self,
        x: Any,
        padding_mask: Any | None = None,
        training: bool = False,
        return_attention_scores: bool = False,
    ) -> Any:
        """Applies attention.

        Args:
            x: ``(B, T, d)`` inputs.
            padding_mask: Bool ``(B, T)``, True for real items; None = no padding.
            training: Enables dropout on the attention weights.
            return_attention_scores: Also return the weights.

        Returns:
            ``(B, T, d)`` outputs, or ``(outputs, weights)`` with float32
            weights ``(B, H, T, T)`` (before dropout) when requested.
        """
        batch, width = ops.shape(x)[0], ops.shape(x)[1]
        query = self._split_heads(self.query_dense(x), batch, width)
        key = self._split_heads(self.key_dense(x), batch, width)
        value = self._split_heads(self.value_dense(x), batch, width)
        scores = ops.matmul(query, ops.swapaxes(key, -1, -2))  # (B, H, T, T)
        scores = ops.cast(scores, "float32") * (1.0 / math.sqrt(self.head_dim))
        mask = merge_masks(padding_mask, width, self.window)
        weights = ops.softmax(ops.where(mask, scores, _MASK_FILL), axis=-1)
        weights = ops.where(mask, weights, 0.0)
        dropped = self.weights_dropout(weights, training=training)
        context = ops.matmul(ops.cast(dropped, value.dtype), value)  # (B, H, T, d_k)
        context = self._merge_heads(context, batch, width)
        output = self.output_dense(context)
        if return_attention_scores:
            return output, weights
        return output

    def numpy_weights(self) -> dict[str, dict[str, Any]]:
        """Float32 copies of the four projections, for the NumPy serving path.

        Returns:
            ``{"query", "key", "value", "output"}``, each ``{"kernel": (d, d),
            "bias": (d,) or None}``; heads are the ``num_heads`` consecutive
            column groups of width ``head_dim`` (as in :meth:`call`).
        """
        return {
            "query": _numpy_weights.dense(self.query_dense),
            "key": _numpy_weights.dense(self.key_dense),
            "value": _numpy_weights.dense(self.value_dense),
            "output": _numpy_weights.dense(self.output_dense),
        }

    def _projection(self, name: str, input_shape: tuple[int | None, ...]) -> keras.layers.Dense:
        dense = keras.layers.Dense(
            self.hidden_dim, use_bias=self.use_bias, dtype=self.dtype_policy, name=name
        )
        dense.build(tuple(input_shape[:-1]) + (self.hidden_dim,))
        return dense

    def _split_heads(self, x: Any, batch: Any, width: Any) -> Any:
        """``(B, T, d)`` -> ``(B, H, T, d_k)``."""
        if self.num_heads == 1:
            return ops.expand_dims(x, 1)
        x = ops.reshape(x, (batch, width, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def _merge_heads(self, x: Any, batch: Any, width: Any) -> Any:
        """``(B, H, T, d_k)`` -> ``(B, T, d)`` (heads concatenated)."""
        if self.num_heads == 1:
            return ops.squeeze(x, 1)
        return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (batch, width, self.hidden_dim))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            dropout=self.dropout,
            window=self.window,
            use_bias=self.use_bias,
        )
        return config
