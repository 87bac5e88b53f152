"""One SASRec transformer block: causal attention and feed-forward, with residuals."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_bool
from sasrec.layers.causal_self_attention import CausalSelfAttention
from sasrec.layers.point_wise_feed_forward import PointWiseFeedForward


@keras.saving.register_keras_serializable(package="sasrec")
class TransformerBlock(keras.layers.Layer):
    """Causal self-attention + point-wise feed-forward, residuals and LayerNorm.

    Pre-LN (``norm_first=True``, default)::

        x = mask * (x + attention(norm1(x)))
        x = mask * (x + ffn(norm2(x)))

    Post-LN (``norm_first=False``, the original Transformer)::

        x = mask * norm1(x + attention(x))
        x = mask * norm2(x + ffn(x))

    ``mask`` is the padding mask: padding positions are zeroed after each
    sublayer, as in SASRec, so they never carry signal into later blocks.
    Dropout follows the SASRec reference code: on the attention weights and
    after each feed-forward layer (the feed-forward output dropout is the
    residual-branch dropout); the attention output is not dropped again.

    Each argument is checked by the sublayer that uses it (``num_heads`` by
    :class:`CausalSelfAttention`, ``ffn_dim`` and ``activation`` by
    :class:`PointWiseFeedForward`, the rates by :class:`HashDropout`).

    Args:
        hidden_dim: Model width d.
        num_heads: Attention heads (must divide ``hidden_dim``).
        ffn_dim: Feed-forward inner width (default ``hidden_dim``).
        dropout: Dropout inside the feed-forward (after each of its layers).
        attention_dropout: Dropout on attention weights (default ``dropout``).
        window: Optional local attention window.
        norm_first: Pre-LN (True) or post-LN (False).
        activation: Feed-forward activation (``"relu"`` as in the paper).
        epsilon: LayerNorm epsilon.
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> block = TransformerBlock(hidden_dim=8, num_heads=2)
        >>> ids = ops.convert_to_tensor([[0, 3, 5]])
        >>> out = block(keras.random.normal((1, 3, 8)), padding_mask=ids != 0)
        >>> ops.convert_to_numpy(out)[0, 0].tolist() == [0.0] * 8
        True
    """

    def __init__(
        self,
        hidden_dim: int,
        num_heads: int = 1,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        window: int | None = None,
        norm_first: bool = True,
        activation: str = "relu",
        epsilon: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        check_bool(name, "norm_first", norm_first)
        if not (isinstance(epsilon, float | int) and epsilon > 0):
            raise ValueError(f"{name}: epsilon must be > 0, received epsilon={epsilon!r}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.window = window
        self.norm_first = norm_first
        self.activation = activation
        self.epsilon = epsilon
        # Constructed here, not in build, so that constructing a block checks
        # the arguments it passes on (num_heads divides hidden_dim, ffn_dim,
        # activation ...) where they are used. Neither holds a weight or draws
        # a seed before it is built; the dropout rates are checked then.
        policy = self.dtype_policy
        self.attention = CausalSelfAttention(
            hidden_dim,
            num_heads,
            dropout=dropout if attention_dropout is None else attention_dropout,
            window=window,
            dtype=policy,
            name="attention",
        )
        self.feed_forward = PointWiseFeedForward(
            hidden_dim,
            ffn_dim,
            dropout=dropout,
            activation=activation,
            dtype=policy,
            name="feed_forward",
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        policy = self.dtype_policy
        self.attention.build(input_shape)
        self.feed_forward.build(input_shape)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=policy, name="attention_norm"
        )
        self.attention_norm.build(input_shape)
        self.feed_forward_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=policy, name="feed_forward_norm"
        )
        self.feed_forward_norm.build(input_shape)

    def numpy_weights(self) -> dict[str, Any]:
        """Float32 copies of the block's weights, for the NumPy serving path.

        Returns:
            ``{"attention": CausalSelfAttention.numpy_weights(),
            "feed_forward": PointWiseFeedForward.numpy_weights(),
            "attention_norm": {"gamma", "beta", "epsilon"},
            "feed_forward_norm": {...}}``.
        """
        return {
            "attention": self.attention.numpy_weights(),
            "feed_forward": self.feed_forward.numpy_weights(),
            "attention_norm": _numpy_weights.layer_norm(self.attention_norm),
            "feed_forward_norm": _numpy_weights.layer_norm(self.feed_forward_norm),
        }

    def call(
        self,
        x: Any,
        padding_mask: Any | None = None,
        training: bool = False,
        return_attention_scores: bool = False,
    ) -> Any:
        """Applies the block.

        Args:
            x: ``(B, T, d)`` inputs (zero at padding positions).
            padding_mask: Bool ``(B, T)``, True for real items; None = no padding.
            training: Enables dropout.
            return_attention_scores: Also return the float32 attention
                weights ``(B, H, T, T)``.

        Returns:
            ``(B, T, d)``, or ``(outputs, weights)``.
        """
        keep = None if padding_mask is None else ops.cast(padding_mask, x.dtype)[:, :, None]

        def masked(value: Any) -> Any:
            return value if keep is None else value * keep

        attention_in = self.attention_norm(x) if self.norm_first else x
        attended, weights = self.attention(
            attention_in, padding_mask=padding_mask, training=training, return_attention_scores=True
        )
        x = x + attended
        x = masked(x if self.norm_first else self.attention_norm(x))

        ffn_in = self.feed_forward_norm(x) if self.norm_first else x
        x = x + self.feed_forward(ffn_in, training=training)
        x = masked(x if self.norm_first else self.feed_forward_norm(x))
        if return_attention_scores:
            return x, weights
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            window=self.window,
            norm_first=self.norm_first,
            activation=self.activation,
            epsilon=self.epsilon,
        )
        return config
