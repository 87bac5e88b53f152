"""Keras layers of SASRec, all registered for serialization (package ``sasrec``)."""

from sasrec.layers.causal_self_attention import CausalSelfAttention
from sasrec.layers.hash_dropout import HashDropout
from sasrec.layers.item_embedding import ItemEmbedding
from sasrec.layers.masks import causal_mask, merge_masks
from sasrec.layers.point_wise_feed_forward import PointWiseFeedForward
from sasrec.layers.position_embedding import PositionEmbedding
from sasrec.layers.sasrec_encoder import SASRecEncoder
from sasrec.layers.sinusoidal_position_embedding import SinusoidalPositionEmbedding
from sasrec.layers.transformer_block import TransformerBlock

__all__ = [
    "CausalSelfAttention",
    "HashDropout",
    "ItemEmbedding",
    "PointWiseFeedForward",
    "PositionEmbedding",
    "SASRecEncoder",
    "SinusoidalPositionEmbedding",
    "TransformerBlock",
    "causal_mask",
    "merge_masks",
]
