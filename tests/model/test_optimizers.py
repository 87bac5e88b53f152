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
