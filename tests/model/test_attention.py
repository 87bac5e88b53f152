"""CausalSelfAttention against a NumPy reference and keras MultiHeadAttention."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sasrec.layers import CausalSelfAttention, merge_masks
from sasrec.models import SASRec

np_ = ops.convert_to_numpy


def dtype_of(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _kernels(layer: CausalSelfAttention) -> dict[str, np.ndarray]:
    names = ("query", "key", "value", "output")
    out = {}
    for name in names:
        dense = getattr(layer, f"{name}_dense")
        out[f"{name}_kernel"], out[f"{name}_bias"] = np_(dense.kernel), np_(dense.bias)
    return out


def numpy_attention(layer, x, padding_mask=None):
    """softmax(Q K^T / sqrt(d_k) + mask) V per head, heads concatenated, projected."""
    w = _kernels(layer)
    batch, width, _ = x.shape
    heads, d_k = layer.num_heads, layer.head_dim

    def split(name):
        y = x @ w[f"{name}_kernel"] + w[f"{name}_bias"]
        return y.reshape(batch, width, heads, d_k).transpose(0, 2, 1, 3)

    q, k, v = split("query"), split("key"), split("value")
    mask = np_(merge_masks(padding_mask, width, layer.window))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d_k) + np.where(mask, 0.0, -np.inf)
    with np.errstate(invalid="ignore"):
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights = weights / weights.sum(-1, keepdims=True)
    weights = np.nan_to_num(weights)  # rows without any visible key
    context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, width, heads * d_k)
    return context @ w["output_kernel"] + w["output_bias"], weights


@pytest.mark.parametrize(("heads", "window"), [(1, None), (2, None), (4, 2)])
def test_matches_numpy_reference(heads, window):
    layer = CausalSelfAttention(hidden_dim=8, num_heads=heads, window=window)
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=bool)
    out, weights = layer(x, padding_mask=mask, return_attention_scores=True)
    expected, expected_weights = numpy_attention(layer, x, mask)
    np.testing.assert_allclose(np_(weights), expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np_(out), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("heads", [1, 2])
def test_matches_keras_multi_head_attention_oracle(heads):
    d, d_k = 8, 8 // heads
    layer = CausalSelfAttention(hidden_dim=d, num_heads=heads)
    x = np.random.default_rng(1).normal(size=(2, 6, d)).astype("float32")
    out = np_(layer(x))
    oracle = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=d_k)
    oracle(x, x, use_causal_mask=True)
    w = _kernels(layer)
    for name, dense in (("query", oracle._query_dense), ("key", oracle._key_dense)):
        dense.kernel.assign(w[f"{name}_kernel"].reshape(d, heads, d_k))
        dense.bias.assign(w[f"{name}_bias"].reshape(heads, d_k))
    oracle._value_dense.kernel.assign(w["value_kernel"].reshape(d, heads, d_k))
    oracle._value_dense.bias.assign(w["value_bias"].reshape(heads, d_k))
    oracle._output_dense.kernel.assign(w["output_kernel"].reshape(heads, d_k, d))
    oracle._output_dense.bias.assign(w["output_bias"])
    expected = np_(oracle(x, x, use_causal_mask=True))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_causality_future_items_do_not_change_the_past():
    layer = CausalSelfAttention(hidden_dim=8, num_heads=2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 8)).astype("float32")
    changed = x.copy()
    changed[:, 3:] = rng.normal(size=(1, 3, 8))
    a, b = np_(layer(x)), np_(layer(changed))
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-6, atol=1e-6)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_model_causality_and_left_padding_invariance():
    model = SASRec(num_items=30, max_len=8, hidden_dim=8, num_blocks=2, num_heads=2)
    ids = np.array([[0, 0, 4, 5, 6, 7, 8, 9]])
    base = np_(model(ids))
    future = ids.copy()
    future[0, 5:] = [21, 22, 23]
    np.testing.assert_allclose(np_(model(future))[0, :5], base[0, :5], rtol=1e-5, atol=1e-6)
    # Trimming leading padding (or padding further) keeps the outputs.
    np.testing.assert_allclose(np_(model(ids[:, 2:])), base[:, 2:], rtol=1e-5, atol=1e-6)
    shorter = np.array([[0, 0, 0, 5, 6, 7, 8, 9]])
    np.testing.assert_allclose(
        np_(model(shorter[:, 1:]))[0, -1], np_(model(shorter))[0, -1], rtol=1e-5, atol=1e-6
    )


def test_all_padding_row_gives_zero_weights_and_finite_gradients():
    layer = CausalSelfAttention(hidden_dim=4, num_heads=2)
    x = keras.Variable(np.random.default_rng(3).normal(size=(2, 3, 4)).astype("float32"))
    mask = np.array([[False, False, False], [False, True, True]])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out, weights = layer(x, padding_mask=mask, return_attention_scores=True)
        loss = ops.sum(out)
    grads = tape.gradient(loss, [x.value, *layer.trainable_variables])
    weights = np_(weights)
    assert np.all(weights[0] == 0) and np.all(weights[1, :, 0] == 0)
    np.testing.assert_allclose(weights[1, :, 1:].sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(np_(out)))
    assert all(np.all(np.isfinite(np_(g))) for g in grads)
    # No visible key -> zero context -> the output is just the output bias.
    np.testing.assert_allclose(np_(out)[0], np.broadcast_to(np_(layer.output_dense.bias), (3, 4)))


def test_window_weights_hand_checked():
    layer = CausalSelfAttention(hidden_dim=4, window=2)
    x = np.random.default_rng(4).normal(size=(1, 5, 4)).astype("float32")
    _, weights = layer(x, return_attention_scores=True)
    nonzero = (np_(weights)[0, 0] > 0).astype(int).tolist()
    assert nonzero == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_softmax_in_float32(policy):
    layer = CausalSelfAttention(hidden_dim=8, num_heads=2, dtype=policy)
    x = np.random.default_rng(5).normal(size=(2, 4, 8)).astype("float32")
    mask = np.array([[False, True, True, True], [True, True, True, True]])
    out, weights = layer(x, padding_mask=mask, return_attention_scores=True)
    assert dtype_of(out) == keras.DTypePolicy(policy).compute_dtype
    assert dtype_of(weights) == "float32"
    w = np_(weights)
    np.testing.assert_allclose(w[0, :, 1:].sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w[1].sum(-1), 1.0, rtol=1e-6)
    assert np.all(w[0, :, 0] == 0)


def test_model_under_global_mixed_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = SASRec(num_items=12, max_len=4, hidden_dim=8, num_heads=2, loss="bce")
        ids = np.array([[0, 3, 4, 5]])
        weights = np_(model.attention_weights(ids))
        scores = model.score_last(ids)
    finally:
        keras.config.set_dtype_policy(previous)
    assert dtype_of(scores) == "float32"
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert model.item_embeddings.dtype == "float32"
