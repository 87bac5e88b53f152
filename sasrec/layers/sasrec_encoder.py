"""The SASRec sequence encoder: item + position embeddings and transformer blocks."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from sasrec.config import POSITION_EMBEDDINGS
from sasrec.layers import _numpy_weights
from sasrec.layers._checks import check_positive_int
from sasrec.layers.hash_dropout import HashDropout
from sasrec.layers.item_embedding import ItemEmbedding
from sasrec.layers.position_embedding import PositionEmbedding
from sasrec.layers.sinusoidal_position_embedding import SinusoidalPositionEmbedding
from sasrec.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="sasrec")
class SASRecEncoder(keras.layers.Layer):
    """Encodes left-padded item-id sequences into hidden states ``(B, t, d)``.

    ``h = mask * LayerNorm(blocks(mask * dropout(E[ids] * sqrt(d) + P)))``
    where ``E`` has ``num_items + 1`` rows (row 0 is padding: id 0 gives a zero
    vector), ``P`` are right-anchored position embeddings and ``mask`` zeroes
    padding positions after every sublayer. The encoder knows nothing about
    the training task; :class:`sasrec.models.SASRec` adds losses and scoring,
    reusing :attr:`item_embeddings` as the output layer (the encoder is its
    backbone, as keras-hub's ``GPT2Backbone`` is ``GPT2CausalLM``'s).

    The encoder owns the model's architecture settings; each is checked by
    the layer that uses it (e.g. ``num_heads`` by :class:`CausalSelfAttention`).

    Args:
        num_items: N; ids are 1..N, 0 is padding.
        max_len: Longest input width T.
        hidden_dim: Width d.
        num_blocks: Number of :class:`TransformerBlock`.
        num_heads: Attention heads per block.
        ffn_dim: Feed-forward inner width (default d).
        dropout: Embedding, residual and feed-forward dropout.
        attention_dropout: Attention-weight dropout (default ``dropout``).
        norm_first: Pre-LN (True) or post-LN blocks.
        position_embedding: ``"learned"`` or ``"sinusoidal"``.
        attention_window: Optional local attention window.
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> encoder = SASRecEncoder(num_items=10, max_len=4, hidden_dim=8)
        >>> h = encoder(ops.convert_to_tensor([[0, 0, 3, 7]]))
        >>> tuple(h.shape), float(ops.sum(ops.abs(h[0, :2])))
        ((1, 4, 8), 0.0)
    """

    def __init__(
        self,
        num_items: int,
        max_len: int,
        hidden_dim: int,
        num_blocks: int = 2,
        num_heads: int = 1,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        norm_first: bool = True,
        position_embedding: str = "learned",
        attention_window: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        check_positive_int(name, "num_blocks", num_blocks)
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"{name}: position_embedding must be one of {POSITION_EMBEDDINGS}, "
                f"received position_embedding={position_embedding!r}"
            )
        self.num_items = num_items
        self.max_len = max_len
        self.hidden_dim = hidden_dim
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.norm_first = norm_first
        self.position_embedding = position_embedding
        self.attention_window = attention_window
        # Constructing a block checks, where they are used, the settings the
        # blocks take (num_heads, ffn_dim, norm_first, attention_window ...)
        # now rather than at build. It holds no weight and draws no seed; it
        # is not kept, because the blocks must be tracked after the
        # embeddings (the order of model.weights). num_items, max_len and the
        # rates are checked by the embeddings and HashDropout when built.
        self.make_block(0)

    def make_block(self, index: int) -> TransformerBlock:
        """A new, unbuilt :class:`TransformerBlock` ``block_{index}`` with these settings."""
        return TransformerBlock(
            self.hidden_dim,
            self.num_heads,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            window=self.attention_window,
            norm_first=self.norm_first,
            dtype=self.dtype_policy,
            name=f"block_{index}",
        )

    def build(self, input_shape: tuple[int | None, ...] = (None, None)) -> None:
        # Sublayers are created and built in this order, which is the order
        # of their seeded initializers and of model.weights.
        policy = self.dtype_policy
        hidden_shape = tuple(input_shape[:2]) + (self.hidden_dim,)
        self.item_embedding = ItemEmbedding(
            self.num_items, self.hidden_dim, dtype=policy, name="item_embedding"
        )
        self.item_embedding.build(input_shape[:2])
        position_class = (
            PositionEmbedding
            if self.position_embedding == "learned"
            else SinusoidalPositionEmbedding
        )
        self.positions = position_class(
            self.max_len, self.hidden_dim, dtype=policy, name="position_embedding"
        )
        self.positions.build(hidden_shape)
        self.embedding_dropout = HashDropout(self.dropout, dtype=policy, name="embedding_dropout")
        self.blocks = []
        for index in range(self.num_blocks):
            block = self.make_block(index)
            block.build(hidden_shape)
            self.blocks.append(block)
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=policy, name="final_norm"
        )
        self.final_norm.build(hidden_shape)

    def numpy_weights(self) -> dict[str, Any]:
        """Float32 copies of every weight, for the NumPy serving path.

        Returns:
            ``{"item_embeddings": (N + 1, d), "position_embeddings":
            (max_len, d), "blocks": [TransformerBlock.numpy_weights(), ...],
            "final_norm": {"gamma", "beta", "epsilon"}}``.
        """
        return {
            "item_embeddings": self.item_embedding.numpy_weights()["embeddings"],
            "position_embeddings": self.positions.numpy_weights()["embeddings"],
            "blocks": [block.numpy_weights() for block in self.blocks],
            "final_norm": _numpy_weights.layer_norm(self.final_norm),
        }

    @property
    def item_embeddings(self) -> keras.Variable:
        """The ``(N + 1, d)`` item table, shared with the output layer."""
        return self.item_embedding.embeddings

    def call(
        self, item_ids: Any, training: bool = False, return_attention_scores: bool = False
    ) -> Any:
        """Encodes ``item_ids``.

        Args:
            item_ids: Int ``(B, t)`` left-padded ids, ``t <= max_len``.
            training: Enables dropout.
            return_attention_scores: Also return the list of per-block
                float32 attention weights ``(B, H, t, t)``.

        Returns:
            ``(B, t, d)`` hidden states (zero at padding positions), or
            ``(hidden, [weights of block 1, ...])``.
        """
        padding_mask = ops.not_equal(item_ids, 0)
        keep = ops.cast(padding_mask, self.compute_dtype)[:, :, None]
        x = self.item_embedding(item_ids) * math.sqrt(self.hidden_dim)
        x = x + self.positions(item_ids)
        x = self.embedding_dropout(x, training=training) * keep
        all_weights = []
        for block in self.blocks:
            x, weights = block(
                x, padding_mask=padding_mask, training=training, return_attention_scores=True
            )
            all_weights.append(weights)
        x = self.final_norm(x) * keep
        if return_attention_scores:
            return x, all_weights
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_items=self.num_items,
            max_len=self.max_len,
            hidden_dim=self.hidden_dim,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            norm_first=self.norm_first,
            position_embedding=self.position_embedding,
            attention_window=self.attention_window,
        )
        return config
