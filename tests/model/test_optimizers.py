"""FusedAdam: the same steps as keras.optimizers.Adam, with small variables fused."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sasrec.models import SASRec
from sasrec.optimizers import FusedAdam

SHAPES = [(40, 6), (6, 6), (6,), (3,)]


def _run(optimizer, grads_per_step, jit_compile):
    rng = np.random.default_rng(1)
    variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]
    optimizer.build(variables)
    for grads in grads_per_step:
        present = [(g, v) for g, v in zip(grads, variables) if g is not None]
        targets = [v for _, v in present]

        @tf.function(jit_compile=jit_compile)
        def step(gs):
            optimizer.apply(gs, targets)  # noqa: B023 (traced right here)

        step([tf.constant(g) for g, _ in present])
    return [v.numpy() for v in variables]


def _grads(steps, missing=None):
    rng = np.random.default_rng(2)
    out = []
    for k in range(steps):
        grads = [rng.normal(size=s).astype("float32") for s in SHAPES]
        if missing is not None and k % 2 == 1:
            grads[missing] = None
        out.append(grads)
    return out


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("missing", [None, 2])
def test_fused_adam_equals_keras_adam(jit_compile, missing):
    """Big (240 entries) and small variables, with and without a missing gradient."""
    grads = _grads(6, missing)
    expected = _run(keras.optimizers.Adam(0.05, beta_2=0.98), grads, jit_compile)
    fused = FusedAdam(0.05, beta_2=0.98, fuse_below=100)
    got = _run(fused, grads, jit_compile)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
    # The three small variables share one flat slot pair; the big one has its own.
    assert fused._fused_size == 36 + 6 + 3
    assert fused._momentums[0] is not None and fused._momentums[1] is None


def test_fused_adam_moves_parameters_as_hand_computed():
    w = keras.Variable([1.0, 2.0])
    opt = FusedAdam(learning_rate=0.1, beta_1=0.5, beta_2=0.5, epsilon=0.0)
    opt.apply([tf.constant([3.0, -1.0])], [w])
    # Step 1: m = 0.5 g, v = 0.5 g^2, lr_t = 0.1 * sqrt(0.5) / 0.5, so the
    # update is lr_t * m / sqrt(v) = 0.1 * sign(g).
    np.testing.assert_allclose(w.numpy(), [0.9, 2.1], rtol=1e-6)
    opt.apply([tf.constant([0.0, 0.0])], [w])
    # Step 2: m = 0.25 g1, v = 0.25 g1^2, lr_t = 0.1 * sqrt(0.75) / 0.75.
    step2 = (
        0.1
        * np.sqrt(0.75)
        / 0.75
        * 0.25
        * np.array([3.0, -1.0])
        / np.sqrt(0.25 * np.array([9.0, 1.0]))
    )
    np.testing.assert_allclose(w.numpy(), np.array([0.9, 2.1]) - step2, rtol=1e-6)


def test_fused_adam_trains_sasrec_like_keras_adam():
    """Three compiled model.fit steps: the same weights as with keras.optimizers.Adam."""
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 31, size=(16, 5)).astype(np.int32)
    batch = {
        "item_ids": ids,
        "positives": np.roll(ids, -1, axis=1),
        "negatives": rng.integers(1, 31, size=(16, 5, 1)).astype(np.int32),
    }
    weights = []
    for optimizer in (keras.optimizers.Adam(1e-2, beta_2=0.98), FusedAdam(1e-2, beta_2=0.98)):
        keras.utils.set_random_seed(0)
        model = SASRec(num_items=30, max_len=5, hidden_dim=8, loss="bce", dropout=0.0)
        model.compile(optimizer=optimizer, jit_compile=True)
        model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    assert len(weights[0]) == len(weights[1])
    moved = max(float(np.abs(a - b).max()) for a, b in zip(weights[0], weights[1]))
    assert moved < 1e-5, moved
    keras.utils.set_random_seed(0)
    initial = SASRec(num_items=30, max_len=5, hidden_dim=8, loss="bce", dropout=0.0).get_weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(initial, weights[1])) > 1e-3


def test_fused_adam_config_round_trip_and_validation():
    opt = FusedAdam(learning_rate=0.01, beta_2=0.98, epsilon=1e-8, fuse_below=1000)
    config = keras.optimizers.serialize(opt)
    again = keras.optimizers.deserialize(config)
    assert isinstance(again, FusedAdam)
    assert (again.fuse_below, again.beta_2, again.epsilon) == (1000, 0.98, 1e-8)
    assert "amsgrad" not in again.get_config()
    with pytest.raises(ValueError, match="fuse_below.*-1"):
        FusedAdam(fuse_below=-1)
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(amsgrad=True)


def _lazy_run(optimizer, grads_per_step, table):
    variable = keras.Variable(table)
    optimizer.build([variable])

    @tf.function(jit_compile=True)
    def step(g):
        optimizer.apply([g], [variable])

    for g in grads_per_step:
        step(tf.constant(g))
    return variable.numpy(), optimizer


@pytest.mark.parametrize("max_rows", [0, 3, 16_384])
def test_lazy_item_table_equals_adam_on_rows_touched_every_step(max_rows):
    """Rows 1, 3, 5 touched at all 5 steps: lazy == dense Adam; others differ from it.

    max_rows 3: the 4-row first step takes the masked pass, the others the
    row gather/scatter; 0: masked passes only.
    """
    rng = np.random.default_rng(4)
    table = rng.normal(size=(8, 3)).astype("float32")
    grads = []
    for k in range(5):
        g = np.zeros((8, 3), "float32")
        g[[1, 3, 5]] = rng.normal(size=(3, 3))
        if k == 0:
            g[6] = rng.normal(size=3)  # touched once, then left alone
        grads.append(g)
    dense, _ = _lazy_run(FusedAdam(0.05, beta_2=0.98, fuse_below=0), grads, table)
    lazy, opt = _lazy_run(
        FusedAdam(0.05, beta_2=0.98, fuse_below=0, lazy_item_table=True, lazy_max_rows=max_rows),
        grads,
        table,
    )
    np.testing.assert_allclose(lazy[[1, 3, 5]], dense[[1, 3, 5]], rtol=1e-6, atol=1e-6)
    assert np.abs(lazy[[1, 3, 5]] - table[[1, 3, 5]]).min() > 1e-3
    # Row 6: one lazy step, while dense Adam kept moving it with its momentum.
    assert np.abs(lazy[6] - dense[6]).min() > 1e-3
    np.testing.assert_array_equal(lazy[[0, 2, 4, 7]], table[[0, 2, 4, 7]])
    m, v = opt._momentums[0].numpy(), opt._velocities[0].numpy()
    np.testing.assert_array_equal(m[[0, 2, 4, 7]], 0.0)
    np.testing.assert_array_equal(v[[0, 2, 4, 7]], 0.0)


@pytest.mark.parametrize("max_rows", [0, 16_384])
def test_lazy_item_table_keeps_untouched_row_as_hand_computed(max_rows):
    """b1 = b2 = 0.5, eps = 0: a row touched at step 1 only stays put at step 2."""
    table = np.array([[1.0, 2.0], [5.0, 5.0]], "float32")
    g1 = np.array([[3.0, -1.0], [2.0, 2.0]], "float32")
    g2 = np.array([[0.0, 0.0], [4.0, -4.0]], "float32")
    kwargs = dict(learning_rate=0.1, beta_1=0.5, beta_2=0.5, epsilon=0.0, fuse_below=0)
    lazy, opt = _lazy_run(
        FusedAdam(lazy_item_table=True, lazy_max_rows=max_rows, **kwargs), [g1, g2], table
    )
    dense, _ = _lazy_run(FusedAdam(**kwargs), [g1, g2], table)
    # Step 1 moves every row by 0.1 * sign(g) (as in the hand-computed test above).
    np.testing.assert_allclose(lazy[0], [0.9, 2.1], rtol=1e-6)
    np.testing.assert_allclose(opt._momentums[0].numpy()[0], [1.5, -0.5], rtol=1e-6)
    np.testing.assert_allclose(opt._velocities[0].numpy()[0], [4.5, 0.5], rtol=1e-6)
    # Dense Adam moves row 0 again at step 2: 0.1 sqrt(.75)/.75 * .25 g1 / sqrt(.25 g1^2),
    # i.e. 0.1 sqrt(.75)/.75 * 0.5 sign(g1).
    step2 = 0.1 * np.sqrt(0.75) / 0.75 * 0.5 * np.sign(g1[0])
    np.testing.assert_allclose(dense[0], np.array([0.9, 2.1]) - step2, rtol=1e-6)
    # Row 1, touched twice: m = .25 g1 + .5 g2, v = .25 g1^2 + .5 g2^2.
    m = 0.25 * g1[1] + 0.5 * g2[1]
    v = 0.25 * g1[1] ** 2 + 0.5 * g2[1] ** 2
    row1 = np.array([4.9, 4.9]) - 0.1 * np.sqrt(0.75) / 0.75 * m / np.sqrt(v)
    np.testing.assert_allclose(lazy[1], row1, rtol=1e-6)
    np.testing.assert_allclose(dense[1], row1, rtol=1e-6)


@pytest.mark.parametrize("max_rows", [0, 16_384])
def test_lazy_item_table_accepts_indexed_slices(max_rows):
    table = np.ones((5, 2), "float32")
    variable = keras.Variable(table)
    opt = FusedAdam(0.1, fuse_below=0, lazy_item_table=True, lazy_max_rows=max_rows)
    # Row 2 twice (summed), row 4 with an all-zero gradient: still touched.
    grad = tf.IndexedSlices(
        tf.constant([[1.0, 1.0], [1.0, -1.0], [0.0, 0.0]]),
        tf.constant([2, 2, 4]),
        tf.constant([5, 2]),
    )
    opt.apply([grad], [variable])
    got = variable.numpy()
    np.testing.assert_allclose(got[2], [0.9, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(got[[0, 1, 3, 4]], 1.0)
    assert opt._velocities[0].numpy()[4].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("max_rows", [0, 16_384])
def test_lazy_item_table_trains_sasrec_touching_only_batch_rows(max_rows):
    """Compiled model.fit: rows of ids/positives/negatives move; items 21..30 do not."""
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 21, size=(16, 5)).astype(np.int32)
    batch = {
        "item_ids": ids,
        "positives": np.roll(ids, -1, axis=1),
        "negatives": rng.integers(1, 21, size=(16, 5, 1)).astype(np.int32),
    }
    weights = {}
    for lazy in (False, True):
        keras.utils.set_random_seed(0)
        model = SASRec(num_items=30, max_len=5, hidden_dim=8, loss="bce", dropout=0.0)
        model.compile(
            optimizer=FusedAdam(1e-2, beta_2=0.98, lazy_item_table=lazy, lazy_max_rows=max_rows),
            jit_compile=True,
        )
        initial = model.item_embeddings.numpy()
        model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0, shuffle=False)
        weights[lazy] = model.item_embeddings.numpy()
    touched = np.unique(np.concatenate([ids.ravel(), batch["negatives"].ravel()]))
    untouched = np.setdiff1d(np.arange(1, 31), touched)
    assert len(untouched) == 10
    np.testing.assert_array_equal(weights[True][untouched], initial[untouched])
    assert np.abs(weights[True][touched] - initial[touched]).max(axis=1).min() > 1e-4
    # The same batch every step touches the same rows: lazy == dense Adam there.
    np.testing.assert_allclose(weights[True][touched], weights[False][touched], atol=1e-5)


def test_sparse_item_updates_option_reaches_the_optimizer():
    import argparse

    from pipelines.sasrec.cli.train_flags import add_training_flags, train_options_from_args
    from pipelines.sasrec.training.run import _compiled_model
    from sasrec.config import SASRecConfig

    parser = argparse.ArgumentParser()
    add_training_flags(parser)
    assert train_options_from_args(parser.parse_args([])).sparse_item_updates is False
    train = train_options_from_args(parser.parse_args(["--sparse-item-updates"]))
    assert train.sparse_item_updates is True
    config = SASRecConfig(num_items=30, max_len=5, hidden_dim=8)
    assert _compiled_model(config, train).optimizer.lazy_item_table is True
    default = _compiled_model(config, train_options_from_args(parser.parse_args([])))
    assert default.optimizer.lazy_item_table is False
    again = keras.optimizers.deserialize(keras.optimizers.serialize(default.optimizer))
    assert again.lazy_item_table is False
    assert (
        keras.optimizers.deserialize(
            keras.optimizers.serialize(FusedAdam(lazy_item_table=True, lazy_max_rows=7))
        ).get_config()["lazy_max_rows"]
        == 7
    )
    with pytest.raises(ValueError, match="lazy_max_rows"):
        FusedAdam(lazy_max_rows=-1)
