"""Layers: masks, position embeddings, feed-forward, block, encoder; configs round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sasrec.layers import (
    CausalSelfAttention,
    HashDropout,
    ItemEmbedding,
    PointWiseFeedForward,
    PositionEmbedding,
    SASRecEncoder,
    SinusoidalPositionEmbedding,
    TransformerBlock,
    causal_mask,
    merge_masks,
)
from tests.test_case import TestCase

np_ = ops.convert_to_numpy

_FLOATS = np.random.default_rng(7).normal(size=(2, 5, 8)).astype("float32")
_IDS = np.array([[0, 0, 3, 4, 5], [1, 2, 6, 6, 2]], "int32")

# (class, init kwargs, input, output shape, trainable weights) of every public layer.
LAYER_CASES = {
    "CausalSelfAttention": (
        CausalSelfAttention,
        dict(hidden_dim=8, num_heads=2, dropout=0.1, window=3),
        _FLOATS,
        (2, 5, 8),
        8,
    ),
    "HashDropout": (HashDropout, dict(rate=0.3, seed=5), _FLOATS, (2, 5, 8), 0),
    "ItemEmbedding": (ItemEmbedding, dict(num_items=6, hidden_dim=4), _IDS, (2, 5, 4), 1),
    "PointWiseFeedForward": (
        PointWiseFeedForward,
        dict(hidden_dim=8, ffn_dim=12, dropout=0.1, activation="gelu"),
        _FLOATS,
        (2, 5, 8),
        4,
    ),
    "PositionEmbedding": (PositionEmbedding, dict(max_len=7, hidden_dim=4), _IDS, (1, 5, 4), 1),
    "SinusoidalPositionEmbedding": (
        SinusoidalPositionEmbedding,
        dict(max_len=7, hidden_dim=8, base=100.0),
        _FLOATS,
        (1, 5, 8),
        0,
    ),
    "TransformerBlock": (
        TransformerBlock,
        dict(hidden_dim=8, num_heads=2, ffn_dim=16, dropout=0.1, window=4, norm_first=False),
        _FLOATS,
        (2, 5, 8),
        16,
    ),
    "SASRecEncoder-learned": (
        SASRecEncoder,
        dict(num_items=9, max_len=6, hidden_dim=8, num_blocks=2, num_heads=2, dropout=0.1),
        _IDS,
        (2, 5, 8),
        1 + 1 + 2 * 16 + 2,
    ),
    "SASRecEncoder-sinusoidal": (
        SASRecEncoder,
        dict(
            num_items=9,
            max_len=6,
            hidden_dim=8,
            num_blocks=1,
            position_embedding="sinusoidal",
            attention_window=2,
            norm_first=False,
        ),
        _IDS,
        (2, 5, 8),
        1 + 16 + 2,
    ),
}


class TestPublicLayers(TestCase):
    @pytest.mark.parametrize("name", sorted(LAYER_CASES))
    def test_layer(self, name):
        cls, kwargs, inputs, shape, trainable = LAYER_CASES[name]
        self.run_layer_test(cls, kwargs, inputs, shape, expected_num_trainable_weights=trainable)

    def test_every_public_layer_is_covered(self):
        import sasrec.layers

        public = {
            name for name in sasrec.layers.__all__ if isinstance(getattr(sasrec.layers, name), type)
        }
        assert public == {cls.__name__ for cls, *_ in LAYER_CASES.values()}


def test_causal_mask_hand_checked():
    expected = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert np_(causal_mask(4)).astype(int).tolist() == expected


def test_window_mask_hand_checked():
    # Window 2: position t sees t-1 and t only.
    expected = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    assert np_(causal_mask(4, window=2)).astype(int).tolist() == expected


def test_merge_masks_combines_causal_padding_and_window():
    padding = ops.convert_to_tensor([[False, True, True, True], [True, True, True, True]])
    merged = np_(merge_masks(padding, 4, window=2)).astype(int)
    assert merged.shape == (2, 1, 4, 4)
    assert merged[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    assert merged[1, 0].tolist() == np_(causal_mask(4, 2)).astype(int).tolist()
    assert np_(merge_masks(None, 3)).shape == (1, 1, 3, 3)


def _round_trip(layer: keras.layers.Layer) -> None:
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config


@pytest.mark.parametrize(
    "layer",
    [
        CausalSelfAttention(hidden_dim=8, num_heads=2, dropout=0.1, window=3, use_bias=False),
        PointWiseFeedForward(hidden_dim=8, ffn_dim=12, dropout=0.1, activation="gelu"),
        TransformerBlock(
            hidden_dim=8,
            num_heads=2,
            ffn_dim=16,
            dropout=0.1,
            attention_dropout=0.0,
            window=4,
            norm_first=False,
        ),
        PositionEmbedding(max_len=7, hidden_dim=4),
        HashDropout(0.3, seed=5),
        ItemEmbedding(num_items=6, hidden_dim=3, embeddings_initializer="zeros"),
        SinusoidalPositionEmbedding(max_len=7, hidden_dim=4, base=100.0),
        SASRecEncoder(
            num_items=9,
            max_len=5,
            hidden_dim=8,
            num_blocks=1,
            num_heads=2,
            position_embedding="sinusoidal",
            attention_window=2,
        ),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    _round_trip(layer)


@pytest.mark.parametrize(
    ("factory", "field", "value"),
    [
        (lambda: CausalSelfAttention(hidden_dim=8, num_heads=3), "num_heads", "3"),
        (lambda: CausalSelfAttention(hidden_dim=0), "hidden_dim", "0"),
        # The rate is checked by the HashDropout that applies it, when built.
        (lambda: CausalSelfAttention(hidden_dim=8, dropout=1.5).build((1, 3, 8)), "dropout", "1.5"),
        (lambda: PointWiseFeedForward(hidden_dim=8, dropout=2.0).build((1, 8)), "dropout", "2.0"),
        # A block and an encoder check num_heads through the attention they make.
        (lambda: TransformerBlock(hidden_dim=8, num_heads=3), "num_heads", "3"),
        (lambda: SASRecEncoder(num_items=5, max_len=2, hidden_dim=6, num_heads=4), "heads", "4"),
        (lambda: CausalSelfAttention(hidden_dim=8, window=0), "window", "0"),
        (lambda: PointWiseFeedForward(hidden_dim=8, activation="nope"), "activation", "nope"),
        (lambda: PointWiseFeedForward(hidden_dim=8, ffn_dim=-1), "ffn_dim", "-1"),
        (lambda: TransformerBlock(hidden_dim=8, norm_first="yes"), "norm_first", "yes"),
        (lambda: PositionEmbedding(max_len=0, hidden_dim=4), "max_len", "0"),
        (lambda: HashDropout(-0.1), "rate", "-0.1"),
        (lambda: SinusoidalPositionEmbedding(max_len=3, hidden_dim=2.5), "hidden_dim", "2.5"),
        (
            lambda: SASRecEncoder(num_items=5, max_len=4, hidden_dim=8, position_embedding="x"),
            "position_embedding",
            "'x'",
        ),
    ],
)
def test_bad_arguments_raise_value_error_showing_value(factory, field, value):
    with pytest.raises(ValueError, match=field) as info:
        factory()
    assert value in str(info.value)


def test_position_embedding_is_anchored_at_the_last_column():
    layer = PositionEmbedding(max_len=6, hidden_dim=3)
    table = np_(layer(ops.zeros((1, 6))))[0]
    narrow = np_(layer(ops.zeros((2, 2), dtype="int32")))
    assert narrow.shape == (1, 2, 3)
    np.testing.assert_array_equal(narrow[0], table[4:])
    with pytest.raises(ValueError, match="max_len=6"):
        layer(ops.zeros((1, 7)))


def test_sinusoidal_table_hand_checked():
    layer = SinusoidalPositionEmbedding(max_len=5, hidden_dim=4)
    full = np_(layer(ops.zeros((1, 5))))[0]
    for p in range(5):
        expected = [np.sin(p), np.cos(p), np.sin(p / 100.0), np.cos(p / 100.0)]
        np.testing.assert_allclose(full[p], expected, rtol=1e-6, atol=1e-6)
    # Width 2 gets positions 3 and 4 (anchored at the most recent item).
    np.testing.assert_array_equal(np_(layer(ops.zeros((1, 2))))[0], full[3:])
    assert not layer.trainable_weights


def test_feed_forward_matches_numpy():
    ffn = PointWiseFeedForward(hidden_dim=4, ffn_dim=6)
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    out = np_(ffn(x))
    w1, b1 = (np_(v) for v in (ffn.inner_dense.kernel, ffn.inner_dense.bias))
    w2, b2 = (np_(v) for v in (ffn.output_dense.kernel, ffn.output_dense.bias))
    expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_zeroes_padding_positions(norm_first):
    block = TransformerBlock(hidden_dim=8, num_heads=2, norm_first=norm_first)
    x = np.random.default_rng(1).normal(size=(2, 4, 8)).astype("float32")
    mask = np.array([[False, False, True, True], [True, True, True, True]])
    out = np_(block(x, padding_mask=mask))
    assert np.all(out[0, :2] == 0)
    assert np.all(np.abs(out[0, 2:]).sum(-1) > 0)
    if not norm_first:
        # Post-LN: every real position leaves through a LayerNorm (gamma=1, beta=0).
        np.testing.assert_allclose(out[1].mean(-1), 0, atol=1e-5)
        np.testing.assert_allclose(out[1].std(-1), 1, atol=1e-2)


def test_pre_ln_block_equals_its_formula():
    block = TransformerBlock(hidden_dim=8, num_heads=2)
    x = np.random.default_rng(2).normal(size=(1, 3, 8)).astype("float32")
    mask = np.array([[False, True, True]])
    out = np_(block(x, padding_mask=mask))
    keep = mask[..., None].astype("float32")
    h = (x + np_(block.attention(block.attention_norm(x), padding_mask=mask))) * keep
    expected = (h + np_(block.feed_forward(block.feed_forward_norm(h)))) * keep
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("position_embedding", ["learned", "sinusoidal"])
def test_encoder_padding_and_trimming(position_embedding):
    encoder = SASRecEncoder(
        num_items=20,
        max_len=6,
        hidden_dim=8,
        num_blocks=2,
        num_heads=2,
        position_embedding=position_embedding,
    )
    ids = np.array([[0, 0, 0, 3, 4, 5], [0, 0, 7, 8, 9, 1], [0, 0, 0, 0, 0, 0]])
    full = np_(encoder(ids))
    assert full.shape == (3, 6, 8)
    assert np.all(full[ids == 0] == 0)  # id 0 gives zero states, including all-padding rows
    assert np.all(np.isfinite(full))
    trimmed = np_(encoder(ids[:, 2:]))
    np.testing.assert_allclose(trimmed, full[:, 2:], rtol=1e-5, atol=1e-6)


def test_hash_dropout_statistics():
    drop = HashDropout(0.2, seed=3)
    x = np.ones((64, 16, 50), "float32")
    first = np_(drop(x, training=True))
    second = np_(drop(x, training=True))
    kept = first != 0
    assert set(np.unique(first).tolist()) == {0.0, 1.25}  # inverted dropout scaling
    assert abs(kept.mean() - 0.8) < 0.01  # 51,200 draws: 0.01 is > 5 standard errors
    flat = kept.ravel().astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.02
    assert abs(np.corrcoef(flat, (second != 0).ravel())[0, 1]) < 0.02  # a new mask per call
    np.testing.assert_array_equal(np_(drop(x, training=False)), x)
    assert np.array_equal(np_(HashDropout(0.0)(x, training=True)), x)


def test_item_embedding_lookup_has_a_dense_gradient_equal_to_scatter_add():
    import tensorflow as tf

    table = ItemEmbedding(num_items=5, hidden_dim=3)
    ids = np.array([[0, 2, 2], [5, 1, 2]])
    upstream = np.random.default_rng(0).normal(size=(2, 3, 3)).astype("float32")
    with tf.GradientTape() as tape:
        rows = table(ids)
        loss = ops.sum(rows * upstream)
    (grad,) = tape.gradient(loss, [table.embeddings.value])
    assert isinstance(grad, tf.Tensor)  # dense, not IndexedSlices
    expected = np.zeros((6, 3), "float32")
    np.add.at(expected, ids.ravel(), upstream.reshape(-1, 3))
    np.testing.assert_allclose(np_(grad), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np_(rows), np_(table.embeddings)[ids])


def test_numpy_weights_are_float32_copies_of_the_variables():
    encoder = SASRecEncoder(num_items=7, max_len=4, hidden_dim=8, num_blocks=2, num_heads=2)
    encoder(np.array([[0, 1, 2, 3]]))
    weights = encoder.numpy_weights()
    np.testing.assert_array_equal(weights["item_embeddings"], np_(encoder.item_embeddings))
    assert weights["position_embeddings"].shape == (4, 8)
    assert len(weights["blocks"]) == 2
    block, block_weights = encoder.blocks[1], weights["blocks"][1]
    query = block_weights["attention"]["query"]
    np.testing.assert_array_equal(query["kernel"], np_(block.attention.query_dense.kernel))
    np.testing.assert_array_equal(query["bias"], np_(block.attention.query_dense.bias))
    inner = block_weights["feed_forward"]["inner"]
    np.testing.assert_array_equal(inner["kernel"], np_(block.feed_forward.inner_dense.kernel))
    assert block_weights["feed_forward"]["activation"] is keras.activations.relu
    assert block_weights["attention_norm"]["epsilon"] == 1e-6
    assert weights["final_norm"]["gamma"].dtype == np.float32
    # Copies: changing them leaves the layer alone.
    weights["item_embeddings"][:] = 0
    assert np.any(np_(encoder.item_embeddings) != 0)
    no_bias = CausalSelfAttention(hidden_dim=4, use_bias=False)
    no_bias.build((1, 2, 4))
    assert no_bias.numpy_weights()["output"]["bias"] is None
