"""The four training losses: NumPy references, padding invariance, and learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from sasrec.models import SASRec

np_ = ops.convert_to_numpy
NUM_ITEMS = 20


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def make_batch(rng, batch=8, width=6, num_negatives=2, num_items=NUM_ITEMS):
    """Sequences i, i+1, i+2, ... (mod N), left-padded; last column has no target."""
    item_ids = np.zeros((batch, width), np.int32)
    for row in range(batch):
        length = rng.integers(2, width + 1)
        start = rng.integers(0, num_items)
        item_ids[row, width - length :] = (start + np.arange(length)) % num_items + 1
    positives = np.zeros_like(item_ids)
    positives[:, :-1] = np.where(item_ids[:, :-1] > 0, item_ids[:, 1:], 0)
    negatives = rng.integers(1, num_items + 1, size=(batch, width, num_negatives)).astype(np.int32)
    clash = negatives == positives[..., None]
    negatives[clash] = negatives[clash] % num_items + 1
    return {"item_ids": item_ids, "positives": positives, "negatives": negatives}


def numpy_loss(model, batch, hidden):
    table = np_(model.item_embeddings)
    valid = batch["positives"] != 0
    h = hidden[valid]
    pos = np.sum(h * table[batch["positives"][valid]], -1)
    neg = np.einsum("vd,vnd->vn", h, table[batch["negatives"][valid]])
    if model.loss_name == "softmax":
        logits = h @ table[1:].T
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        return np.mean(log_z - pos)
    if model.loss_name == "sampled_softmax":
        both = np.concatenate([pos[:, None], neg], -1)
        return np.mean(np.log(np.exp(both).sum(-1)) - pos)
    k = batch["negatives"].shape[-1]
    alpha = k / (model.num_items - 1)
    beta = alpha * (model.gbce_t * (1 - 1 / alpha) + 1 / alpha) if model.loss_name == "gbce" else 1
    return np.mean(-beta * log_sigmoid(pos) - log_sigmoid(-neg).sum(-1))


def tiny_model(loss, **kwargs):
    keras.utils.set_random_seed(0)
    config = dict(num_items=NUM_ITEMS, max_len=6, hidden_dim=16, num_blocks=1, dropout=0.0)
    config.update(kwargs)
    return SASRec(loss=loss, num_negatives=2, **config)


@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax", "gbce"])
def test_loss_matches_numpy_reference(loss):
    model = tiny_model(loss, gbce_t=0.5)
    batch = make_batch(np.random.default_rng(0))
    hidden = model(batch)
    value = model.compute_loss(batch, None, hidden)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(np_(value), numpy_loss(model, batch, np_(hidden)), rtol=1e-5)


@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax", "gbce"])
def test_targets_at_padding_positions_are_ignored(loss):
    model = tiny_model(loss)
    rng = np.random.default_rng(1)
    batch = make_batch(rng)
    hidden = model(batch)
    changed = {k: v.copy() for k, v in batch.items()}
    no_target = changed["positives"] == 0
    changed["negatives"][no_target] = rng.integers(0, NUM_ITEMS + 1, (no_target.sum(), 2))
    assert not np.array_equal(changed["negatives"], batch["negatives"])
    before = np_(model.compute_loss(batch, None, hidden))
    after = np_(model.compute_loss(changed, None, hidden))
    assert before == after
    # A batch without any target gives 0, not NaN.
    empty = dict(batch, positives=np.zeros_like(batch["positives"]))
    assert np_(model.compute_loss(empty, None, hidden)) == 0.0


@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax", "gbce"])
def test_all_padding_rows_leave_the_loss_unchanged(loss):
    # The training data pads an epoch's one short batch with such rows.
    model = tiny_model(loss)
    batch = make_batch(np.random.default_rng(2), batch=5)
    padded = {
        k: np.concatenate([v, np.zeros((3, *v.shape[1:]), v.dtype)]) for k, v in batch.items()
    }
    before = np_(model.compute_loss(batch, None, model(batch)))
    after = np_(model.compute_loss(padded, None, model(padded)))
    np.testing.assert_allclose(after, before, rtol=1e-6)
    assert np.isfinite(after)


@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax", "gbce"])
def test_loss_denominator_divides_the_sum_of_position_losses(loss):
    model = tiny_model(loss, gbce_t=0.5, loss_denominator=7.5)
    batch = make_batch(np.random.default_rng(3))
    hidden = model(batch)
    valid = int((batch["positives"] != 0).sum())
    expected = numpy_loss(model, batch, np_(hidden)) * valid / 7.5
    np.testing.assert_allclose(np_(model.compute_loss(batch, None, hidden)), expected, rtol=1e-5)


def test_loss_denominator_weighs_positions_alike_across_batches():
    # Two batches of 2 and 6 valid positions with one position loss each:
    # the per-batch mean gives a position of the short batch 3x the weight;
    # a constant denominator gives each position the same weight.
    per_batch = tiny_model("bce")
    constant = tiny_model("bce", loss_denominator=4.0)
    rng = np.random.default_rng(4)
    short = make_batch(rng, batch=1, width=3)
    long_ = make_batch(rng, batch=3, width=3)
    short["positives"][:] = [[0, 2, 3]]
    long_["positives"][:] = [[3, 4, 5], [6, 7, 8], [0, 0, 0]]
    long_["item_ids"][:] = [[2, 3, 4], [5, 6, 7], [0, 0, 9]]
    short["item_ids"][:] = [[0, 1, 2]]
    for model in (per_batch, constant):
        losses = [np_(model.compute_loss(b, None, model(b))) for b in (short, long_)]
        sums = [numpy_loss(model, b, np_(model(b))) * n for b, n in ((short, 2), (long_, 6))]
        if model is per_batch:
            np.testing.assert_allclose(losses, [sums[0] / 2, sums[1] / 6], rtol=1e-5)
        else:
            np.testing.assert_allclose(losses, [sums[0] / 4, sums[1] / 4], rtol=1e-5)


def test_gbce_with_t_zero_equals_bce():
    bce = tiny_model("bce")
    gbce = tiny_model("gbce", gbce_t=0.0)
    gbce.set_weights(bce.get_weights())
    batch = make_batch(np.random.default_rng(2))
    hidden = bce(batch)
    np.testing.assert_allclose(
        np_(gbce.compute_loss(batch, None, hidden)), np_(bce.compute_loss(batch, None, hidden))
    )
    np.testing.assert_allclose(np_(gbce.gbce_beta(2)), 1.0)


def test_gbce_beta_hand_computed():
    model = SASRec(num_items=101, max_len=4, hidden_dim=8, loss="gbce", num_negatives=4)
    # alpha = 4 / 100 = 0.04; beta = 0.04 * (0.75 * (1 - 25) + 25) = 0.28
    np.testing.assert_allclose(np_(model.gbce_beta(4)), 0.28, rtol=1e-6)
    model_t1 = SASRec(num_items=101, max_len=4, hidden_dim=8, loss="gbce", gbce_t=1.0)
    np.testing.assert_allclose(np_(model_t1.gbce_beta(4)), 0.04, rtol=1e-6)


def test_sampled_loss_without_negatives_is_a_clear_error():
    model = tiny_model("bce")
    batch = make_batch(np.random.default_rng(3))
    del batch["negatives"]
    with pytest.raises(ValueError, match="negatives"):
        model.compute_loss(batch, None, model(batch))
    with pytest.raises(ValueError, match="positives"):
        model.compute_loss(batch["item_ids"], None, model(batch))


@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax", "gbce"])
def test_each_loss_falls_with_fit(loss):
    model = tiny_model(loss)
    rng = np.random.default_rng(4)
    data = make_batch(rng, batch=64)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(32)
    before = np_(model.compute_loss(data, None, model(data)))
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    model.fit(dataset, epochs=8, verbose=0, shuffle=False)
    after = np_(model.compute_loss(data, None, model(data)))
    assert np.isfinite(after)
    assert after < 0.7 * before, (before, after)


def test_sampled_loss_trains_under_xla_and_softmax_refuses_it():
    model = tiny_model("bce", dropout=0.2)
    data = make_batch(np.random.default_rng(5), batch=32)
    model.compile(optimizer=keras.optimizers.Adam(0.02), jit_compile=True)
    history = model.fit(tf.data.Dataset.from_tensors(data), epochs=3, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="jit_compile=True"):
        tiny_model("softmax").compile(optimizer="adam", jit_compile=True)


def test_loss_is_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model("gbce")
        batch = make_batch(np.random.default_rng(6))
        hidden = model(batch)
        value = model.compute_loss(batch, None, hidden)
        expected = numpy_loss(model, batch, np_(ops.cast(hidden, "float32")))
        model.compile(optimizer=keras.optimizers.Adam(0.02))
        losses = [float(model.train_on_batch(batch)) for _ in range(10)]
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(hidden.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(np_(value), expected, rtol=1e-5)
    assert model.item_embeddings.dtype == "float32"
    assert losses[-1] < 0.7 * losses[0], losses


def test_shared_negatives_equal_per_position_copies():
    """(B, 1, n) negatives give the same loss as the same set repeated at every position."""
    rng = np.random.default_rng(11)
    for loss in ("bce", "gbce", "sampled_softmax"):
        model = SASRec(num_items=30, max_len=6, hidden_dim=8, loss=loss, num_negatives=4)
        ids = np.array([[0, 0, 3, 4, 5, 6], [0, 7, 8, 9, 10, 11]], np.int32)
        positives = np.array([[0, 0, 4, 5, 6, 7], [0, 8, 9, 10, 11, 12]], np.int32)
        shared = rng.integers(13, 31, size=(2, 1, 4)).astype(np.int32)  # never a positive
        hidden = model(ids)
        one = model.sequence_loss(hidden, positives, shared)
        tiled = model.sequence_loss(hidden, positives, np.repeat(shared, 6, axis=1))
        np.testing.assert_allclose(np_(one), np_(tiled), rtol=1e-5)


def test_shared_negative_equal_to_positive_is_ignored():
    model = SASRec(num_items=30, max_len=4, hidden_dim=8, loss="bce", num_negatives=2)
    ids = np.array([[0, 3, 4, 5]], np.int32)
    positives = np.array([[0, 4, 5, 6]], np.int32)
    hidden = model(ids)
    clean = np.array([[[20, 21]]], np.int32)
    collide = np.array([[[20, 5]]], np.int32)  # 5 is the positive at position 1
    only_20 = model.sequence_loss(hidden, positives, np.array([[[20]]], np.int32))
    with_collision = model.sequence_loss(hidden, positives, collide)
    assert float(np_(with_collision)) != float(np_(model.sequence_loss(hidden, positives, clean)))
    # At position 1 the colliding negative contributes nothing; elsewhere it counts.
    h = np_(hidden)
    e = np_(model.item_embeddings)
    expected = 0.0
    for t, pos in ((1, 4), (2, 5), (3, 6)):
        s_pos = h[0, t] @ e[pos]
        terms = -np.log(1 / (1 + np.exp(-s_pos)))
        for neg in (20, 5):
            if neg != pos:
                terms += -np.log(1 / (1 + np.exp(h[0, t] @ e[neg])))
        expected += terms
    np.testing.assert_allclose(float(np_(with_collision)), expected / 3, rtol=1e-4)
    assert float(np_(only_20)) > 0
